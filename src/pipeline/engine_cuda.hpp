// The device twins of an Engine's models, for an engine whose device is cuda (ECR_WITH_CUDA
// builds only), and the device stages of the Recommender and the Responder that run on them.
// Each model loads on the engine's device the first time a view needs it, once, as the CPU
// parts do (Lazy); f32 storage and exact GEMMs, so requests give the CPU's results.
#pragma once

#ifndef ECR_WITH_CUDA
#error "pipeline/engine_cuda.hpp needs a build of ecr with ECR_WITH_CUDA=ON"
#endif

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "ecr/core/tensor.hpp"
#include "ecr/lm/generate.hpp"
#include "ecr/models/gpt2_cuda.hpp"
#include "ecr/models/prompt_encoder_cuda.hpp"
#include "ecr/models/roberta_cuda.hpp"
#include "ecr/recommender.hpp"
#include "engine_impl.hpp"
#include "recommend_stages.hpp"

namespace ecr::pipeline {

// The classifier's GPT-2 and its score head (labels, H), both in device memory.
struct DeviceClassifier {
  cuda::Gpt2Device model;
  Tensor score;
};

// The rec prompt with the rows of E that the ranking reads: the KG's items in ascending id order
// (so the device's tie rule, lower column first, is the CPU's, lower id first).
struct DeviceRecPrompt {
  cuda::PromptDevice prompt;
  Tensor item_table;                   // (items, H) device
  std::vector<std::int32_t> item_ids;  // row -> entity id, ascending
};

class DeviceModels {
 public:
  explicit DeviceModels(const Engine::Impl& engine) : engine_(engine) {}

  // Makes the engine's device current on the calling thread: before any device work.
  void select() const;

  const cuda::Gpt2Device& backbone() const;
  const cuda::RobertaDevice& text_encoder() const;
  const DeviceRecPrompt& rec_prompt() const;
  const cuda::PromptDevice& conv_prompt() const;
  const cuda::Gpt2Device& generator() const;
  // Only when the engine's emotion_classifier() has a value.
  const DeviceClassifier& classifier() const;

 private:
  const Engine::Impl& engine_;
  Lazy<cuda::Gpt2Device> backbone_, generator_;
  Lazy<cuda::RobertaDevice> text_encoder_;
  Lazy<DeviceRecPrompt> rec_prompt_;
  Lazy<cuda::PromptDevice> conv_prompt_;
  Lazy<DeviceClassifier> classifier_;
};

// docs/math.md section 6 on the device: the classifier's scores (inputs, labels), host f32, as
// Gpt2Model::classify gives them.
Tensor classify_on_device(const Engine::Impl& engine, std::span<const std::vector<std::int32_t>> inputs);

// docs/math.md section 4-5 on the device: RoBERTa batch, rec prompts, backbone prefill with the prefixes,
// z E^T over the items and the top-k there; every entity's scores come back when `all_scores`.
std::vector<RecModelOutput> recommend_on_device(const Engine::Impl& engine, std::span<const RecModelInput> inputs,
                                                bool global_entities, std::size_t top_k, bool all_scores);

// The rec prompt's entity table E on the host (f32), for the feedback rule; once, at load.
Tensor entity_table_on_host(const Engine::Impl& engine);

// docs/math.md section 7 on the device: the conv prefix over the RoBERTa context and the entities, then the
// backbone decodes after `context` with it.
lm::Generation write_template_on_device(const Engine::Impl& engine, std::span<const std::int32_t> prompt_ids,
                                    std::span<const std::int32_t> entities, std::span<const std::int32_t> context,
                                    const lm::GenerateOptions& options);

// docs/math.md section 8 on the device: the generator decodes after `prompt` (CUDA graphs, on_token per token).
lm::Generation generate_reply_on_device(const Engine::Impl& engine, std::span<const std::int32_t> prompt,
                                    const lm::GenerateOptions& options);

}  // namespace ecr::pipeline
