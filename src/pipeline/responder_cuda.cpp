// The Responder's decoding on the device (engine_cuda.hpp); the host stages around it are the
// CPU path's (responder.cpp).
#include <vector>

#include "engine_cuda.hpp"

namespace ecr::pipeline {

lm::Generation write_template_on_device(const Engine::Impl& engine, std::span<const std::int32_t> prompt_ids,
                                    std::span<const std::int32_t> entities, std::span<const std::int32_t> context,
                                    const lm::GenerateOptions& options) {
  const DeviceModels& device = engine.device();
  device.select();
  cuda::Stream stream;
  const std::vector<std::vector<std::int32_t>> batch{{prompt_ids.begin(), prompt_ids.end()}};
  const std::vector<Tensor> token_states = device.text_encoder().forward(stream, batch);
  const Tensor prefix = device.conv_prompt().conv_prompt(stream, token_states.front(), entities);
  // Room for the prefix, the context and every new token (generate keeps the newest context
  // tokens that fit the positions, so this is an upper bound).
  const auto capacity = prefix.dim(0) + static_cast<std::int64_t>(context.size()) + options.max_new_tokens;
  cuda::Gpt2Session session = device.backbone().start(capacity, prefix);
  return session.generate(context, options);
}

lm::Generation generate_reply_on_device(const Engine::Impl& engine, std::span<const std::int32_t> prompt,
                                    const lm::GenerateOptions& options) {
  const DeviceModels& device = engine.device();
  device.select();
  cuda::Gpt2Session session =
      device.generator().start(static_cast<std::int64_t>(prompt.size()) + options.max_new_tokens);
  return session.generate(prompt, options);
}

}  // namespace ecr::pipeline
