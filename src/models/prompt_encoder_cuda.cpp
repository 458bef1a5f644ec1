#include "ecr/models/prompt_encoder_cuda.hpp"

#include <optional>
#include <string>
#include <vector>

#include "../device/tensor_cuda.hpp"
#include "../nn/ops_cuda.hpp"
#include "../nn/sparse_cuda.hpp"
#include "ecr/device/transfer_cuda.hpp"
#include "ecr/models/entity_encoder_cuda.hpp"
#include "emotion_fusion.cuh"
#include "prompt_weights.hpp"

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
  const auto on_device = [&](const Tensor& t) {
    return t.device() == Device::cuda ? convert(t, storage, stream) : upload(host_cast(t, storage), stream);
  };
  emotions_ = on_device(emotion_table);
  if (global_table.defined()) global_ = on_device(global_table);
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

// --- the whole prompt ---------------------------------------------------------------------------

namespace {

struct DeviceMlp {
  Linear first, second;
};

// Buffers a call enqueues work on; they are freed after the stream is synchronized.
using Scratch = std::vector<Tensor>;

cudaDataType_t blas_type(DType dtype) {
  switch (dtype) {
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

Tensor dense(Stream& stream, const Tensor& x, const Linear& layer, GemmMath math, nn::Activation activation,
             const char* name) {
  Tensor y = empty_device(x.dtype(), {rows(x), layer.out()}, name);
  linear(stream, x, layer, y, activation, false, math);
  return y;
}

// second(relu(first(x))) + x: every KGPrompt projection but emotion fusion. `x` is taken by
// value: callers pass scratch.back(), which the push below may move.
Tensor residual_mlp(Stream& stream, const Tensor x, const DeviceMlp& mlp, GemmMath math, Scratch& scratch,
                    const char* name) {
  scratch.push_back(dense(stream, x, mlp.first, math, nn::Activation::relu, "mlp hidden"));
  Tensor y = copy(x, stream, name);
  linear(stream, scratch.back(), mlp.second, y, nn::Activation::none, true, math);
  return y;
}

}  // namespace

struct PromptDevice::Impl {
  std::string name;
  PromptConfig config;
  PromptDeviceOptions options;
  Tensor entities, emotions, global, prefix_rows;  // E, M, G and the prefix rows
  DeviceMlp token_proj1, prompt_proj1;
  Linear token_proj2, cross_attn, prompt_proj2;
  std::optional<EmotionFusion> fusion;  // rec only

  void check_kind(PromptKind wanted) const {
    if (config.kind != wanted)
      fail<ConfigError>("component '{}' is a {} prompt, not a {} prompt", name,
                        config.kind == PromptKind::rec ? "rec" : "conv", wanted == PromptKind::rec ? "rec" : "conv");
  }
  void check_entities(std::span<const std::int32_t> ids) const {
    for (const std::int32_t id : ids)
      if (id < 0 || id >= config.n_entity)
        fail<InputError>("prompt '{}': entity id {} is outside [0, {})", name, id, config.n_entity);
  }
  // Tk = token_proj2(token_proj1(T) + T).
  Tensor token_features(Stream& stream, const Tensor& token_states, Scratch& scratch) const {
    if (!token_states.defined()) fail<InputError>("prompt '{}': no token states", name);
    detail::expect_device(token_states, "prompt token states");
    if (token_states.dtype() != options.storage || token_states.rank() != 2 ||
        token_states.dim(1) != config.token_hidden_size)
      fail<ShapeError>("prompt '{}': token states must be {} (n, {}), found {} {}", name, dtype_name(options.storage),
                       config.token_hidden_size, dtype_name(token_states.dtype()), shape_string(token_states.shape()));
    scratch.push_back(residual_mlp(stream, token_states, token_proj1, options.math, scratch, "token hidden"));
    return dense(stream, scratch.back(), token_proj2, options.math, nn::Activation::none, "token features");
  }
  Tensor gather(Stream& stream, std::span<const std::int32_t> ids) const {
    Tensor ek = empty_device(options.storage, {static_cast<std::int64_t>(ids.size()), config.hidden_size}, "entities");
    gather_rows(stream, entities, ids, ek, "entity id");
    return ek;
  }
  // The prefix rows followed by prompt_proj2(prompt_proj1(P) + P); synchronizes the stream.
  Tensor finish(Stream& stream, const Tensor& p, Scratch& scratch) const {
    const std::int64_t fixed = prefix_rows.dim(0), width = config.prefix_width();
    const std::int64_t count = p.defined() ? p.dim(0) : 0;
    Tensor out = empty_device(options.storage, {fixed + count, width}, "prompt");
    if (fixed > 0)
      ECR_CUDA_CHECK(cudaMemcpyAsync(out.raw(), prefix_rows.raw(), prefix_rows.nbytes(), cudaMemcpyDeviceToDevice,
                                     native(stream)));
    if (count > 0) {
      scratch.push_back(residual_mlp(stream, p, prompt_proj1, options.math, scratch, "prompt hidden"));
      linear(stream, scratch.back(), prompt_proj2, out.rows(fixed, count), nn::Activation::none, false, options.math);
    }
    stream.synchronize();  // the scratch buffers are freed on return
    return out;
  }
};

PromptDevice PromptDevice::load(const Component& component, const RelationCsr& edges,
                                const CooccurrenceMatrix* cooccurrence, PromptDeviceOptions options) {
  // The CPU twin's reader: the same weights, checks and errors.
  const prompt::PromptWeights w = prompt::PromptWeights::load(component, edges, cooccurrence != nullptr);
  detail::dispatch(options.storage, "prompt storage", [](auto) {});
  auto impl = std::make_shared<Impl>();
  impl->name = w.name;
  impl->config = w.config;
  impl->options = options;
  const PromptConfig& c = impl->config;
  const DType st = options.storage;
  const GemmMath math = options.math;
  Stream stream;
  Scratch scratch;
  const auto put = [&](const Tensor& host) { return upload(host_cast(host, st), stream); };
  const auto layer = [&](const nn::Linear& l) { return Linear::upload(l, stream, st); };
  const auto mlp = [&](const prompt::Mlp& m) { return DeviceMlp{layer(m.first), layer(m.second)}; };
  impl->token_proj1 = mlp(w.token_proj1);
  impl->token_proj2 = layer(w.token_proj2);
  impl->cross_attn = layer(w.cross_attn);
  impl->prompt_proj1 = mlp(w.prompt_proj1);
  impl->prompt_proj2 = layer(w.prompt_proj2);

  // The layers that build the static tables, kept until the final synchronize.
  std::vector<DeviceMlp> builders;
  std::vector<Linear> outputs;

  // E = proj2(proj1(g) + g), g = RGCN(node_embeds) + node_embeds.
  if (w.entity_source) {
    const prompt::EntitySource& e = *w.entity_source;
    const EntityEncoder rgcn(e.bases, e.comp, e.root, e.bias, stream, st, math);
    const RelationGraph graph = RelationGraph::upload(edges, stream);
    const Tensor x = put(e.node_embeds);
    Tensor g = rgcn.forward(x, graph, stream);
    const float one = 1.0f;
    ECR_CUDA_CHECK(cublasAxpyEx(detail::blas(stream), detail::narrow(g.numel(), "entity table"), &one, CUDA_R_32F,
                                x.raw(), blas_type(st), 1, g.raw(), blas_type(st), 1, CUDA_R_32F));
    builders.push_back(mlp(e.proj1));
    outputs.push_back(layer(e.proj2));
    scratch.push_back(residual_mlp(stream, g, builders.back(), math, scratch, "entity hidden"));
    impl->entities = dense(stream, scratch.back(), outputs.back(), math, nn::Activation::none, "entity table");
    stream.synchronize();  // x and g are freed on return from this block
  } else {
    impl->entities = put(w.entities);
  }
  if (c.kind == PromptKind::rec) {
    if (w.emotions.defined()) {
      impl->emotions = put(w.emotions);
    } else {
      builders.push_back(mlp(w.emo_proj1));
      outputs.push_back(layer(w.emo_proj2));
      scratch.push_back(put(w.emo_embeds));
      scratch.push_back(residual_mlp(stream, scratch.back(), builders.back(), math, scratch, "emotion hidden"));
      impl->emotions = dense(stream, scratch.back(), outputs.back(), math, nn::Activation::none, "emotion table");
    }
    if (cooccurrence) {
      // G = C E from the device-built E: cuSPARSE's SpMM for f32 storage, else the host's product.
      if (w.global.defined())
        impl->global = put(w.global);
      else if (impl->entities.dtype() == DType::f32)
        impl->global = cooccurrence_product(stream, *cooccurrence, impl->entities);
      else
        impl->global = put(cooccurrence->multiply(download(impl->entities, stream).to_f32()));
    }
    stream.synchronize();  // M and G are ready for the fusion's copies
    impl->fusion.emplace(impl->emotions, impl->global, w.emo_fuse_proj1.first, w.emo_fuse_proj1.second,
                         w.emo_fuse_proj2, stream, st, math);
  }
  // The learned prefix does not depend on the dialog, so its prompt_proj rows are static too.
  if (w.prefix_rows.defined()) {
    impl->prefix_rows = put(w.prefix_rows);
  } else {
    builders.push_back(mlp(w.prefix_proj));
    scratch.push_back(put(w.prefix_embeds));
    scratch.push_back(residual_mlp(stream, scratch.back(), builders.back(), math, scratch, "prefix"));
    scratch.push_back(residual_mlp(stream, scratch.back(), impl->prompt_proj1, math, scratch, "prefix hidden"));
    impl->prefix_rows = dense(stream, scratch.back(), impl->prompt_proj2, math, nn::Activation::none, "prefix rows");
  }
  stream.synchronize();  // every table is ready for any stream; scratch and builders are freed on return
  PromptDevice device;
  device.impl_ = std::move(impl);
  return device;
}

const PromptConfig& PromptDevice::config() const { return impl_->config; }
DType PromptDevice::storage() const { return impl_->options.storage; }
const Tensor& PromptDevice::entity_table() const { return impl_->entities; }
const Tensor& PromptDevice::emotion_table() const { return impl_->emotions; }
const Tensor& PromptDevice::global_entity_table() const { return impl_->global; }
const Tensor& PromptDevice::prefix_rows() const { return impl_->prefix_rows; }

Tensor PromptDevice::rec_prompt(Stream& stream, const RecPromptInput& input) const {
  const Impl& m = *impl_;
  m.check_kind(PromptKind::rec);
  m.check_entities(input.entities);
  const bool with_emotions = !input.emotion_ids.empty() || !input.emotion_probs.empty();
  if (with_emotions && input.global_entities && !m.global.defined())
    fail<ConfigError>("prompt '{}': global entities need the co-occurrence matrix at load", m.name);
  Scratch scratch;
  const Tensor tokens = m.token_features(stream, input.token_states, scratch);
  scratch.push_back(tokens);
  if (input.entities.empty()) return m.finish(stream, Tensor(), scratch);

  // Local entities: each entity attends over the dialog's tokens, P = softmax_tokens(A)^T Tk + Ek.
  const Tensor ek = m.gather(stream, input.entities);
  scratch.push_back(ek);
  Tensor p = token_entity_attention(stream, PromptKind::rec, tokens, ek, m.cross_attn, m.options.math);
  if (with_emotions)
    p = m.fusion->forward(stream, p, input.entities, input.emotion_ids, input.emotion_probs, input.global_entities);
  scratch.push_back(p);
  return m.finish(stream, p, scratch);
}

Tensor PromptDevice::conv_prompt(Stream& stream, const Tensor& token_states,
                                 std::span<const std::int32_t> entities) const {
  const Impl& m = *impl_;
  m.check_kind(PromptKind::conv);
  m.check_entities(entities);
  Scratch scratch;
  Tensor p = m.token_features(stream, token_states, scratch);
  scratch.push_back(p);
  if (!entities.empty()) {
    // Each token attends over the dialog's entities: P = softmax_entities(A) Ek + Tk.
    const Tensor ek = m.gather(stream, entities);
    scratch.push_back(ek);
    p = token_entity_attention(stream, PromptKind::conv, p, ek, m.cross_attn, m.options.math);
    scratch.push_back(p);
  }
  return m.finish(stream, p, scratch);
}

}  // namespace ecr::cuda
