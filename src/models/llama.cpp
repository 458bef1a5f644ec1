#include "ecr/models/llama.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ecr/core/dtype.hpp"
#include "ecr/nn/attention.hpp"

namespace ecr {

namespace {

// A (rows, width) matrix in `buffer`, reallocating only when it has fewer rows than asked.
nn::MutableMap scratch(Tensor& buffer, std::int64_t rows, std::int64_t width) {
  if (!buffer.defined() || buffer.dim(0) < rows || buffer.dim(1) != width)
    buffer = Tensor::empty(DType::f32, {std::max<std::int64_t>(rows, 1), width});
  return {buffer.data<float>(), rows, width, Eigen::OuterStride<>(width)};
}

// An integer key of any integer type (writers differ: llama.cpp's use u32, others i32 or u64),
// in [min, INT32_MAX]: every count of the architecture fits an int32 in llama.cpp, so a larger
// one is a crafted file.
std::int64_t integer(const gguf::File& file, std::string_view key, std::int64_t min = 1) {
  const gguf::Value& v = file.value(key);
  std::int64_t n = 0;
  std::uint64_t too_big = 0;  // a u64 past INT32_MAX, kept for the message
  switch (v.type()) {
    case gguf::ValueType::u8: n = v.as<std::uint8_t>(); break;
    case gguf::ValueType::i8: n = v.as<std::int8_t>(); break;
    case gguf::ValueType::u16: n = v.as<std::uint16_t>(); break;
    case gguf::ValueType::i16: n = v.as<std::int16_t>(); break;
    case gguf::ValueType::u32: n = v.as<std::uint32_t>(); break;
    case gguf::ValueType::i32: n = v.as<std::int32_t>(); break;
    case gguf::ValueType::i64: n = v.as<std::int64_t>(); break;
    case gguf::ValueType::u64:
      if (v.as<std::uint64_t>() > static_cast<std::uint64_t>(INT32_MAX))
        too_big = v.as<std::uint64_t>();
      else
        n = static_cast<std::int64_t>(v.as<std::uint64_t>());
      break;
    default:
      fail<FormatError>("gguf '{}': key '{}' is {}, expected an integer", file.label(), key, gguf::type_name(v.type()));
  }
  if (too_big || n < min || n > INT32_MAX)
    fail<ConfigError>("gguf '{}': key '{}' is {}, expected an integer in [{}, {}]", file.label(), key,
                      too_big ? fmt::to_string(too_big) : fmt::to_string(n), min, INT32_MAX);
  return n;
}

// A positive, finite f32 or f64 key.
float positive(const gguf::File& file, std::string_view key) {
  const gguf::Value& v = file.value(key);
  double x = 0;
  if (v.type() == gguf::ValueType::f32)
    x = v.as<float>();
  else if (v.type() == gguf::ValueType::f64)
    x = v.as<double>();
  else
    fail<FormatError>("gguf '{}': key '{}' is {}, expected f32", file.label(), key, gguf::type_name(v.type()));
  if (!(x > 0) || !std::isfinite(static_cast<float>(x)))
    fail<ConfigError>("gguf '{}': key '{}' is {}, expected a positive number", file.label(), key, x);
  return static_cast<float>(x);
}

}  // namespace

LlamaConfig LlamaConfig::from_gguf(const gguf::File& file) {
  const auto arch = file.get<std::string>("general.architecture");
  if (arch != "llama")
    fail<ConfigError>("gguf '{}': general.architecture is '{}'; ecr runs 'llama' models from GGUF files",
                      file.label(), arch);
  LlamaConfig c;
  c.n_layer = integer(file, "llama.block_count");
  c.n_embd = integer(file, "llama.embedding_length");
  c.n_ff = integer(file, "llama.feed_forward_length");
  c.n_head = integer(file, "llama.attention.head_count");
  c.n_head_kv = file.contains("llama.attention.head_count_kv") ? integer(file, "llama.attention.head_count_kv")
                                                                 : c.n_head;
  c.n_ctx = integer(file, "llama.context_length");
  c.rms_eps = positive(file, "llama.attention.layer_norm_rms_epsilon");
  if (c.n_embd % c.n_head != 0)
    fail<ConfigError>("gguf '{}': llama.attention.head_count {} does not divide llama.embedding_length {}",
                      file.label(), c.n_head, c.n_embd);
  if (c.n_head % c.n_head_kv != 0)
    fail<ConfigError>("gguf '{}': llama.attention.head_count_kv {} does not divide llama.attention.head_count {}",
                      file.label(), c.n_head_kv, c.n_head);
  c.rope.dims = file.contains("llama.rope.dimension_count") ? integer(file, "llama.rope.dimension_count")
                                                              : c.head_dim();
  if (c.rope.dims % 2 != 0 || c.rope.dims > c.head_dim())
    fail<ConfigError>("gguf '{}': llama.rope.dimension_count is {}, expected an even number up to the head size {}",
                      file.label(), c.rope.dims, c.head_dim());
  if (file.contains("llama.rope.freq_base")) c.rope.base = positive(file, "llama.rope.freq_base");
  const auto scaling = file.get_or<std::string>("llama.rope.scaling.type", "none");
  if (scaling == "linear")
    c.rope.factor = positive(file, "llama.rope.scaling.factor");
  else if (scaling != "none")
    fail<ConfigError>("gguf '{}': llama.rope.scaling.type '{}' is not supported (none, linear)", file.label(),
                      scaling);
  // Llama 3.1's per-frequency factors change every angle; running without them would be wrong.
  if (file.has_tensor("rope_freqs.weight"))
    fail<ConfigError>("gguf '{}': tensor 'rope_freqs.weight' (rope frequency factors) is not supported",
                      file.label());
  return c;
}

// --- state ------------------------------------------------------------------------------------

LlamaState::LlamaState(const LlamaConfig& config, std::size_t batch)
    : layers_(config.n_layer), kv_heads_(config.n_head_kv), head_dim_(config.head_dim()), sequences_(batch) {}

void LlamaState::grow(Sequence& s, std::int64_t rows) const {
  if (rows <= s.capacity) return;
  const std::int64_t capacity = std::max(rows, 2 * s.capacity);
  std::vector<float> kv(static_cast<std::size_t>(layers_ * 2 * kv_heads_ * capacity * head_dim_));
  const std::int64_t used = s.tokens * head_dim_;
  for (std::int64_t block = 0; block < layers_ * 2 * kv_heads_; ++block)
    std::copy_n(s.kv.data() + block * s.capacity * head_dim_, used, kv.data() + block * capacity * head_dim_);
  s.kv = std::move(kv);
  s.capacity = capacity;
}

void LlamaState::remove(std::size_t b) {
  if (b >= sequences_.size()) fail<InputError>("LlamaState: no sequence {} in a batch of {}", b, sequences_.size());
  sequences_.erase(sequences_.begin() + static_cast<std::ptrdiff_t>(b));
}

float* LlamaState::keys(Sequence& s, std::int64_t layer, std::int64_t kv_head) const {
  return s.kv.data() + ((layer * 2 + 0) * kv_heads_ + kv_head) * s.capacity * head_dim_;
}

float* LlamaState::values(Sequence& s, std::int64_t layer, std::int64_t kv_head) const {
  return s.kv.data() + ((layer * 2 + 1) * kv_heads_ + kv_head) * s.capacity * head_dim_;
}

// --- loading ----------------------------------------------------------------------------------

namespace {

// Views the GGUF tensors of one file as ecr Tensors, checking each one's dims (ggml's order,
// ne0 first) against what the hyper-parameters say.
struct TensorLoader {
  const gguf::File& file;
  nn::Activations activations;  // of every weight matrix (LlamaOptions)

  Tensor view(const std::string& name, std::vector<std::int64_t> dims) const {
    const gguf::TensorInfo& info = file.info(name);
    if (info.dims != dims)
      fail<ShapeError>("gguf '{}': tensor '{}' has dims [{}], expected [{}] (ggml order, ne0 first)", file.label(),
                       name, fmt::join(info.dims, ", "), fmt::join(dims, ", "));
    if (!dtype_from_gguf(info.type))
      fail<ConfigError>("gguf '{}': tensor '{}' has type {}, which ecr has no kernel for", file.label(), name,
                        info.traits().name);
    // A row of a block type must be whole blocks (ggml's rule as well); the reader checked the
    // byte count against the same dims.
    return file.view(name);
  }
  // (out, in) row-major: ggml dims [in, out].
  nn::Linear linear(const std::string& name, std::int64_t in, std::int64_t out) const {
    nn::Linear layer(view(name, {in, out}), Tensor());
    layer.activations = activations;
    return layer;
  }
  // Norm weights are computed on in f32; GGUF files store them so, but widen any other type.
  nn::RmsNorm norm(const std::string& name, std::int64_t n, float eps) const {
    Tensor w = view(name, {n});
    return {w.dtype() == DType::f32 ? std::move(w) : w.to_f32(), eps};
  }
};

}  // namespace

LlamaModel LlamaModel::load(const std::filesystem::path& path, std::shared_ptr<ThreadPool> pool,
                            LlamaOptions options) {
  return load(gguf::File::open(path), std::move(pool), {}, options);
}

LlamaModel LlamaModel::load(const std::filesystem::path& path, std::shared_ptr<ThreadPool> pool,
                            std::span<const LoraSpec> lora, LlamaOptions options) {
  return load(gguf::File::open(path), std::move(pool), lora, options);
}

LlamaModel LlamaModel::load(const gguf::File& file, std::shared_ptr<ThreadPool> pool, LlamaOptions options) {
  return load(file, std::move(pool), {}, options);
}

LlamaModel LlamaModel::load(const gguf::File& file, std::shared_ptr<ThreadPool> pool, std::span<const LoraSpec> lora,
                            LlamaOptions options) {
  LlamaModel m;
  m.label_ = file.label();
  m.config_ = LlamaConfig::from_gguf(file);
  m.pool_ = pool ? std::move(pool) : ThreadPool::shared_default();
  LlamaConfig& c = m.config_;
  const TensorLoader load{file, options.activations};

  const gguf::TensorInfo& embd = file.info("token_embd.weight");
  if (embd.dims.size() != 2 || embd.dims[1] < 1)
    fail<ShapeError>("gguf '{}': tensor 'token_embd.weight' has dims [{}], expected [{}, vocab]", file.label(),
                     fmt::join(embd.dims, ", "), c.n_embd);
  c.vocab_size = embd.dims[1];
  m.token_embd_ = load.linear("token_embd.weight", c.n_embd, c.vocab_size);

  m.layers_.resize(static_cast<std::size_t>(c.n_layer));
  for (std::int64_t l = 0; l < c.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    m.layers_[static_cast<std::size_t>(l)] = {
        load.norm(b + "attn_norm.weight", c.n_embd, c.rms_eps),
        Projection{load.linear(b + "attn_q.weight", c.n_embd, c.n_embd), {}},
        Projection{load.linear(b + "attn_k.weight", c.n_embd, c.kv_width()), {}},
        Projection{load.linear(b + "attn_v.weight", c.n_embd, c.kv_width()), {}},
        Projection{load.linear(b + "attn_output.weight", c.n_embd, c.n_embd), {}},
        load.norm(b + "ffn_norm.weight", c.n_embd, c.rms_eps),
        Projection{load.linear(b + "ffn_gate.weight", c.n_embd, c.n_ff), {}},
        Projection{load.linear(b + "ffn_up.weight", c.n_embd, c.n_ff), {}},
        Projection{load.linear(b + "ffn_down.weight", c.n_ff, c.n_embd), {}},
    };
  }
  m.output_norm_ = load.norm("output_norm.weight", c.n_embd, c.rms_eps);
  m.tied_ = !file.has_tensor("output.weight");
  m.output_.weight = m.tied_ ? m.token_embd_ : load.linear("output.weight", c.n_embd, c.vocab_size);
  for (const LoraSpec& spec : lora) m.add_lora(file, spec);
  return m;
}

// Run time, not merged: merging would dequantize every adapted matrix to f32 (a 7B model's
// attention and MLP matrices at 4 bytes a value instead of ~0.6) and give up the quantized
// kernels, where the two thin products of a rank-r term cost about r * (in + out) / (in * out)
// of the matrix's, a few percent at r = 8..64 (docs/llama.md has the measured cost).
void LlamaModel::add_lora(const gguf::File& file, const LoraSpec& spec) {
  const LoraAdapter adapter = LoraAdapter::open(spec.path);
  if (adapter.architecture() != "llama")
    fail<ConfigError>("lora '{}': general.architecture is '{}', but the model '{}' is 'llama'", adapter.label(),
                      adapter.architecture(), file.label());
  std::map<std::string, Projection*, std::less<>> matrices;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    Layer& layer = layers_[l];
    const std::string b = "blk." + std::to_string(l) + ".";
    for (auto [name, p] : {std::pair{"attn_q", &layer.attn_q}, {"attn_k", &layer.attn_k}, {"attn_v", &layer.attn_v},
                           {"attn_output", &layer.attn_output}, {"ffn_gate", &layer.ffn_gate},
                           {"ffn_up", &layer.ffn_up}, {"ffn_down", &layer.ffn_down}})
      matrices[b + name + ".weight"] = p;
  }
  if (!tied_) matrices["output.weight"] = &output_;
  for (const LoraAdapter::Pair& pair : adapter.pairs()) {
    if (pair.base == "token_embd.weight")
      fail<ConfigError>("lora '{}': tensor 'token_embd.weight.lora_a': LoRA of the token embeddings is not supported",
                        adapter.label());
    const auto it = matrices.find(pair.base);
    if (it == matrices.end())
      fail<ConfigError>("lora '{}': tensor '{}.lora_a' adapts '{}', which model '{}' has no matrix of that name for{}",
                        adapter.label(), pair.base, pair.base, file.label(),
                        pair.base == "output.weight" ? " (its output is tied to token_embd)" : "");
    Projection& p = *it->second;
    // llama.cpp's check: A's ne0 is the matrix's ne0 (in), B's ne1 its ne1 (out).
    if (pair.a.dim(1) != p.weight.in() || pair.b.dim(0) != p.weight.out())
      fail<ShapeError>("lora '{}': tensors '{}.lora_a' [{}, {}] and '.lora_b' [{}, {}] do not fit '{}' [{}, {}] "
                       "(expected A [in, r], B [r, out], ggml order)", adapter.label(), pair.base, pair.a.dim(1),
                       pair.a.dim(0), pair.b.dim(1), pair.b.dim(0), pair.base, p.weight.in(), p.weight.out());
    const float factor = adapter.factor(pair, spec.scale);
    if (factor == 0) continue;  // checked, but it adds nothing
    Tensor a = pair.a.to_f32(), b = pair.b.to_f32();
    // Small enough to check whole: a NaN here would silently poison every logit.
    for (const Tensor* t : {&a, &b})
      if (!nn::view(*t).allFinite())
        fail<FormatError>("lora '{}': tensor '{}' holds NaN or infinity", adapter.label(),
                          pair.base + (t == &a ? ".lora_a" : ".lora_b"));
    nn::view(b) *= factor;
    p.lora.push_back({nn::Linear(std::move(a), Tensor()), nn::Linear(std::move(b), Tensor())});
    lora_rank_ = std::max(lora_rank_, pair.rank());
    ++lora_terms_;
  }
}

// --- running ----------------------------------------------------------------------------------

LlamaState LlamaModel::start(std::size_t batch, std::int64_t reserve) const {
  LlamaState state(config_, batch);
  for (auto& s : state.sequences_) state.grow(s, reserve);
  return state;
}

std::unique_ptr<lm::State> LlamaModel::new_state(std::span<const Tensor> prefixes, std::int64_t reserve) const {
  for (const Tensor& p : prefixes)
    if (p.defined())
      fail<InputError>("gguf '{}': a Llama model takes no prefix, but prefix '{}' was given", label_, p.name());
  return std::make_unique<LlamaState>(start(prefixes.size(), reserve));
}

Tensor LlamaModel::forward_last(lm::State& state, std::span<const std::span<const std::int32_t>> tokens) const {
  auto* own = dynamic_cast<LlamaState*>(&state);
  if (!own) fail<InputError>("gguf '{}': the state was not started by a Llama model", label_);
  return forward(*own, tokens, /*all_logits=*/false);
}

Tensor LlamaModel::forward(LlamaState& state, std::span<const std::span<const std::int32_t>> tokens,
                           bool all_logits) const {
  const LlamaConfig& c = config_;
  const std::int64_t d = c.n_embd;
  if (tokens.size() != state.batch())
    fail<InputError>("gguf '{}': {} sequences given for a state of {}", label_, tokens.size(), state.batch());
  std::vector<std::int64_t> offsets(tokens.size() + 1, 0);
  for (std::size_t b = 0; b < tokens.size(); ++b) {
    const auto n = static_cast<std::int64_t>(tokens[b].size());
    const auto& s = state.sequences_[b];
    if (n == 0) fail<InputError>("gguf '{}': sequence {} has no new token", label_, b);
    if (s.tokens + n > c.n_ctx)
      fail<InputError>("gguf '{}': sequence {} would reach position {}, but the model's context_length is {}",
                       label_, b, s.tokens + n - 1, c.n_ctx);
    offsets[b + 1] = offsets[b] + n;
  }
  const std::int64_t rows = offsets.back();
  state.positions_.resize(static_cast<std::size_t>(rows));
  for (std::size_t b = 0; b < tokens.size(); ++b) {
    auto& s = state.sequences_[b];
    state.grow(s, s.tokens + static_cast<std::int64_t>(tokens[b].size()));
    for (std::int64_t r = offsets[b]; r < offsets[b + 1]; ++r)
      state.positions_[static_cast<std::size_t>(r)] = s.tokens + (r - offsets[b]);
  }

  nn::MutableMap x = scratch(state.x_, rows, d);
  nn::MutableMap normed = scratch(state.normed_, rows, d);
  nn::MutableMap q = scratch(state.q_, rows, d);
  nn::MutableMap k = scratch(state.k_, rows, c.kv_width());
  nn::MutableMap v = scratch(state.v_, rows, c.kv_width());
  nn::MutableMap attn = scratch(state.attn_, rows, d);
  nn::MutableMap gate = scratch(state.gate_, rows, c.n_ff);
  nn::MutableMap up = scratch(state.up_, rows, c.n_ff);

  for (std::size_t b = 0; b < tokens.size(); ++b)
    nn::gather_rows(token_embd_, tokens[b], x.middleRows(offsets[b], offsets[b + 1] - offsets[b]), "token id");

  for (std::int64_t l = 0; l < c.n_layer; ++l) {
    const Layer& layer = layers_[static_cast<std::size_t>(l)];
    nn::rms_norm(x, layer.attn_norm, normed);
    project(normed, layer.attn_q, q, state);
    project(normed, layer.attn_k, k, state);
    project(normed, layer.attn_v, v, state);
    nn::rope(q, c.head_dim(), state.positions_, c.rope);
    nn::rope(k, c.head_dim(), state.positions_, c.rope);
    attention(l, state, offsets);
    project(attn, layer.attn_output, x, state, /*accumulate=*/true);
    nn::rms_norm(x, layer.ffn_norm, normed);
    project(normed, layer.ffn_gate, gate, state);
    project(normed, layer.ffn_up, up, state);
    nn::swiglu(gate, up);
    project(gate, layer.ffn_down, x, state, /*accumulate=*/true);
  }
  for (std::size_t b = 0; b < tokens.size(); ++b)
    state.sequences_[b].tokens += static_cast<std::int64_t>(tokens[b].size());

  if (all_logits) {
    nn::rms_norm(x, output_norm_, normed);
    project(normed, output_, scratch(state.logits_, rows, c.vocab_size), state);
    return state.logits_.rows(0, rows);
  }
  // Only the last token of each sequence needs the (vocab, n_embd) head.
  const auto batch = static_cast<std::int64_t>(tokens.size());
  nn::MutableMap last = scratch(state.last_, batch, d);
  for (std::int64_t b = 0; b < batch; ++b) last.row(b) = x.row(offsets[b + 1] - 1);
  nn::rms_norm(last, output_norm_, last);
  project(last, output_, scratch(state.logits_, batch, c.vocab_size), state);
  return state.logits_.rows(0, batch);
}

void LlamaModel::project(nn::ConstMatrix x, const Projection& p, nn::Matrix y, LlamaState& state,
                         bool accumulate) const {
  nn::linear(x, p.weight, y, *pool_, nn::Activation::none, accumulate);
  if (p.lora.empty()) return;
  nn::MutableMap t = scratch(state.lora_, x.rows(), lora_rank_);
  for (const LoraTerm& term : p.lora) {
    const std::int64_t r = term.a.out();
    nn::linear(x, term.a, t.leftCols(r), *pool_);
    nn::linear(t.leftCols(r), term.b, y, *pool_, nn::Activation::none, /*accumulate=*/true);
  }
}

// Appends the new keys/values to each sequence's cache, then runs every (sequence, query head)
// pair on the pool: query head h reads key/value head h / group, causally.
void LlamaModel::attention(std::int64_t l, LlamaState& state, std::span<const std::int64_t> offsets) const {
  const LlamaConfig& c = config_;
  const std::int64_t d = c.n_embd, kvw = c.kv_width(), hd = c.head_dim();
  const std::int64_t heads = c.n_head, group = c.n_head / c.n_head_kv;
  const float* k = state.k_.data<float>();
  const float* v = state.v_.data<float>();
  const float* q = state.q_.data<float>();
  float* attn = state.attn_.data<float>();
  const auto batch = static_cast<std::int64_t>(state.batch());
  for (std::int64_t b = 0; b < batch; ++b) {
    auto& s = state.sequences_[static_cast<std::size_t>(b)];
    for (std::int64_t r = offsets[b]; r < offsets[b + 1]; ++r) {
      const std::int64_t pos = s.tokens + (r - offsets[b]);
      for (std::int64_t h = 0; h < c.n_head_kv; ++h) {
        std::copy_n(k + r * kvw + h * hd, hd, state.keys(s, l, h) + pos * hd);
        std::copy_n(v + r * kvw + h * hd, hd, state.values(s, l, h) + pos * hd);
      }
    }
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  pool_->parallel_for(static_cast<std::size_t>(batch * heads), [&](std::size_t task) {
    const auto b = static_cast<std::int64_t>(task) / heads, h = static_cast<std::int64_t>(task) % heads;
    auto& s = state.sequences_[static_cast<std::size_t>(b)];
    const std::int64_t n = offsets[b + 1] - offsets[b];
    const std::int64_t past = s.tokens, keys = past + n;
    const Eigen::OuterStride<> row_stride(hd);
    nn::attend(nn::ConstMap(q + offsets[b] * d + h * hd, n, hd, Eigen::OuterStride<>(d)),
               nn::ConstMap(state.keys(s, l, h / group), keys, hd, row_stride),
               nn::ConstMap(state.values(s, l, h / group), keys, hd, row_stride),
               nn::MutableMap(attn + offsets[b] * d + h * hd, n, hd, Eigen::OuterStride<>(d)), scale, past);
  });
}

}  // namespace ecr
