// The device twins of the Engine's models (engine_cuda.hpp): each loads on the engine's device,
// read by the same loaders as the CPU models.
#include "engine_cuda.hpp"

#include <algorithm>

#include "../nn/ops_cuda.hpp"
#include "components.hpp"
#include "ecr/device/transfer_cuda.hpp"
#include "ecr/nn/weights.hpp"

namespace ecr {

using namespace pipeline;

const DeviceModels& Engine::Impl::device() const {
  if (!on_device()) fail<DeviceError>("engine: its device is {}, not a CUDA device", options.device.str());
  return *device_.get([&] { return std::make_shared<const DeviceModels>(*this); });
}

namespace pipeline {

void DeviceModels::select() const { cuda::select_device(engine_.options.device.index); }

const cuda::Gpt2Device& DeviceModels::backbone() const {
  return backbone_.get([&] {
    select();
    return cuda::Gpt2Device::load(read_component(engine_.bundle, engine_.options.components.backbone, "the backbone"));
  });
}

const cuda::RobertaDevice& DeviceModels::text_encoder() const {
  return text_encoder_.get([&] {
    select();
    return cuda::RobertaDevice::load(
        read_component(engine_.bundle, engine_.options.components.text_encoder, "the text encoder"));
  });
}

const cuda::Gpt2Device& DeviceModels::generator() const {
  return generator_.get([&] {
    select();
    return cuda::Gpt2Device::load(read_component(engine_.bundle, engine_.options.components.generator, "the generator"));
  });
}

const DeviceRecPrompt& DeviceModels::rec_prompt() const {
  return rec_prompt_.get([&] {
    select();
    const Component component = read_component(engine_.bundle, engine_.options.components.rec_prompt, "the rec prompt");
    const std::optional<CooccurrenceMatrix> matrix = engine_.cooccurrence();
    DeviceRecPrompt p{cuda::PromptDevice::load(component, engine_.relations(), matrix ? &*matrix : nullptr), {}, {}};
    const auto items = engine_.kg.items();
    p.item_ids.assign(items.begin(), items.end());
    std::sort(p.item_ids.begin(), p.item_ids.end());
    const Tensor& table = p.prompt.entity_table();
    p.item_table = cuda::empty_device(table.dtype(), {static_cast<std::int64_t>(p.item_ids.size()), table.dim(1)},
                                      "item table");
    cuda::Stream stream;
    cuda::gather_rows(stream, table, p.item_ids, p.item_table, "item id");
    stream.synchronize();
    return p;
  });
}

const cuda::PromptDevice& DeviceModels::conv_prompt() const {
  return conv_prompt_.get([&] {
    select();
    return cuda::PromptDevice::load(
        read_component(engine_.bundle, engine_.options.components.conv_prompt, "the conv prompt"), engine_.relations());
  });
}

const DeviceClassifier& DeviceModels::classifier() const {
  return classifier_.get([&] {
    select();
    const std::string& name = engine_.options.components.emotion_classifier;
    const Component component = read_component(engine_.bundle, name, "the emotion classifier");
    DeviceClassifier c{cuda::Gpt2Device::load(component), {}};
    const Gpt2Config& config = c.model.config();
    const std::string score = name + "/score.weight";
    check_classifier_head(name, engine_.bundle.contains(score), config.num_labels);
    cuda::Stream stream;
    c.score = cuda::upload(
        cuda::host_cast(nn::load_weight(engine_.bundle, score, {config.num_labels, config.n_embd}), DType::f32), stream);
    stream.synchronize();
    return c;
  });
}

}  // namespace pipeline
}  // namespace ecr
