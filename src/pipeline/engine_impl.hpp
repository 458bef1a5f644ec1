// The parts of an Engine (include/ecr/engine.hpp), for the views that run requests on them.
// Each part loads the first time it is asked for, once: std::call_once makes concurrent first
// requests wait for the one load, and a load that throws is tried again by the next caller.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "ecr/core/thread_pool.hpp"
#include "ecr/engine.hpp"
#include "ecr/kg/entity_linker.hpp"
#include "ecr/kg/review_store.hpp"
#include "ecr/models/entity_encoder.hpp"
#include "ecr/models/gpt2.hpp"
#include "ecr/models/prompt_encoder.hpp"
#include "ecr/models/roberta.hpp"
#include "ecr/text/tokenizer.hpp"

namespace ecr {

namespace pipeline {

// A value made on first use, then shared read-only.
template <class T>
class Lazy {
 public:
  template <class Make>
  const T& get(Make&& make) const {
    std::call_once(once_, [&] { value_.emplace(make()); });
    return *value_;
  }

 private:
  mutable std::once_flag once_;
  mutable std::optional<T> value_;
};

// A GPT-2 or RoBERTa component with the tokenizer it names.
template <class Model>
struct TextModel {
  Model model;
  Tokenizer tokenizer;
};

// ECR_SPEC 6: the emotion classifier with its input template around the user's turn.
struct EmotionClassifier {
  Gpt2Model model;
  Tokenizer tokenizer;
  std::string before, after;
  bool multi_label = false;  // a sigmoid per label instead of a softmax
};

}  // namespace pipeline

struct Engine::Impl {
  Bundle bundle;
  EngineOptions options;
  std::shared_ptr<ThreadPool> pool;
  KnowledgeGraph kg;

  Impl(Bundle b, EngineOptions o);

  const pipeline::TextModel<Gpt2Model>& backbone() const;
  const pipeline::TextModel<RobertaModel>& text_encoder() const;
  // The rec prompt with its global entity table when the bundle has the co-occurrence matrix.
  const PromptEncoder& rec_prompt() const;
  bool has_global_entities() const;
  const PromptEncoder& conv_prompt() const;
  const pipeline::TextModel<Gpt2Model>& generator() const;
  // Absent when the bundle has no emotion classifier component.
  const std::optional<pipeline::EmotionClassifier>& emotion_classifier() const;
  // The linker with default options over the KG (a Recommender asking for others builds its own).
  const EntityLinker& linker() const;
  // The review entities (ECR_SPEC 8), absent when the bundle has none.
  const std::optional<ReviewStore>& reviews() const;

 private:
  const RelationCsr& relations() const;

  pipeline::Lazy<pipeline::TextModel<Gpt2Model>> backbone_, generator_;
  pipeline::Lazy<pipeline::TextModel<RobertaModel>> text_encoder_;
  pipeline::Lazy<PromptEncoder> rec_prompt_, conv_prompt_;
  pipeline::Lazy<RelationCsr> relations_;
  pipeline::Lazy<std::optional<pipeline::EmotionClassifier>> classifier_;
  pipeline::Lazy<EntityLinker> linker_;
  pipeline::Lazy<std::optional<ReviewStore>> reviews_;
};

}  // namespace ecr
