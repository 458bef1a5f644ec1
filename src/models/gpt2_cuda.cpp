#include "ecr/models/gpt2_cuda.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "../device/tensor_cuda.hpp"
#include "../nn/gemm_cuda.hpp"
#include "../nn/ops_cuda.hpp"
#include "activation.cuh"
#include "attention.cuh"
#include "decode_state.cuh"
#include "ecr/device/transfer_cuda.hpp"
#include "ecr/nn/weights.hpp"
#include "embedding.cuh"
#include "layer_norm.cuh"
#include "sampling.cuh"

namespace ecr::cuda {

using detail::native;
using detail::ptr;

struct Gpt2Device::Weights {
  struct Layer {
    LayerNorm ln_1;
    Linear c_attn;  // (3 * n_embd, n_embd): queries, keys, values
    Linear c_proj;
    LayerNorm ln_2;
    Linear c_fc;
    Linear mlp_proj;
  };
  std::string name;
  Gpt2Config config;
  Gpt2DeviceOptions options;
  Tensor wte;  // (vocab, n_embd)
  Tensor wpe;  // (n_positions, n_embd)
  std::vector<Layer> layers;
  LayerNorm ln_f;
  Tensor lm_head;  // (vocab, n_embd): wte itself when tied
};

Gpt2Device Gpt2Device::load(const Bundle& bundle, std::string_view name, Gpt2DeviceOptions options) {
  return load(read_component(bundle, name), options);
}

Gpt2Device Gpt2Device::load(const Component& component, Gpt2DeviceOptions options) {
  // The CPU model's checks, then its loaders, so both read the same weights.
  component.expect_type({"gpt2", "gpt2_classifier"});
  const Bundle& bundle = *component.bundle;
  const std::string& name = component.name;
  detail::dispatch(options.storage, "GPT-2 device storage", [](auto) {});

  auto w = std::make_shared<Weights>();
  w->name = name;
  w->config = Gpt2Config::from_fields(component.config);
  w->options = options;
  const Gpt2Config& c = w->config;
  if (c.head_dim() > kernels::kMaxHeadDim)
    fail<ConfigError>("component '{}': head_dim {} exceeds the {} the CUDA attention supports", name, c.head_dim(),
                      kernels::kMaxHeadDim);

  const nn::Conv1dLayout layout = nn::conv1d_layout(component);
  Stream stream;
  const auto matrix = [&](const Tensor& host) { return upload(host_cast(host, options.storage), stream); };
  const auto norm = [&](const std::string& prefix) {
    return LayerNorm::upload(nn::load_layer_norm(bundle, prefix, c.n_embd, c.layer_norm_epsilon), stream);
  };
  const auto conv1d = [&](const std::string& prefix, std::int64_t in, std::int64_t out) {
    return Linear::upload(nn::load_conv1d(bundle, prefix, in, out, DType::f32, layout), stream, options.storage);
  };
  const std::string t = w->name + "/transformer.";
  w->wte = matrix(nn::load_weight(bundle, t + "wte.weight", {c.vocab_size, c.n_embd}));
  w->wpe = matrix(nn::load_weight(bundle, t + "wpe.weight", {c.n_positions, c.n_embd}));
  for (std::int64_t l = 0; l < c.n_layer; ++l) {
    const std::string h = t + "h." + std::to_string(l) + ".";
    w->layers.push_back({norm(h + "ln_1"), conv1d(h + "attn.c_attn", c.n_embd, 3 * c.n_embd),
                         conv1d(h + "attn.c_proj", c.n_embd, c.n_embd), norm(h + "ln_2"),
                         conv1d(h + "mlp.c_fc", c.n_embd, c.n_inner), conv1d(h + "mlp.c_proj", c.n_inner, c.n_embd)});
  }
  w->ln_f = norm(t + "ln_f");
  w->lm_head = component.entry.boolean_or("tied_lm_head", true)
                   ? w->wte
                   : matrix(nn::load_weight(bundle, w->name + "/lm_head.weight", {c.vocab_size, c.n_embd}));
  stream.synchronize();  // sessions use the weights from their own streams

  Gpt2Device model;
  model.weights_ = std::move(w);
  return model;
}

const Gpt2Config& Gpt2Device::config() const { return weights_->config; }
const std::string& Gpt2Device::name() const { return weights_->name; }
DType Gpt2Device::storage() const { return weights_->options.storage; }

// --- session ----------------------------------------------------------------------------------

namespace {

// What a captured decode step bakes in: a graph is reused only for the same choices.
struct GraphKey {
  float temperature = 0.0f;
  std::int64_t top_k = 0;
  float top_p = 1.0f;
  std::uint64_t seed = 0;
  float repetition_penalty = 1.0f;
  std::int64_t no_repeat_ngram_size = 0;
  bool operator==(const GraphKey&) const = default;
};

GraphKey key_of(const lm::GenerateOptions& o) {
  return {o.temperature, o.top_k, o.top_p, o.seed, o.repetition_penalty, o.no_repeat_ngram_size};
}

// The kernels index the embedding table with the ids unchecked: they are checked here first.
void check_ids(const Gpt2Config& c, std::span<const std::int32_t> ids) {
  for (const std::int32_t id : ids)
    if (id < 0 || id >= c.vocab_size) fail<InputError>("token id {} is outside [0, {})", id, c.vocab_size);
}

constexpr std::size_t kBlasWorkspaceBytes = 32u << 20;  // cuBLAS's recommendation for Hopper
constexpr std::int64_t kStateInts = 8;                  // DecodeState, padded
static_assert(sizeof(kernels::DecodeState) <= kStateInts * sizeof(std::int32_t));
// set_state writes the first four fields alone: they must be the struct's first four ints.
static_assert(offsetof(kernels::DecodeState, position) == 3 * sizeof(std::int32_t));

// Writes a prefix prompt's rows, (S, layer, key|value, head, head_dim), into the first S rows of a
// cache laid out [layer][key|value][head][capacity][head_dim] in `storage`. The rows are f32 on
// the host, or a device tensor (any floating-point dtype) that is ready.
void upload_prefix(const Gpt2Config& c, const Tensor& prefix_rows, DType storage, void* cache, std::int64_t capacity,
                   Stream& stream) {
  const std::int64_t prefix = prefix_rows.dim(0), hd = c.head_dim();
  const std::int64_t blocks = c.n_layer * 2 * c.n_head;
  const std::size_t es = dtype_size(storage);
  if (prefix_rows.device() == Device::cuda) {
    // Row s's block b (at s * width + b * hd) goes to the cache's row s of block b: one strided
    // copy per prefix row, device to device.
    const Tensor rows = convert(prefix_rows, storage, stream);
    const auto* src = static_cast<const std::byte*>(rows.raw());
    auto* dst = static_cast<std::byte*>(cache);
    for (std::int64_t s = 0; s < prefix; ++s)
      ECR_CUDA_CHECK(cudaMemcpy2DAsync(dst + static_cast<std::size_t>(s * hd) * es,
                                       static_cast<std::size_t>(capacity * hd) * es,
                                       src + static_cast<std::size_t>(s * c.prefix_width()) * es,
                                       static_cast<std::size_t>(hd) * es, static_cast<std::size_t>(hd) * es,
                                       static_cast<std::size_t>(blocks), cudaMemcpyDeviceToDevice, native(stream)));
    stream.synchronize();  // a converted copy is freed on return
    return;
  }
  Tensor host = Tensor::empty(DType::f32, {blocks, prefix, hd}, "prefix");
  const float* src = prefix_rows.data<float>();
  float* dst = host.data<float>();
  for (std::int64_t s = 0; s < prefix; ++s)
    for (std::int64_t b = 0; b < blocks; ++b)
      std::copy_n(src + s * c.prefix_width() + b * hd, hd, dst + (b * prefix + s) * hd);
  const Tensor staged = upload(host_cast(host, storage), stream);
  ECR_CUDA_CHECK(cudaMemcpy2DAsync(cache, static_cast<std::size_t>(capacity * hd) * es, staged.raw(),
                                   static_cast<std::size_t>(prefix * hd) * es, static_cast<std::size_t>(prefix * hd) * es,
                                   static_cast<std::size_t>(blocks), cudaMemcpyDeviceToDevice, native(stream)));
  stream.synchronize();  // `staged` is freed on return
}

// The activation buffers of one forward pass, (rows, width) each, as typed device pointers.
template <class T>
struct Activations {
  T* x;       // the residual stream
  T* normed;  // LayerNorm outputs; after the last layer, the final hidden states (ln_f)
  T* qkv;
  T* attn;
  T* proj;
  T* mlp;
};

template <class T>
Activations<T> activations(const Tensor& x, const Tensor& normed, const Tensor& qkv, const Tensor& attn,
                           const Tensor& proj, const Tensor& mlp) {
  return {ptr<T>(x), ptr<T>(normed), ptr<T>(qkv), ptr<T>(attn), ptr<T>(proj), ptr<T>(mlp)};
}

// The transformer layers over `n` rows already embedded in a.x, ending with ln_f's output in
// a.normed. Rows may belong to several sequences: everything but attention is row-wise, so one
// GEMM per weight serves them all; attend(l) appends layer l's keys/values from a.qkv to the
// sequences' caches and writes their attention to a.attn.
template <class T, class Attend>
void enqueue_layers(const Gpt2Device::Weights& w, cublasHandle_t blas, cudaStream_t s, std::int64_t n,
                    const Activations<T>& a, Attend&& attend) {
  const Gpt2Config& c = w.config;
  const std::int64_t d = c.n_embd, inner = c.n_inner;
  const int dn = static_cast<int>(d);
  const DType st = w.options.storage;
  const GemmMath math = w.options.math;
  for (std::int64_t l = 0; l < c.n_layer; ++l) {
    const auto& layer = w.layers[static_cast<std::size_t>(l)];
    if (l == 0)
      ECR_CUDA_CHECK(kernels::layer_norm<T>(a.x, ptr<float>(layer.ln_1.weight), ptr<float>(layer.ln_1.bias), a.normed,
                                            n, dn, layer.ln_1.eps, s));
    detail::gemm(blas, false, true, n, 3 * d, d, 1.0f, a.normed, d, layer.c_attn.weight.raw(), d, st, 0.0f, a.qkv, 3 * d,
                 st, math);
    ECR_CUDA_CHECK(kernels::bias_activation<T>(a.qkv, ptr<float>(layer.c_attn.bias), n, 3 * dn,
                                               nn::Activation::none, s));
    attend(l);
    detail::gemm(blas, false, true, n, d, d, 1.0f, a.attn, d, layer.c_proj.weight.raw(), d, st, 0.0f, a.proj, d, st,
                 math);
    ECR_CUDA_CHECK(kernels::residual_layer_norm<T>(a.x, a.proj, ptr<float>(layer.c_proj.bias),
                                                   ptr<float>(layer.ln_2.weight), ptr<float>(layer.ln_2.bias), a.normed,
                                                   n, dn, layer.ln_2.eps, s));
    detail::gemm(blas, false, true, n, inner, d, 1.0f, a.normed, d, layer.c_fc.weight.raw(), d, st, 0.0f, a.mlp, inner,
                 st, math);
    ECR_CUDA_CHECK(kernels::bias_activation<T>(a.mlp, ptr<float>(layer.c_fc.bias), n, static_cast<int>(inner),
                                               c.activation, s));
    detail::gemm(blas, false, true, n, d, inner, 1.0f, a.mlp, inner, layer.mlp_proj.weight.raw(), inner, st, 0.0f,
                 a.proj, d, st, math);
    // The residual, then the next layer's ln_1 (or ln_f after the last layer).
    const LayerNorm& next = l + 1 < c.n_layer ? w.layers[static_cast<std::size_t>(l) + 1].ln_1 : w.ln_f;
    ECR_CUDA_CHECK(kernels::residual_layer_norm<T>(a.x, a.proj, ptr<float>(layer.mlp_proj.bias),
                                                   ptr<float>(next.weight), ptr<float>(next.bias), a.normed, n, dn,
                                                   next.eps, s));
  }
}

// One sequence's attention in one layer: appends the keys/values of its `n` new rows (from row
// *q_start of a.qkv) at cache row *past, then attends. `keys` / `values` are the layer's
// [head][capacity][head_dim] blocks of the sequence's cache.
template <class T>
void enqueue_attention(const Gpt2Device::Weights& w, const Activations<T>& a, T* keys, T* values,
                       std::int64_t capacity, const std::int32_t* q_start, const std::int32_t* q_count,
                       const std::int32_t* past, std::int64_t n, kernels::DecodeSplit split, float* workspace,
                       cudaStream_t s) {
  const Gpt2Config& c = w.config;
  const std::int64_t d = c.n_embd, hd = c.head_dim();
  const std::int64_t head_stride = capacity * hd;
  ECR_CUDA_CHECK(kernels::append_kv<T>(a.qkv + d, a.qkv + 2 * d, 3 * d, keys, values, 0, head_stride, capacity,
                                       static_cast<int>(c.n_head), static_cast<int>(hd), q_start, q_count, past, 1,
                                       static_cast<int>(n), s));
  kernels::AttentionParams<T> p;
  p.q = a.qkv;
  p.k = keys;
  p.v = values;
  p.out = a.attn;
  p.q_stride = 3 * d;
  p.out_stride = d;
  p.kv_head_stride = head_stride;
  p.q_start = q_start;
  p.q_count = q_count;
  p.past = past;
  p.batch = 1;
  p.heads = static_cast<int>(c.n_head);
  p.head_dim = static_cast<int>(hd);
  p.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  if (n == 1)
    ECR_CUDA_CHECK(kernels::attention_decode<T>(p, split, workspace, s));
  else
    ECR_CUDA_CHECK(kernels::attention_prefill<T>(p, static_cast<int>(n), s));
}

}  // namespace

struct Gpt2Session::Impl {
  std::shared_ptr<const Gpt2Device::Weights> w;
  Stream stream;  // declared first: destroyed after every buffer below
  std::int64_t capacity = 0, prefix = 0, tokens = 0, rows = 0;
  int multiprocessors = 0;
  Tensor kv;  // (n_layer, 2, n_head, capacity, head_dim): keys then values of each layer
  Tensor x, normed, qkv, attn, proj, mlp;  // (rows, width) activations
  Tensor step_logits;   // (1, vocab) f32: Logits::last and every generate() step (graphs point here)
  Tensor all_logits;    // (n, vocab) f32 for Logits::all, grown on demand
  Tensor split_workspace;
  Tensor blas_workspace;
  Tensor ints;  // DecodeState, then ids, context and generated tokens (capacity each), then the chosen token
  kernels::DecodeSplit graph_split;
  std::int32_t* pinned = nullptr;  // the token copied back each step
  cudaGraphExec_t graph = nullptr;
  GraphKey graph_key;

  Impl(std::shared_ptr<const Gpt2Device::Weights> weights, std::int64_t capacity, const Tensor& prefix);
  ~Impl();

  kernels::DecodeState* state() { return reinterpret_cast<kernels::DecodeState*>(ptr<std::int32_t>(ints)); }
  std::int32_t* ids() { return ptr<std::int32_t>(ints) + kStateInts; }
  std::int32_t* context() { return ids() + capacity; }
  std::int32_t* generated() { return context() + capacity; }
  std::int32_t* chosen() { return generated() + capacity; }

  void set_state(std::int64_t count, bool restart_generation, std::int64_t context_length);
  void enqueue_forward(std::int64_t n, Logits logits, kernels::DecodeSplit split);
  void enqueue_choose(const lm::GenerateOptions& options);
  void decode_step(const lm::GenerateOptions& options);
};

Gpt2Session::Impl::Impl(std::shared_ptr<const Gpt2Device::Weights> weights, std::int64_t cap, const Tensor& prefix_rows)
    : w(std::move(weights)), capacity(cap) {
  const Gpt2Config& c = w->config;
  const DType st = w->options.storage;
  const bool on_device = prefix_rows.defined() && prefix_rows.device() == Device::cuda;
  const bool float_rows = prefix_rows.defined() && (prefix_rows.dtype() == DType::f32 ||
                                                    (on_device && (prefix_rows.dtype() == DType::f16 ||
                                                                   prefix_rows.dtype() == DType::bf16)));
  if (prefix_rows.defined() && (!float_rows || prefix_rows.rank() != 2 || prefix_rows.dim(1) != c.prefix_width()))
    fail<ShapeError>("component '{}': prefix '{}' must be (S, {}) = (S, layers * 2 * n_embd), CPU f32 or a device "
                     "f32 / f16 / bf16 tensor, found {} {} in {} memory",
                     w->name, prefix_rows.name(), c.prefix_width(), dtype_name(prefix_rows.dtype()),
                     shape_string(prefix_rows.shape()), device_name(prefix_rows.device()));
  prefix = prefix_rows.defined() ? prefix_rows.dim(0) : 0;
  if (capacity <= prefix || capacity > std::numeric_limits<std::int32_t>::max() / 4)
    fail<InputError>("component '{}': a session capacity of {} rows leaves no room after {} prefix rows", w->name,
                     capacity, prefix);
  rows = capacity - prefix;
  const std::int64_t d = c.n_embd, hd = c.head_dim(), heads = c.n_head;

  int device = 0;
  ECR_CUDA_CHECK(cudaGetDevice(&device));
  ECR_CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device));
  kv = empty_device(st, {c.n_layer, 2, heads, capacity, hd}, "kv cache");
  x = empty_device(st, {rows, d}, "x");
  normed = empty_device(st, {rows, d}, "hidden");
  qkv = empty_device(st, {rows, 3 * d}, "qkv");
  attn = empty_device(st, {rows, d}, "attention");
  proj = empty_device(st, {rows, d}, "projection");
  mlp = empty_device(st, {rows, c.n_inner}, "mlp");
  step_logits = empty_device(DType::f32, {1, c.vocab_size}, "logits");
  graph_split = kernels::plan_decode(1, static_cast<int>(heads), capacity, multiprocessors);
  // Any plan for at most `capacity` keys uses at most this many splits.
  const kernels::DecodeSplit widest{kernels::kDecodeKeysPerBlock,
                                    static_cast<int>((capacity + kernels::kDecodeKeysPerBlock - 1) /
                                                     kernels::kDecodeKeysPerBlock)};
  split_workspace = empty_device(
      DType::f32,
      {static_cast<std::int64_t>(std::max<std::size_t>(
          1, kernels::decode_workspace_floats(1, static_cast<int>(heads), widest, static_cast<int>(hd))))},
      "decode workspace");
  // cuBLAS must not allocate while a decode step is being captured into a graph.
  blas_workspace = empty_device(DType::u8, {static_cast<std::int64_t>(kBlasWorkspaceBytes)}, "cublas workspace");
  ECR_CUDA_CHECK(cublasSetWorkspace(detail::blas(stream), blas_workspace.raw(), kBlasWorkspaceBytes));
  ints = empty_device(DType::i32, {kStateInts + 3 * capacity + 1}, "decode state");
  ECR_CUDA_CHECK(cudaMemsetAsync(ints.raw(), 0, ints.nbytes(), native(stream)));
  ECR_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&pinned), sizeof(std::int32_t)));

  if (prefix > 0) upload_prefix(c, prefix_rows, st, kv.raw(), capacity, stream);
  stream.synchronize();
}

Gpt2Session::Impl::~Impl() {
  // Destructors must not throw: errors here have nowhere to go.
  cudaStreamSynchronize(native(stream));
  if (graph) cudaGraphExecDestroy(graph);
  if (pinned) cudaFreeHost(pinned);
}

// The first four state fields for feeding `count` tokens after what the session holds; with
// `restart_generation`, also the sampler's step (0) and the context length.
void Gpt2Session::Impl::set_state(std::int64_t count, bool restart_generation, std::int64_t context_length) {
  const kernels::DecodeState s{0,
                               static_cast<std::int32_t>(count),
                               static_cast<std::int32_t>(prefix + tokens),
                               static_cast<std::int32_t>(tokens),
                               0,
                               static_cast<std::int32_t>(context_length)};
  const std::size_t bytes = restart_generation ? sizeof(s) : 4 * sizeof(std::int32_t);
  ECR_CUDA_CHECK(cudaMemcpyAsync(state(), &s, bytes, cudaMemcpyHostToDevice, native(stream)));
}

// One forward pass over the `n` tokens in ids(), reading counts and positions from state().
void Gpt2Session::Impl::enqueue_forward(std::int64_t n, Logits logits, kernels::DecodeSplit split) {
  const Gpt2Config& c = w->config;
  const std::int64_t d = c.n_embd, hd = c.head_dim(), heads = c.n_head, vocab = c.vocab_size;
  const DType st = w->options.storage;
  const cudaStream_t s = native(stream);
  cublasHandle_t blas = detail::blas(stream);
  kernels::DecodeState* ds = state();
  const std::int64_t head_stride = capacity * hd;

  detail::dispatch(st, "GPT-2", [&](auto tag) {
    using T = decltype(tag);
    const Activations<T> a = activations<T>(x, normed, qkv, attn, proj, mlp);
    ECR_CUDA_CHECK(kernels::embed<T>(ids(), n, ptr<T>(w->wte), vocab, ptr<T>(w->wpe), c.n_positions, 0,
                                     &ds->position, a.x, static_cast<int>(d), s));
    enqueue_layers<T>(*w, blas, s, n, a, [&](std::int64_t l) {
      T* keys = ptr<T>(kv) + (l * 2 + 0) * heads * head_stride;
      T* values = ptr<T>(kv) + (l * 2 + 1) * heads * head_stride;
      enqueue_attention<T>(*w, a, keys, values, capacity, &ds->q_start, &ds->q_count, &ds->past, n, split,
                           ptr<float>(split_workspace), s);
    });
    if (logits == Logits::last)
      detail::gemm(blas, false, true, 1, vocab, d, 1.0f, a.normed + (n - 1) * d, d, w->lm_head.raw(), d, st, 0.0f,
                   step_logits.raw(), vocab, DType::f32, w->options.math);
    else if (logits == Logits::all)
      detail::gemm(blas, false, true, n, vocab, d, 1.0f, a.normed, d, w->lm_head.raw(), d, st, 0.0f, all_logits.raw(),
                   vocab, DType::f32, w->options.math);
  });
}

// The logits processors, the token choice and the state update, on step_logits.
void Gpt2Session::Impl::enqueue_choose(const lm::GenerateOptions& o) {
  const int vocab = static_cast<int>(w->config.vocab_size);
  const cudaStream_t s = native(stream);
  float* logits = ptr<float>(step_logits);
  kernels::DecodeState* ds = state();
  ECR_CUDA_CHECK(kernels::repetition_penalty(logits, vocab, context(), 0, &ds->context, capacity, o.repetition_penalty,
                                             s));
  ECR_CUDA_CHECK(kernels::ban_repeated_ngrams(logits, vocab, context(), 0, &ds->context, capacity,
                                              static_cast<int>(std::min<std::int64_t>(o.no_repeat_ngram_size, capacity + 1)),
                                              s));
  if (o.temperature == 0.0f) {
    ECR_CUDA_CHECK(kernels::argmax_rows(logits, 1, vocab, chosen(), s));
  } else {
    const kernels::SamplingParams params{o.temperature, static_cast<int>(std::min<std::int64_t>(o.top_k, vocab)),
                                         o.top_p, o.seed};
    ECR_CUDA_CHECK(kernels::sample_rows(logits, 1, vocab, params, 0, &ds->step, chosen(), s));
  }
  ECR_CUDA_CHECK(kernels::commit_token(ds, chosen(), ids(), context(), capacity, generated(), capacity, s));
}

// One decode step for the token in ids()[0]: a graph replay when one was captured for these
// options, else an eager run (which also warms up cuBLAS and the kernels) and a capture.
void Gpt2Session::Impl::decode_step(const lm::GenerateOptions& options) {
  const cudaStream_t s = native(stream);
  const GraphKey key = key_of(options);
  if (graph && key == graph_key) {
    ECR_CUDA_CHECK(cudaGraphLaunch(graph, s));
    return;
  }
  enqueue_forward(1, Logits::last, graph_split);
  enqueue_choose(options);
  if (graph) {
    cudaGraphExecDestroy(graph);
    graph = nullptr;
  }
  cudaGraph_t captured = nullptr;
  ECR_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  try {
    enqueue_forward(1, Logits::last, graph_split);
    enqueue_choose(options);
  } catch (...) {
    cudaStreamEndCapture(s, &captured);
    if (captured) cudaGraphDestroy(captured);
    throw;
  }
  ECR_CUDA_CHECK(cudaStreamEndCapture(s, &captured));
  const cudaError_t made = cudaGraphInstantiate(&graph, captured, 0);
  cudaGraphDestroy(captured);
  if (made != cudaSuccess) graph = nullptr;
  ECR_CUDA_CHECK(made);
  graph_key = key;
}

Gpt2Session Gpt2Device::start(std::int64_t capacity, const Tensor& prefix) const {
  return Gpt2Session(std::make_unique<Gpt2Session::Impl>(weights_, capacity, prefix));
}

Gpt2Session::Gpt2Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Gpt2Session::Gpt2Session(Gpt2Session&&) noexcept = default;
Gpt2Session& Gpt2Session::operator=(Gpt2Session&&) noexcept = default;
Gpt2Session::~Gpt2Session() = default;

std::int64_t Gpt2Session::capacity() const { return impl_->capacity; }
std::int64_t Gpt2Session::prefix_length() const { return impl_->prefix; }
std::int64_t Gpt2Session::tokens() const { return impl_->tokens; }
Stream& Gpt2Session::stream() { return impl_->stream; }

Gpt2DeviceOutput Gpt2Session::forward(std::span<const std::int32_t> tokens, Logits logits) {
  Impl& m = *impl_;
  const Gpt2Config& c = m.w->config;
  const auto n = static_cast<std::int64_t>(tokens.size());
  if (n == 0) {
    if (logits == Logits::last) fail<InputError>("component '{}': there is no token to take logits from", m.w->name);
    return {};
  }
  check_ids(c, tokens);
  if (m.tokens + n > c.n_positions)
    fail<InputError>("component '{}': the sequence would reach position {}, but the model has {} positions", m.w->name,
                     m.tokens + n - 1, c.n_positions);
  if (m.prefix + m.tokens + n > m.capacity)
    fail<InputError>("component '{}': {} more tokens do not fit the session's {} rows ({} held)", m.w->name, n,
                     m.capacity, m.prefix + m.tokens);
  const cudaStream_t s = native(m.stream);
  ECR_CUDA_CHECK(cudaMemcpyAsync(m.ids(), tokens.data(), tokens.size_bytes(), cudaMemcpyHostToDevice, s));
  m.set_state(n, false, 0);
  if (logits == Logits::all && (!m.all_logits.defined() || m.all_logits.dim(0) < n))
    m.all_logits = empty_device(DType::f32, {n, c.vocab_size}, "logits");
  const kernels::DecodeSplit split =
      kernels::plan_decode(1, static_cast<int>(c.n_head), m.prefix + m.tokens + 1, m.multiprocessors);
  m.enqueue_forward(n, logits, split);
  m.tokens += n;

  Gpt2DeviceOutput out;
  out.hidden = m.normed.rows(0, n);
  if (logits == Logits::last) out.logits = m.step_logits;
  if (logits == Logits::all) out.logits = m.all_logits.rows(0, n);
  return out;
}

lm::Generation Gpt2Session::generate(std::span<const std::int32_t> prompt, const lm::GenerateOptions& options) {
  Impl& m = *impl_;
  const Gpt2Config& c = m.w->config;
  prompt = lm::fit_prompt(prompt, options, c.n_positions, m.tokens);
  check_ids(c, prompt);
  const auto n = static_cast<std::int64_t>(prompt.size());

  lm::Generation result;
  if (options.max_new_tokens == 0) return result;
  if (m.prefix + m.tokens + n + options.max_new_tokens > m.capacity)
    fail<InputError>("generate: {} prompt and {} new tokens do not fit the session's {} rows ({} held)", n,
                     options.max_new_tokens, m.capacity, m.prefix + m.tokens);

  // The prompt is both the first step's input and the start of the processors' context.
  const cudaStream_t s = native(m.stream);
  ECR_CUDA_CHECK(cudaMemcpyAsync(m.ids(), prompt.data(), prompt.size_bytes(), cudaMemcpyHostToDevice, s));
  ECR_CUDA_CHECK(cudaMemcpyAsync(m.context(), prompt.data(), prompt.size_bytes(), cudaMemcpyHostToDevice, s));
  m.set_state(n, true, n);
  m.enqueue_forward(n, Logits::last, m.graph_split);
  m.enqueue_choose(options);
  m.tokens += n;

  for (std::int64_t step = 0;; ++step) {
    ECR_CUDA_CHECK(cudaMemcpyAsync(m.pinned, m.generated() + step, sizeof(std::int32_t), cudaMemcpyDeviceToHost, s));
    m.stream.synchronize();
    const std::int32_t token = *m.pinned;
    if (token < 0) fail<InputError>("generate: every token is banned");
    if (lm::accept_token(result, token, options)) break;
    m.decode_step(options);
    m.tokens += 1;
  }
  return result;
}

// --- batched generation -----------------------------------------------------------------------

// Each running sequence owns a slot: a KV cache laid out as a session's, a context row (prompt +
// generated, for the processors) and the row of the logits it takes its token from. Every step
// uploads the running sequences' new tokens and their offsets, runs one forward over all their
// rows (attention sequence by sequence, each over its own cache, with the decode split a session
// of the same capacity uses), then chooses each one's token from its own logits row.
std::vector<lm::Generation> Gpt2Device::generate_batch(std::span<const lm::GenerateRequest> requests) const {
  const Weights& w = *weights_;
  const Gpt2Config& c = w.config;
  const std::int64_t d = c.n_embd, hd = c.head_dim(), heads = c.n_head, vocab = c.vocab_size;
  const DType st = w.options.storage;

  struct Slot {
    std::size_t request = 0;
    std::int64_t prefix = 0, tokens = 0;  // cache rows: prefix rows, then tokens fed so far
    std::int64_t context = 0;             // prompt + generated tokens in its context row
    kernels::DecodeSplit split;
    std::vector<std::int32_t> feed;       // the tokens of its next forward
  };
  std::vector<lm::Generation> results(requests.size());
  std::vector<Slot> slots;
  std::int64_t capacity = 1, context_capacity = 1, first_rows = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const lm::GenerateRequest& r = requests[i];
    const auto prompt = lm::fit_prompt(r.prompt, r.options, c.n_positions);
    check_ids(c, prompt);
    const Tensor& p = r.prefix;
    if (p.defined() && (p.device() != Device::cpu || p.dtype() != DType::f32 || p.rank() != 2 ||
                        p.dim(1) != c.prefix_width()))
      fail<ShapeError>("component '{}': prefix '{}' must be a CPU f32 (S, {}) = (S, layers * 2 * n_embd), found {} {}",
                       w.name, p.name(), c.prefix_width(), dtype_name(p.dtype()), shape_string(p.shape()));
    if (r.options.max_new_tokens == 0) continue;
    Slot slot;
    slot.request = i;
    slot.prefix = p.defined() ? p.dim(0) : 0;
    slot.feed.assign(prompt.begin(), prompt.end());
    const auto n = static_cast<std::int64_t>(prompt.size());
    capacity = std::max(capacity, slot.prefix + n + r.options.max_new_tokens);
    context_capacity = std::max(context_capacity, n + r.options.max_new_tokens);
    first_rows += n;
    slots.push_back(std::move(slot));
  }
  if (slots.empty()) return results;
  if (capacity > std::numeric_limits<std::int32_t>::max() / 4)
    fail<InputError>("component '{}': a batch needing {} cache rows per sequence is too long", w.name, capacity);

  const auto batch = static_cast<std::int64_t>(slots.size());
  const std::int64_t rows = std::max(first_rows, batch);
  const std::int64_t slot_elems = c.n_layer * 2 * heads * capacity * hd;
  struct Buffers {
    Stream stream;  // declared first: destroyed after every buffer below
    Tensor kv, x, normed, qkv, attn, proj, mlp, logits, workspace, ints;
    std::int32_t* pinned = nullptr;
    ~Buffers() {
      cudaStreamSynchronize(native(stream));  // nothing queued may outlive the buffers
      if (pinned) cudaFreeHost(pinned);
    }
  } b;
  int device = 0, multiprocessors = 0;
  ECR_CUDA_CHECK(cudaGetDevice(&device));
  ECR_CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device));
  std::size_t workspace_floats = 1;
  for (Slot& slot : slots) {
    const lm::GenerateOptions& o = requests[slot.request].options;
    slot.split = kernels::plan_decode(1, static_cast<int>(heads),
                                      slot.prefix + static_cast<std::int64_t>(slot.feed.size()) + o.max_new_tokens,
                                      multiprocessors);
    workspace_floats = std::max(workspace_floats, kernels::decode_workspace_floats(1, static_cast<int>(heads),
                                                                                   slot.split, static_cast<int>(hd)));
  }
  b.kv = empty_device(st, {batch, c.n_layer, 2, heads, capacity, hd}, "kv cache");
  b.x = empty_device(st, {rows, d}, "x");
  b.normed = empty_device(st, {rows, d}, "hidden");
  b.qkv = empty_device(st, {rows, 3 * d}, "qkv");
  b.attn = empty_device(st, {rows, d}, "attention");
  b.proj = empty_device(st, {rows, d}, "projection");
  b.mlp = empty_device(st, {rows, c.n_inner}, "mlp");
  b.logits = empty_device(DType::f32, {batch, vocab}, "logits");
  b.workspace = empty_device(DType::f32, {static_cast<std::int64_t>(workspace_floats)}, "decode workspace");
  // ids (rows), then per slot q_start, q_count, past (batch each), then the contexts.
  b.ints = empty_device(DType::i32, {rows + 3 * batch + batch * context_capacity}, "decode state");
  ECR_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&b.pinned), static_cast<std::size_t>(batch) * sizeof(std::int32_t)));
  const cudaStream_t s = native(b.stream);
  cublasHandle_t blas = detail::blas(b.stream);
  std::int32_t* ids = ptr<std::int32_t>(b.ints);
  std::int32_t* q_start = ids + rows;
  std::int32_t* q_count = q_start + batch;
  std::int32_t* past = q_count + batch;
  const auto context_row = [&](std::size_t slot) { return past + batch + static_cast<std::int64_t>(slot) * context_capacity; };

  for (std::size_t j = 0; j < slots.size(); ++j) {
    Slot& slot = slots[j];
    const Tensor& prefix = requests[slot.request].prefix;
    if (slot.prefix > 0)
      upload_prefix(c, prefix, st,
                    ptr<std::uint8_t>(b.kv) + static_cast<std::int64_t>(j) * slot_elems *
                                                  static_cast<std::int64_t>(dtype_size(st)),
                    capacity, b.stream);
    ECR_CUDA_CHECK(cudaMemcpyAsync(context_row(j), slot.feed.data(), slot.feed.size() * sizeof(std::int32_t),
                                   cudaMemcpyHostToDevice, s));
    slot.context = static_cast<std::int64_t>(slot.feed.size());
  }

  std::vector<std::size_t> running(slots.size());  // slot indices, in the order of their rows
  for (std::size_t j = 0; j < running.size(); ++j) running[j] = j;
  std::vector<std::int32_t> host_ints;
  while (!running.empty()) {
    // This step's layout: slot running[k]'s rows are [offsets[k], offsets[k + 1]).
    const auto active = static_cast<std::int64_t>(running.size());
    std::vector<std::int64_t> offsets(running.size() + 1, 0);
    for (std::size_t k = 0; k < running.size(); ++k)
      offsets[k + 1] = offsets[k] + static_cast<std::int64_t>(slots[running[k]].feed.size());
    const std::int64_t n = offsets.back();
    host_ints.assign(static_cast<std::size_t>(rows + 3 * batch), 0);
    for (std::size_t k = 0; k < running.size(); ++k) {
      const Slot& slot = slots[running[k]];
      std::copy(slot.feed.begin(), slot.feed.end(), host_ints.begin() + offsets[k]);
      host_ints[static_cast<std::size_t>(rows) + k] = static_cast<std::int32_t>(offsets[k]);
      host_ints[static_cast<std::size_t>(rows + batch) + k] = static_cast<std::int32_t>(slot.feed.size());
      host_ints[static_cast<std::size_t>(rows + 2 * batch) + k] = static_cast<std::int32_t>(slot.prefix + slot.tokens);
    }
    // Pageable memory: the copy is staged before cudaMemcpyAsync returns, so host_ints may change.
    ECR_CUDA_CHECK(cudaMemcpyAsync(ids, host_ints.data(), host_ints.size() * sizeof(std::int32_t),
                                   cudaMemcpyHostToDevice, s));

    detail::dispatch(st, "GPT-2", [&](auto tag) {
      using T = decltype(tag);
      const Activations<T> a = activations<T>(b.x, b.normed, b.qkv, b.attn, b.proj, b.mlp);
      for (std::size_t k = 0; k < running.size(); ++k) {
        const Slot& slot = slots[running[k]];
        ECR_CUDA_CHECK(kernels::embed<T>(ids + offsets[k], offsets[k + 1] - offsets[k], ptr<T>(w.wte), vocab,
                                         ptr<T>(w.wpe), c.n_positions, slot.tokens, nullptr, a.x + offsets[k] * d,
                                         static_cast<int>(d), s));
      }
      enqueue_layers<T>(w, blas, s, n, a, [&](std::int64_t l) {
        for (std::size_t k = 0; k < running.size(); ++k) {
          const Slot& slot = slots[running[k]];
          T* cache = ptr<T>(b.kv) + static_cast<std::int64_t>(running[k]) * slot_elems;
          T* keys = cache + (l * 2 + 0) * heads * capacity * hd;
          T* values = cache + (l * 2 + 1) * heads * capacity * hd;
          enqueue_attention<T>(w, a, keys, values, capacity, q_start + k, q_count + k, past + k,
                               offsets[k + 1] - offsets[k], slot.split, ptr<float>(b.workspace), s);
        }
      });
      // The LM head on each sequence's last row; after the prompts that is one row per sequence.
      float* logits = ptr<float>(b.logits);
      if (n == active)
        detail::gemm(blas, false, true, active, vocab, d, 1.0f, a.normed, d, w.lm_head.raw(), d, st, 0.0f, logits,
                     vocab, DType::f32, w.options.math);
      else
        for (std::int64_t k = 0; k < active; ++k)
          detail::gemm(blas, false, true, 1, vocab, d, 1.0f, a.normed + (offsets[k + 1] - 1) * d, d, w.lm_head.raw(),
                       d, st, 0.0f, logits + k * vocab, vocab, DType::f32, w.options.math);
    });

    // Each sequence's processors and choice on its own row; the token lands in its context row.
    for (std::size_t k = 0; k < running.size(); ++k) {
      Slot& slot = slots[running[k]];
      slot.tokens += static_cast<std::int64_t>(slot.feed.size());
      const lm::GenerateOptions& o = requests[slot.request].options;
      float* row = ptr<float>(b.logits) + static_cast<std::int64_t>(k) * vocab;
      std::int32_t* context = context_row(running[k]);
      std::int32_t* chosen = context + slot.context;
      ECR_CUDA_CHECK(kernels::repetition_penalty(row, static_cast<int>(vocab), context, slot.context, nullptr,
                                                 slot.context, o.repetition_penalty, s));
      ECR_CUDA_CHECK(kernels::ban_repeated_ngrams(
          row, static_cast<int>(vocab), context, slot.context, nullptr, slot.context,
          static_cast<int>(std::min<std::int64_t>(o.no_repeat_ngram_size, slot.context + 1)), s));
      if (o.temperature == 0.0f) {
        ECR_CUDA_CHECK(kernels::argmax_rows(row, 1, static_cast<int>(vocab), chosen, s));
      } else {
        // Draw `step` of row 0 under the sequence's own seed: a lone session's draws.
        const kernels::SamplingParams params{o.temperature, static_cast<int>(std::min<std::int64_t>(o.top_k, vocab)),
                                             o.top_p, o.seed};
        const auto step = static_cast<std::int64_t>(results[slot.request].tokens.size());
        ECR_CUDA_CHECK(kernels::sample_rows(row, 1, static_cast<int>(vocab), params, step, nullptr, chosen, s));
      }
      ECR_CUDA_CHECK(cudaMemcpyAsync(b.pinned + k, chosen, sizeof(std::int32_t), cudaMemcpyDeviceToHost, s));
    }
    b.stream.synchronize();

    std::vector<std::size_t> still;
    for (std::size_t k = 0; k < running.size(); ++k) {
      Slot& slot = slots[running[k]];
      const std::int32_t token = b.pinned[k];
      if (token < 0) fail<InputError>("generate: every token is banned");
      slot.context += 1;
      slot.feed.assign(1, token);
      if (!lm::accept_token(results[slot.request], token, requests[slot.request].options)) still.push_back(running[k]);
    }
    running = std::move(still);
  }
  return results;
}

}  // namespace ecr::cuda
