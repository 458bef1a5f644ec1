// What the Recommender and the Responder share when they read a bundle: a component's tokenizer
// and special tokens, and the context markers of docs/math.md section 2.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ecr/engine.hpp"
#include "ecr/io/component.hpp"
#include "ecr/models/gpt2.hpp"
#include "ecr/models/prompt_encoder.hpp"
#include "ecr/models/roberta.hpp"
#include "ecr/text/tokenizer.hpp"

namespace ecr::pipeline {

// docs/math.md section 2: the turn separators of the two contexts, and RoBERTa's leading token.
inline constexpr std::string_view kContextEos = "<|endoftext|>";
inline constexpr std::string_view kPromptSep = "</s>";
inline constexpr std::string_view kPromptCls = "<s>";

// The tokenizer the component names (Component::tokenizer_spec); ConfigError when it has ids at
// or beyond the component's config.vocab_size.
std::shared_ptr<const Tokenizer> component_tokenizer(const Component& component);
// The id of a token the models rely on; ConfigError naming the component when absent.
std::int32_t special_token(const Tokenizer& tokenizer, std::string_view token, const std::string& component);
// A view loaded from a shared engine leaves the EngineOptions part of its options as they are or
// sets them to the engine's own; anything else would be silently ignored, so it is a ConfigError.
void check_engine_options(const Engine& engine, const EngineOptions& view, std::string_view who);
// The options a view made from `engine` keeps: its own, with the engine's in the EngineOptions part.
template <class Options>
Options view_options(const Engine& engine, Options options, std::string_view who) {
  check_engine_options(engine, options, who);
  static_cast<EngineOptions&>(options) = engine.options();
  return options;
}
// docs/math.md section 6: an emotion classifier needs a score head over the ECR labels (ConfigError otherwise).
void check_classifier_head(const std::string& component, bool has_head, std::int64_t num_labels);
// ConfigError unless the prompt `name` is of `kind` and fits the backbone (width, layers, heads)
// and the text encoder (token width): the checks both views make when they load.
void check_prompt_fits(const PromptConfig& prompt, PromptKind kind, const std::string& name, const Gpt2Config& backbone,
                       const RobertaConfig& text_encoder, const ComponentNames& names);
// Keeps the newest `limit` ids (docs/math.md section 2's truncation of contexts).
void keep_newest(std::vector<std::int32_t>& ids, std::size_t limit);

}  // namespace ecr::pipeline
