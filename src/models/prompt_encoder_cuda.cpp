#include "ecr/models/prompt_encoder_cuda.hpp"

#include <vector>

#include "../device/tensor_cuda.hpp"
#include "../nn/ops_cuda.hpp"
#include "ecr/device/transfer_cuda.hpp"
#include "emotion_fusion.cuh"

namespace ecr::cuda {

using detail::cols;
using detail::native;
using detail::ptr;
using detail::rows;

namespace {

// A device copy of a device tensor, enqueued on the stream.
Tensor copy(const Tensor& t, Stream& stream, const char* name) {
  Tensor c = empty_device(t.dtype(), t.shape(), name);
  ECR_CUDA_CHECK(cudaMemcpyAsync(c.raw(), t.raw(), t.nbytes(), cudaMemcpyDeviceToDevice, native(stream)));
  return c;
}

}  // namespace

Tensor token_entity_attention(Stream& stream, PromptKind kind, const Tensor& tokens, const Tensor& entities,
                              const Linear& cross_attn, GemmMath math) {
  detail::expect_matrix(tokens, "token_entity_attention");
  detail::expect_matrix(entities, "token_entity_attention");
  const std::int64_t n = rows(tokens), count = rows(entities), h = cols(tokens);
  if (tokens.rank() != 2 || entities.rank() != 2 || cols(entities) != h || entities.dtype() != tokens.dtype() ||
      cross_attn.weight.dtype() != tokens.dtype() || cross_attn.in() != h || cross_attn.out() != h)
    fail<ShapeError>("token_entity_attention: tokens '{}' {}, entities '{}' {} and cross_attn '{}' {} must share H "
                     "and the storage dtype",
                     tokens.name(), shape_string(tokens.shape()), entities.name(), shape_string(entities.shape()),
                     cross_attn.weight.name(), shape_string(cross_attn.weight.shape()));
  const bool rec = kind == PromptKind::rec;
  Tensor p = copy(rec ? entities : tokens, stream, "prompt rows");  // the residual term
  if (n == 0 || count == 0) return p;
  const float scale = 1.0f / static_cast<float>(h);  // KGPrompt scales by 1/H, not 1/sqrt(H)
  const Tensor query = empty_device(tokens.dtype(), {n, h}, "cross attention");
  linear(stream, tokens, cross_attn, query, nn::Activation::none, false, math);
  if (rec) {
    // Each entity attends over the tokens: the rows of A^T = Ek query^T.
    const Tensor weights = empty_device(tokens.dtype(), {count, n}, "token weights");
    gemm(stream, entities, false, query, true, weights, 1.0f, 0.0f, math);
    softmax_rows(stream, weights, scale);
    gemm(stream, weights, false, tokens, false, p, 1.0f, 1.0f, math);
    stream.synchronize();  // query and weights are freed on return
  } else {
    const Tensor weights = empty_device(tokens.dtype(), {n, count}, "entity weights");
    gemm(stream, query, false, entities, true, weights, 1.0f, 0.0f, math);
    softmax_rows(stream, weights, scale);
    gemm(stream, weights, false, entities, false, p, 1.0f, 1.0f, math);
    stream.synchronize();
  }
  return p;
}

EmotionFusion::EmotionFusion(const Tensor& emotion_table, const Tensor& global_table, const nn::Linear& fuse1_first,
                             const nn::Linear& fuse1_second, const nn::Linear& fuse2, Stream& stream, DType storage,
                             GemmMath math)
    : storage_(storage), math_(math) {
  emotion_table.expect_rank(emotion_table.dtype(), 2);
  emotion_dim_ = emotion_table.dim(1);
  hidden_ = fuse2.out();
  const std::int64_t joined = hidden_ + emotion_dim_;
  if (fuse1_first.in() != joined || fuse1_first.out() != hidden_ || fuse1_second.in() != hidden_ ||
      fuse1_second.out() != joined || fuse2.in() != joined)
    fail<ShapeError>("emotion fusion: layers '{}' {}, '{}' {} and '{}' {} do not chain H + h = {} -> H = {} -> H + h -> H",
                     fuse1_first.weight.name(), shape_string(fuse1_first.weight.shape()), fuse1_second.weight.name(),
                     shape_string(fuse1_second.weight.shape()), fuse2.weight.name(),
                     shape_string(fuse2.weight.shape()), joined, hidden_);
  if (global_table.defined() && (global_table.rank() != 2 || global_table.dim(1) != hidden_))
    fail<ShapeError>("emotion fusion: global entity table '{}' {} must have H = {} columns", global_table.name(),
                     shape_string(global_table.shape()), hidden_);
  emotions_ = upload(host_cast(emotion_table, storage), stream);
  if (global_table.defined()) global_ = upload(host_cast(global_table, storage), stream);
  fuse1_first_ = Linear::upload(fuse1_first, stream, storage);
  fuse1_second_ = Linear::upload(fuse1_second, stream, storage);
  fuse2_ = Linear::upload(fuse2, stream, storage);
  stream.synchronize();
}

Tensor EmotionFusion::forward(Stream& stream, const Tensor& local, std::span<const std::int32_t> entities,
                              std::span<const std::int32_t> emotion_ids, std::span<const float> emotion_probs,
                              bool global_entities) const {
  detail::expect_matrix(local, "emotion fusion");
  const auto count = static_cast<std::int64_t>(entities.size());
  if (local.rank() != 2 || local.dtype() != storage_ || local.dim(0) != count || local.dim(1) != hidden_)
    fail<ShapeError>("emotion fusion: entity rows '{}' must be {} ({}, {}), found {} {}", local.name(),
                     dtype_name(storage_), count, hidden_, dtype_name(local.dtype()), shape_string(local.shape()));
  if (count == 0 || emotion_ids.size() != emotion_probs.size() || emotion_ids.empty() ||
      emotion_ids.size() % entities.size() != 0)
    fail<InputError>("emotion fusion: {} emotion ids and {} probabilities do not form {} rows of equal length",
                     emotion_ids.size(), emotion_probs.size(), count);
  if (global_entities && !global_.defined())
    fail<ConfigError>("emotion fusion: global entities need the global entity table");
  for (const std::int32_t id : emotion_ids)
    if (id < 0 || id >= emotions_.dim(0))
      fail<InputError>("emotion fusion: emotion id {} is outside [0, {})", id, emotions_.dim(0));
  if (global_entities)
    for (const std::int32_t e : entities)
      if (e < 0 || e >= global_.dim(0)) fail<InputError>("emotion fusion: entity id {} is outside [0, {})", e, global_.dim(0));

  const int slots = static_cast<int>(emotion_ids.size() / entities.size());
  const Tensor ids = upload(Tensor::from_vector(std::vector<std::int32_t>(emotion_ids.begin(), emotion_ids.end()),
                                                {count, slots}, "emotion ids"),
                            stream);
  const Tensor probs = upload(
      Tensor::from_vector(std::vector<float>(emotion_probs.begin(), emotion_probs.end()), {count, slots}, "emotion probs"),
      stream);
  const Tensor entity_ids = upload(
      Tensor::from_vector(std::vector<std::int32_t>(entities.begin(), entities.end()), {count}, "entity ids"), stream);
  const std::int64_t rows_out = global_entities ? 2 * count : count;
  const Tensor joined = empty_device(storage_, {rows_out, hidden_ + emotion_dim_}, "entities with emotions");
  detail::dispatch(storage_, "emotion fusion", [&](auto tag) {
    using T = decltype(tag);
    ECR_CUDA_CHECK(kernels::emotion_join(ptr<T>(local), global_.defined() ? ptr<T>(global_) : nullptr,
                                         global_.defined() ? global_.dim(0) : 0, ptr<std::int32_t>(entity_ids), count,
                                         detail::narrow(hidden_, "emotion fusion"), ptr<T>(emotions_),
                                         emotions_.dim(0), detail::narrow(emotion_dim_, "emotion fusion"),
                                         ptr<std::int32_t>(ids), ptr<float>(probs), slots, global_entities,
                                         ptr<T>(joined), native(stream)));
  });
  // fuse2(fuse1(joined)), fuse1 = Linear, ReLU, Linear: bias and ReLU run as GEMM epilogues.
  const Tensor hidden = empty_device(storage_, {rows_out, hidden_}, "fusion hidden");
  const Tensor widened = empty_device(storage_, {rows_out, hidden_ + emotion_dim_}, "fusion output");
  Tensor fused = empty_device(storage_, {rows_out, hidden_}, "fused entities");
  linear(stream, joined, fuse1_first_, hidden, nn::Activation::relu, false, math_);
  linear(stream, hidden, fuse1_second_, widened, nn::Activation::none, false, math_);
  linear(stream, widened, fuse2_, fused, nn::Activation::none, false, math_);
  stream.synchronize();  // the temporaries are freed on return
  return fused;
}

}  // namespace ecr::cuda
