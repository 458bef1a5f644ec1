// The Recommender's model stages on the device (engine_cuda.hpp); the host stages before and
// after them are the CPU path's (recommender.cpp).
#include <algorithm>
#include <cstring>

#include "ecr/device/transfer_cuda.hpp"
#include "ecr/nn/rank_cuda.hpp"
#include "engine_cuda.hpp"

namespace ecr::pipeline {

namespace {

// The final hidden state of each sequence, one fresh session each (prefix rows + its tokens),
// gathered into a (B, H) device tensor on `stream`.
Tensor last_hidden_states(const cuda::Gpt2Device& model, std::span<const std::vector<std::int32_t>> sequences,
                          std::span<const Tensor> prefixes, cuda::Stream& stream) {
  const auto batch = static_cast<std::int64_t>(sequences.size());
  const std::int64_t width = model.config().n_embd;
  const DType storage = model.storage();
  Tensor z = Tensor::empty(storage, {batch, width}, "z");
  const std::size_t row_bytes = static_cast<std::size_t>(width) * dtype_size(storage);
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::vector<std::int32_t>& ids = sequences[static_cast<std::size_t>(b)];
    const Tensor prefix = prefixes.empty() ? Tensor() : prefixes[static_cast<std::size_t>(b)];
    const std::int64_t rows = (prefix.defined() ? prefix.dim(0) : 0) + static_cast<std::int64_t>(ids.size());
    cuda::Gpt2Session session = model.start(rows, prefix);
    const cuda::Gpt2DeviceOutput out = session.forward(ids, Logits::none);
    const Tensor last = cuda::download(out.hidden.rows(out.hidden.dim(0) - 1, 1), session.stream());
    std::memcpy(static_cast<std::byte*>(z.raw()) + static_cast<std::size_t>(b) * row_bytes, last.raw(), row_bytes);
  }
  return cuda::upload(z, stream);
}

}  // namespace

Tensor classify_on_device(const Engine::Impl& engine, std::span<const std::vector<std::int32_t>> inputs) {
  const DeviceModels& device = engine.device();
  device.select();
  const DeviceClassifier& classifier = device.classifier();
  for (const auto& ids : inputs)
    if (ids.empty())
      fail<InputError>("component '{}': cannot classify an empty sequence", classifier.model.name());
  cuda::Stream stream;
  const Tensor z = last_hidden_states(classifier.model, inputs, {}, stream);
  const Tensor scores = cuda::score_rows(stream, z, classifier.score);
  return cuda::download(scores, stream);
}

Tensor entity_table_on_host(const Engine::Impl& engine) {
  const DeviceModels& device = engine.device();
  device.select();
  cuda::Stream stream;
  const Tensor table = cuda::download(device.rec_prompt().prompt.entity_table(), stream);
  return table.dtype() == DType::f32 ? table : table.to_f32();
}

std::vector<RecModelOutput> recommend_on_device(const Engine::Impl& engine, std::span<const RecModelInput> inputs,
                                                bool global_entities, std::size_t top_k, bool all_scores) {
  const DeviceModels& device = engine.device();
  device.select();
  const cuda::RobertaDevice& text_encoder = device.text_encoder();
  const DeviceRecPrompt& rec = device.rec_prompt();
  const cuda::Gpt2Device& backbone = device.backbone();
  const std::size_t batch = inputs.size();
  cuda::Stream stream;

  // docs/math.md section 4: the text encoder over the batch, then each dialog's rec prompt.
  std::vector<std::vector<std::int32_t>> prompt_ids, context_ids;
  for (const RecModelInput& in : inputs) {
    prompt_ids.push_back(in.prompt_ids);
    context_ids.push_back(in.context_ids);
  }
  const std::vector<Tensor> token_states = text_encoder.forward(stream, prompt_ids);
  std::vector<Tensor> prefixes(batch);
  for (std::size_t b = 0; b < batch; ++b) {
    const RecModelInput& in = inputs[b];
    prefixes[b] = rec.prompt.rec_prompt(
        stream, {token_states[b], in.entities, in.emotion_ids, in.emotion_probs, global_entities});
  }

  // docs/math.md section 5: z is the backbone's last hidden state after the prefix and the context.
  const Tensor z = last_hidden_states(backbone, context_ids, prefixes, stream);

  // The ranking over the items: enough candidates that top_k remain after the exclusions.
  std::size_t excluded = 0;
  for (const RecModelInput& in : inputs) {
    std::size_t n = 0;
    for (const std::int64_t id : in.excluded)
      n += std::binary_search(rec.item_ids.begin(), rec.item_ids.end(), static_cast<std::int32_t>(id)) ? 1 : 0;
    excluded = std::max(excluded, n);
  }
  const std::size_t items = rec.item_ids.size();
  const auto k = static_cast<std::int64_t>(std::min(items, top_k + excluded));
  const Tensor item_scores = cuda::score_rows(stream, z, rec.item_table);
  const std::vector<std::vector<cuda::RankedItem>> ranked = cuda::top_k_rows(stream, item_scores, k);

  std::vector<RecModelOutput> out(batch);
  for (std::size_t b = 0; b < batch; ++b) {
    for (const cuda::RankedItem& r : ranked[b]) {
      if (out[b].items.size() == top_k) break;
      const std::int32_t id = rec.item_ids[static_cast<std::size_t>(r.id)];
      if (!inputs[b].excluded.count(id)) out[b].items.push_back({id, {}, r.score, 0, {}});
    }
  }
  if (all_scores) {
    const Tensor scores = cuda::download(cuda::score_rows(stream, z, rec.prompt.entity_table()), stream);
    const std::int64_t n = scores.dim(1);
    for (std::size_t b = 0; b < batch; ++b) {
      const float* s = scores.data<float>() + static_cast<std::int64_t>(b) * n;
      out[b].scores.assign(s, s + n);
    }
  }
  return out;
}

}  // namespace ecr::pipeline
