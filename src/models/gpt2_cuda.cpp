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
  // The CPU model's lookup and checks, then its loaders, so both read the same weights.
  const auto& components = bundle.metadata().value("components", nlohmann::json::object());
  const auto it = components.find(std::string(name));
  if (it == components.end()) fail<ConfigError>("bundle '{}': no component '{}'", bundle.label(), name);
  const std::string type = it->value("type", "");
  if (type != "gpt2" && type != "gpt2_classifier")
    fail<ConfigError>("bundle '{}': component '{}' has type '{}', expected gpt2 or gpt2_classifier", bundle.label(),
                      name, type);
  detail::dispatch(options.storage, "GPT-2 device storage", [](auto) {});

  auto w = std::make_shared<Weights>();
  w->name = name;
  w->config = Gpt2Config::from_json(it->value("config", nlohmann::json()), name);
  w->options = options;
  const Gpt2Config& c = w->config;
  if (c.head_dim() > kernels::kMaxHeadDim)
    fail<ConfigError>("component '{}': head_dim {} exceeds the {} the CUDA attention supports", name, c.head_dim(),
                      kernels::kMaxHeadDim);

  Stream stream;
  const auto matrix = [&](const Tensor& host) { return upload(host_cast(host, options.storage), stream); };
  const auto norm = [&](const std::string& prefix) {
    return LayerNorm::upload(nn::load_layer_norm(bundle, prefix, c.n_embd, c.layer_norm_epsilon), stream);
  };
  const auto conv1d = [&](const std::string& prefix, std::int64_t in, std::int64_t out) {
    return Linear::upload(nn::load_conv1d(bundle, prefix, in, out), stream, options.storage);
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
  w->lm_head = it->value("tied_lm_head", true)
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

GraphKey key_of(const GenerateOptions& o) {
  return {o.temperature, o.top_k, o.top_p, o.seed, o.repetition_penalty, o.no_repeat_ngram_size};
}

constexpr std::size_t kBlasWorkspaceBytes = 32u << 20;  // cuBLAS's recommendation for Hopper
constexpr std::int64_t kStateInts = 8;                  // DecodeState, padded
static_assert(sizeof(kernels::DecodeState) <= kStateInts * sizeof(std::int32_t));
// set_state writes the first four fields alone: they must be the struct's first four ints.
static_assert(offsetof(kernels::DecodeState, position) == 3 * sizeof(std::int32_t));

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
  void enqueue_choose(const GenerateOptions& options);
  void decode_step(const GenerateOptions& options);
};

Gpt2Session::Impl::Impl(std::shared_ptr<const Gpt2Device::Weights> weights, std::int64_t cap, const Tensor& prefix_rows)
    : w(std::move(weights)), capacity(cap) {
  const Gpt2Config& c = w->config;
  const DType st = w->options.storage;
  if (prefix_rows.defined() &&
      (prefix_rows.device() != Device::cpu || prefix_rows.dtype() != DType::f32 || prefix_rows.rank() != 2 ||
       prefix_rows.dim(1) != c.prefix_width()))
    fail<ShapeError>("component '{}': prefix '{}' must be a CPU f32 (S, {}) = (S, layers * 2 * n_embd), found {} {}",
                     w->name, prefix_rows.name(), c.prefix_width(), dtype_name(prefix_rows.dtype()),
                     shape_string(prefix_rows.shape()));
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

  if (prefix > 0) {
    // (S, layer, key|value, head, head_dim) rows -> cache blocks [layer][key|value][head][row].
    const std::int64_t blocks = c.n_layer * 2 * heads;
    Tensor host = Tensor::empty(DType::f32, {blocks, prefix, hd}, "prefix");
    const float* src = prefix_rows.data<float>();
    float* dst = host.data<float>();
    for (std::int64_t s = 0; s < prefix; ++s)
      for (std::int64_t b = 0; b < blocks; ++b)
        std::copy_n(src + s * c.prefix_width() + b * hd, hd, dst + (b * prefix + s) * hd);
    const Tensor staged = upload(host_cast(host, st), stream);
    const std::size_t es = dtype_size(st);
    ECR_CUDA_CHECK(cudaMemcpy2DAsync(kv.raw(), static_cast<std::size_t>(capacity * hd) * es, staged.raw(),
                                     static_cast<std::size_t>(prefix * hd) * es,
                                     static_cast<std::size_t>(prefix * hd) * es, static_cast<std::size_t>(blocks),
                                     cudaMemcpyDeviceToDevice, native(stream)));
    stream.synchronize();  // `staged` is freed on return
  }
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
  const std::int64_t d = c.n_embd, hd = c.head_dim(), heads = c.n_head, inner = c.n_inner, vocab = c.vocab_size;
  const int dn = static_cast<int>(d);
  const DType st = w->options.storage;
  const GemmMath math = w->options.math;
  const cudaStream_t s = native(stream);
  cublasHandle_t blas = detail::blas(stream);
  kernels::DecodeState* ds = state();
  const std::int64_t head_stride = capacity * hd;

  detail::dispatch(st, "GPT-2", [&](auto tag) {
    using T = decltype(tag);
    T* xp = ptr<T>(x);
    T* hp = ptr<T>(normed);
    T* qkvp = ptr<T>(qkv);
    T* ap = ptr<T>(attn);
    T* pp = ptr<T>(proj);
    T* mp = ptr<T>(mlp);
    ECR_CUDA_CHECK(kernels::embed<T>(ids(), n, ptr<T>(w->wte), vocab, ptr<T>(w->wpe), c.n_positions, 0,
                                     &ds->position, xp, dn, s));
    for (std::int64_t l = 0; l < c.n_layer; ++l) {
      const auto& layer = w->layers[static_cast<std::size_t>(l)];
      if (l == 0)
        ECR_CUDA_CHECK(kernels::layer_norm<T>(xp, ptr<float>(layer.ln_1.weight), ptr<float>(layer.ln_1.bias), hp, n,
                                              dn, layer.ln_1.eps, s));
      detail::gemm(blas, false, true, n, 3 * d, d, 1.0f, hp, d, layer.c_attn.weight.raw(), d, st, 0.0f, qkvp, 3 * d, st,
                   math);
      ECR_CUDA_CHECK(kernels::bias_activation<T>(qkvp, ptr<float>(layer.c_attn.bias), n, 3 * dn,
                                                 nn::Activation::none, s));
      T* keys = ptr<T>(kv) + (l * 2 + 0) * heads * head_stride;
      T* values = ptr<T>(kv) + (l * 2 + 1) * heads * head_stride;
      ECR_CUDA_CHECK(kernels::append_kv<T>(qkvp + d, qkvp + 2 * d, 3 * d, keys, values, 0, head_stride, capacity,
                                           static_cast<int>(heads), static_cast<int>(hd), &ds->q_start, &ds->q_count,
                                           &ds->past, 1, static_cast<int>(n), s));
      kernels::AttentionParams<T> p;
      p.q = qkvp;
      p.k = keys;
      p.v = values;
      p.out = ap;
      p.q_stride = 3 * d;
      p.out_stride = d;
      p.kv_head_stride = head_stride;
      p.q_start = &ds->q_start;
      p.q_count = &ds->q_count;
      p.past = &ds->past;
      p.batch = 1;
      p.heads = static_cast<int>(heads);
      p.head_dim = static_cast<int>(hd);
      p.scale = 1.0f / std::sqrt(static_cast<float>(hd));
      if (n == 1)
        ECR_CUDA_CHECK(kernels::attention_decode<T>(p, split, ptr<float>(split_workspace), s));
      else
        ECR_CUDA_CHECK(kernels::attention_prefill<T>(p, static_cast<int>(n), s));
      detail::gemm(blas, false, true, n, d, d, 1.0f, ap, d, layer.c_proj.weight.raw(), d, st, 0.0f, pp, d, st, math);
      ECR_CUDA_CHECK(kernels::residual_layer_norm<T>(xp, pp, ptr<float>(layer.c_proj.bias), ptr<float>(layer.ln_2.weight),
                                                     ptr<float>(layer.ln_2.bias), hp, n, dn, layer.ln_2.eps, s));
      detail::gemm(blas, false, true, n, inner, d, 1.0f, hp, d, layer.c_fc.weight.raw(), d, st, 0.0f, mp, inner, st,
                   math);
      ECR_CUDA_CHECK(kernels::bias_activation<T>(mp, ptr<float>(layer.c_fc.bias), n, static_cast<int>(inner),
                                                 c.activation, s));
      detail::gemm(blas, false, true, n, d, inner, 1.0f, mp, inner, layer.mlp_proj.weight.raw(), inner, st, 0.0f, pp,
                   d, st, math);
      // The residual, then the next layer's ln_1 (or ln_f after the last layer).
      const LayerNorm& next = l + 1 < c.n_layer ? w->layers[static_cast<std::size_t>(l) + 1].ln_1 : w->ln_f;
      ECR_CUDA_CHECK(kernels::residual_layer_norm<T>(xp, pp, ptr<float>(layer.mlp_proj.bias), ptr<float>(next.weight),
                                                     ptr<float>(next.bias), hp, n, dn, next.eps, s));
    }
    if (logits == Logits::last)
      detail::gemm(blas, false, true, 1, vocab, d, 1.0f, hp + (n - 1) * d, d, w->lm_head.raw(), d, st, 0.0f,
                   step_logits.raw(), vocab, DType::f32, math);
    else if (logits == Logits::all)
      detail::gemm(blas, false, true, n, vocab, d, 1.0f, hp, d, w->lm_head.raw(), d, st, 0.0f, all_logits.raw(), vocab,
                   DType::f32, math);
  });
}

// The logits processors, the token choice and the state update, on step_logits.
void Gpt2Session::Impl::enqueue_choose(const GenerateOptions& o) {
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
void Gpt2Session::Impl::decode_step(const GenerateOptions& options) {
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
  for (const std::int32_t id : tokens)
    if (id < 0 || id >= c.vocab_size) fail<InputError>("token id {} is outside [0, {})", id, c.vocab_size);
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

Generation Gpt2Session::generate(std::span<const std::int32_t> prompt, const GenerateOptions& options) {
  Impl& m = *impl_;
  const Gpt2Config& c = m.w->config;
  check_generate_options(options);
  if (prompt.empty()) fail<InputError>("generate: the prompt is empty");
  if (options.max_new_tokens >= c.n_positions)
    fail<InputError>("generate: max_new_tokens {} leaves no room for a prompt in {} positions", options.max_new_tokens,
                     c.n_positions);
  const std::int64_t room = c.n_positions - options.max_new_tokens - m.tokens;
  if (room <= 0)
    fail<InputError>("generate: the session holds {} tokens; {} new ones leave no room for a prompt in {} positions",
                     m.tokens, options.max_new_tokens, c.n_positions);
  if (static_cast<std::int64_t>(prompt.size()) > room) prompt = prompt.last(static_cast<std::size_t>(room));
  for (const std::int32_t id : prompt)
    if (id < 0 || id >= c.vocab_size) fail<InputError>("token id {} is outside [0, {})", id, c.vocab_size);
  const auto n = static_cast<std::int64_t>(prompt.size());

  Generation result;
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
    result.tokens.push_back(token);
    if (options.on_token && !options.on_token(token)) {
      result.reason = StopReason::callback;
      break;
    }
    if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), token) != options.stop_tokens.end()) {
      result.reason = StopReason::stop_token;
      break;
    }
    if (static_cast<std::int64_t>(result.tokens.size()) == options.max_new_tokens) break;
    m.decode_step(options);
    m.tokens += 1;
  }
  return result;
}

}  // namespace ecr::cuda
