#include "ecr/models/roberta_cuda.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../device/tensor_cuda.hpp"
#include "../nn/gemm_cuda.hpp"
#include "../nn/ops_cuda.hpp"
#include "activation.cuh"
#include "attention.cuh"
#include "ecr/device/transfer_cuda.hpp"
#include "embedding.cuh"
#include "layer_norm.cuh"

namespace ecr::cuda {

using detail::native;
using detail::ptr;

struct RobertaDevice::Weights {
  struct Layer {
    Linear qkv;  // (3 * hidden, hidden): queries, keys, values
    Linear attention_output;
    LayerNorm attention_norm;
    Linear intermediate;
    Linear output;
    LayerNorm output_norm;
  };
  std::string name;
  RobertaConfig config;
  RobertaDeviceOptions options;
  Tensor word_embeddings;  // (vocab, hidden)
  // (max_position_embeddings, hidden): each position row plus token type 0's row, summed once at
  // load in f32 as the CPU sums them per token, so one gather and the LayerNorm's residual add
  // finish the embeddings.
  Tensor positions;
  LayerNorm embeddings_norm;
  std::vector<Layer> layers;
};

RobertaDevice RobertaDevice::load(const Bundle& bundle, std::string_view name, RobertaDeviceOptions options) {
  return load(read_component(bundle, name), options);
}

RobertaDevice RobertaDevice::load(const Component& component, RobertaDeviceOptions options) {
  detail::dispatch(options.storage, "RoBERTa device storage", [](auto) {});
  const RobertaWeights host = RobertaWeights::load(component);
  const std::string& name = component.name;
  const RobertaConfig& c = host.config;
  if (c.head_dim() > kernels::kMaxHeadDim)
    fail<ConfigError>("component '{}': head_dim {} exceeds the {} the CUDA attention supports", name, c.head_dim(),
                      kernels::kMaxHeadDim);

  auto w = std::make_shared<Weights>();
  w->name = host.name;
  w->config = c;
  w->options = options;
  Stream stream;
  const auto matrix = [&](const Tensor& t) { return upload(host_cast(t, options.storage), stream); };
  const auto linear = [&](const nn::Linear& layer) { return Linear::upload(layer, stream, options.storage); };
  w->word_embeddings = matrix(host.word_embeddings.weight);
  Tensor positions = host.position_embeddings.clone();
  nn::view(positions).rowwise() += nn::view(host.token_type_embeddings).row(0);
  w->positions = matrix(positions);
  w->embeddings_norm = LayerNorm::upload(host.embeddings_norm, stream);
  for (const RobertaWeights::Layer& l : host.layers)
    w->layers.push_back({linear(l.qkv), linear(l.attention_output), LayerNorm::upload(l.attention_norm, stream),
                         linear(l.intermediate), linear(l.output), LayerNorm::upload(l.output_norm, stream)});
  stream.synchronize();  // callers use the weights from their own streams; `positions` is freed on return

  RobertaDevice model;
  model.weights_ = std::move(w);
  return model;
}

const RobertaConfig& RobertaDevice::config() const { return weights_->config; }
const std::string& RobertaDevice::name() const { return weights_->name; }
DType RobertaDevice::storage() const { return weights_->options.storage; }

namespace {

// The packed last hidden states (rows, hidden) and where each sequence starts.
struct Packed {
  Tensor hidden;
  std::vector<std::int64_t> offsets;
};

Packed run(const RobertaDevice::Weights& w, Stream& stream, std::span<const std::vector<std::int32_t>> batch) {
  const RobertaConfig& c = w.config;
  const std::int64_t h = c.hidden_size, hd = c.head_dim(), heads = c.num_attention_heads, inner = c.intermediate_size;
  const auto sequences = static_cast<std::int64_t>(batch.size());

  // Host side first: every check before any work is enqueued. One i32 upload carries the token
  // ids, the position ids and the attention batch (q_start, q_count, past).
  Packed out;
  out.offsets.assign(batch.size() + 1, 0);
  std::vector<std::int32_t> ints;
  std::vector<std::int32_t> positions;
  std::int64_t longest = 0;
  for (std::size_t b = 0; b < batch.size(); ++b) {
    const std::vector<std::int32_t> p = c.position_ids(batch[b], w.name, b);
    for (const std::int32_t id : batch[b])
      if (id < 0 || id >= c.vocab_size) fail<InputError>("token id {} is outside [0, {})", id, c.vocab_size);
    ints.insert(ints.end(), batch[b].begin(), batch[b].end());
    positions.insert(positions.end(), p.begin(), p.end());
    const auto n = static_cast<std::int64_t>(batch[b].size());
    out.offsets[b + 1] = out.offsets[b] + n;
    longest = std::max(longest, n);
  }
  const std::int64_t rows = out.offsets.back();
  const DType st = w.options.storage;
  out.hidden = empty_device(st, {rows, h}, w.name + " last hidden state");
  if (rows == 0) return out;
  detail::narrow(rows * 3 * h, "RoBERTa forward");
  detail::narrow(sequences, "RoBERTa forward");
  ints.insert(ints.end(), positions.begin(), positions.end());
  for (std::size_t b = 0; b < batch.size(); ++b) ints.push_back(static_cast<std::int32_t>(out.offsets[b]));
  for (std::size_t b = 0; b < batch.size(); ++b) ints.push_back(static_cast<std::int32_t>(batch[b].size()));
  ints.insert(ints.end(), batch.size(), 0);  // nothing cached before a sequence's own keys
  const Tensor device_ints =
      upload(Tensor::from_vector(ints, {static_cast<std::int64_t>(ints.size())}, "RoBERTa inputs"), stream);
  const std::int32_t* ids = ptr<std::int32_t>(device_ints);
  const std::int32_t* position_ids = ids + rows;
  const std::int32_t* q_start = position_ids + rows;
  const std::int32_t* q_count = q_start + sequences;
  const std::int32_t* past = q_count + sequences;

  // Three (rows, hidden) buffers rotate: `a` holds the layer input (and at the end the output),
  // `b` the attention output and then the mid-layer state, `c` each projection.
  const Tensor b_buf = empty_device(st, {rows, h}, "RoBERTa b");
  const Tensor c_buf = empty_device(st, {rows, h}, "RoBERTa c");
  const Tensor qkv_buf = empty_device(st, {rows, 3 * h}, "RoBERTa qkv");
  const Tensor mlp_buf = empty_device(st, {rows, inner}, "RoBERTa mlp");
  // Keys and values as the attention kernels read them: (sequence, head, position, head_dim).
  const std::int64_t head_stride = longest * hd, seq_stride = heads * head_stride;
  const Tensor kv = empty_device(st, {2, sequences, heads, longest, hd}, "RoBERTa keys and values");

  const int hn = static_cast<int>(h);
  const GemmMath math = w.options.math;
  const cudaStream_t s = native(stream);
  cublasHandle_t blas = detail::blas(stream);
  detail::dispatch(st, "RoBERTa", [&](auto tag) {
    using T = decltype(tag);
    T* a = ptr<T>(out.hidden);
    T* b = ptr<T>(b_buf);
    T* cp = ptr<T>(c_buf);
    T* qkv = ptr<T>(qkv_buf);
    T* mlp = ptr<T>(mlp_buf);
    T* keys = ptr<T>(kv);
    T* values = keys + sequences * seq_stride;

    ECR_CUDA_CHECK(kernels::embed<T>(ids, rows, ptr<T>(w.word_embeddings), c.vocab_size, nullptr, 0, 0, nullptr, b,
                                     hn, s));
    ECR_CUDA_CHECK(kernels::embed<T>(position_ids, rows, ptr<T>(w.positions), c.max_position_embeddings, nullptr, 0,
                                     0, nullptr, cp, hn, s));
    const LayerNorm& en = w.embeddings_norm;
    ECR_CUDA_CHECK(kernels::residual_layer_norm<T>(b, cp, nullptr, ptr<float>(en.weight), ptr<float>(en.bias), a, rows,
                                                   hn, en.eps, s));

    kernels::AttentionParams<T> p;
    p.q = qkv;
    p.k = keys;
    p.v = values;
    p.out = b;
    p.q_stride = 3 * h;
    p.out_stride = h;
    p.kv_seq_stride = seq_stride;
    p.kv_head_stride = head_stride;
    p.q_start = q_start;
    p.q_count = q_count;
    p.past = past;
    p.batch = static_cast<int>(sequences);
    p.heads = static_cast<int>(heads);
    p.head_dim = static_cast<int>(hd);
    p.scale = 1.0f / std::sqrt(static_cast<float>(hd));
    p.causal = false;
    for (const RobertaDevice::Weights::Layer& layer : w.layers) {
      detail::gemm(blas, false, true, rows, 3 * h, h, 1.0f, a, h, layer.qkv.weight.raw(), h, st, 0.0f, qkv, 3 * h, st,
                   math);
      ECR_CUDA_CHECK(kernels::bias_activation<T>(qkv, ptr<float>(layer.qkv.bias), rows, 3 * hn,
                                                 nn::Activation::none, s));
      ECR_CUDA_CHECK(kernels::append_kv<T>(qkv + h, qkv + 2 * h, 3 * h, keys, values, seq_stride, head_stride, longest,
                                           p.heads, p.head_dim, q_start, q_count, past, p.batch,
                                           static_cast<int>(longest), s));
      ECR_CUDA_CHECK(kernels::attention_prefill<T>(p, static_cast<int>(longest), s));
      detail::gemm(blas, false, true, rows, h, h, 1.0f, b, h, layer.attention_output.weight.raw(), h, st, 0.0f, cp, h,
                   st, math);
      const LayerNorm& n1 = layer.attention_norm;
      ECR_CUDA_CHECK(kernels::residual_layer_norm<T>(a, cp, ptr<float>(layer.attention_output.bias),
                                                     ptr<float>(n1.weight), ptr<float>(n1.bias), b, rows, hn, n1.eps,
                                                     s));
      detail::gemm(blas, false, true, rows, inner, h, 1.0f, b, h, layer.intermediate.weight.raw(), h, st, 0.0f, mlp,
                   inner, st, math);
      ECR_CUDA_CHECK(kernels::bias_activation<T>(mlp, ptr<float>(layer.intermediate.bias), rows,
                                                 static_cast<int>(inner), c.activation, s));
      detail::gemm(blas, false, true, rows, h, inner, 1.0f, mlp, inner, layer.output.weight.raw(), inner, st, 0.0f, cp,
                   h, st, math);
      const LayerNorm& n2 = layer.output_norm;
      ECR_CUDA_CHECK(kernels::residual_layer_norm<T>(b, cp, ptr<float>(layer.output.bias), ptr<float>(n2.weight),
                                                     ptr<float>(n2.bias), a, rows, hn, n2.eps, s));
    }
  });
  stream.synchronize();  // the scratch buffers and the uploaded inputs are freed on return
  return out;
}

std::vector<Tensor> split(const Tensor& packed, const std::vector<std::int64_t>& offsets) {
  std::vector<Tensor> out;
  for (std::size_t b = 0; b + 1 < offsets.size(); ++b)
    out.push_back(packed.rows(offsets[b], offsets[b + 1] - offsets[b]));
  return out;
}

}  // namespace

std::vector<Tensor> RobertaDevice::forward(Stream& stream, std::span<const std::vector<std::int32_t>> batch) const {
  const Packed packed = run(*weights_, stream, batch);
  return split(packed.hidden, packed.offsets);
}

std::vector<Tensor> RobertaDevice::encode(Stream& stream, std::span<const std::vector<std::int32_t>> batch) const {
  const Packed packed = run(*weights_, stream, batch);
  Tensor host = download(packed.hidden, stream);
  if (host.dtype() != DType::f32) host = host.to_f32();
  return split(host, packed.offsets);
}

std::vector<Tensor> RobertaDevice::encode(std::span<const std::vector<std::int32_t>> batch) const {
  Stream stream;
  return encode(stream, batch);
}

}  // namespace ecr::cuda
