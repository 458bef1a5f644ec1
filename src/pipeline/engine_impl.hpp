// The parts of an Engine (include/ecr/engine.hpp), for the views that run requests on them.
// Each part loads the first time it is asked for, once: std::call_once makes concurrent first
// requests wait for the one load, and a load that throws is tried again by the next caller.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "ecr/core/thread_pool.hpp"
#include "ecr/engine.hpp"
#include "ecr/kg/cooccurrence.hpp"
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

// docs/math.md section 6: the emotion classifier's input template around the user's turn, and how its
// scores become probabilities. The model itself is a part of its own (CPU or device).
struct EmotionClassifier {
  std::shared_ptr<const Tokenizer> tokenizer;
  std::string before, after;
  bool multi_label = false;  // a sigmoid per label instead of a softmax
};

#ifdef ECR_WITH_CUDA
class DeviceModels;  // the device twins of the models (engine_cuda.hpp)
#endif

}  // namespace pipeline

struct Engine::Impl {
  Bundle bundle;
  EngineOptions options;
  std::shared_ptr<ThreadPool> pool;
  KnowledgeGraph kg;

  Impl(Bundle b, EngineOptions o);

  // Where requests run; on a CUDA device the models below are never loaded, their device twins
  // (device()) are.
  bool on_device() const { return options.device.device == Device::cuda; }

  // Runs `parts` (each a call that loads parts of this engine) at once on the pool, so that a
  // view loads in about the time of its largest part instead of their sum. Of several errors,
  // the first in `parts` order is thrown (ThreadPool::parallel_for), the one that loading them
  // one by one would meet; a part that failed is tried again by the next call that needs it.
  void load_together(std::initializer_list<std::function<void()>> parts) const;

  // The tokenizers the components name, loaded without their models.
  const Tokenizer& backbone_tokenizer() const;
  const Tokenizer& text_encoder_tokenizer() const;
  const Tokenizer& generator_tokenizer() const;

  // The CPU models.
  const Gpt2Model& backbone() const;
  const RobertaModel& text_encoder() const;
  // The rec prompt with its global entity table when the bundle has the co-occurrence matrix.
  const PromptEncoder& rec_prompt() const;
  bool has_global_entities() const;
  const PromptEncoder& conv_prompt() const;
  const Gpt2Model& generator() const;
  // The emotion classifier's GPT-2 with its score head (ConfigError when it has none over the
  // ECR labels); only when emotion_classifier() has a value.
  const Gpt2Model& classifier_model() const;

  // Absent when the bundle has no emotion classifier component.
  const std::optional<pipeline::EmotionClassifier>& emotion_classifier() const;
  // The linker with default options over the KG (a Recommender asking for others builds its own).
  const EntityLinker& linker() const;
  // The review entities (docs/math.md section 8), absent when the bundle has none.
  const std::optional<ReviewStore>& reviews() const;
  // The KG as the R-GCN reads it, and the co-occurrence matrix when the bundle has one (read
  // anew: only the prompts' loaders need it).
  const RelationCsr& relations() const;
  std::optional<CooccurrenceMatrix> cooccurrence() const;

#ifdef ECR_WITH_CUDA
  // The device twins (engine_cuda.cpp); only for an engine whose device is cuda.
  const pipeline::DeviceModels& device() const;
#endif

 private:
  pipeline::Lazy<std::shared_ptr<const Tokenizer>> backbone_tokenizer_, text_encoder_tokenizer_, generator_tokenizer_;
  pipeline::Lazy<Gpt2Model> backbone_, generator_, classifier_model_;
  pipeline::Lazy<RobertaModel> text_encoder_;
  pipeline::Lazy<PromptEncoder> rec_prompt_, conv_prompt_;
  pipeline::Lazy<RelationCsr> relations_;
  pipeline::Lazy<std::optional<pipeline::EmotionClassifier>> classifier_;
  pipeline::Lazy<EntityLinker> linker_;
  pipeline::Lazy<std::optional<ReviewStore>> reviews_;
#ifdef ECR_WITH_CUDA
  pipeline::Lazy<std::shared_ptr<const pipeline::DeviceModels>> device_;
#endif
};

}  // namespace ecr
