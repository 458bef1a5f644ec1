#include "ecr/models/gpt2.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "ecr/nn/attention.hpp"
#include "ecr/nn/weights.hpp"

namespace ecr {

namespace {

// A (rows, width) matrix in `buffer`, reallocating only when it has fewer rows than asked.
nn::MutableMap scratch(Tensor& buffer, std::int64_t rows, std::int64_t width) {
  if (!buffer.defined() || buffer.dim(0) < rows || buffer.dim(1) != width)
    buffer = Tensor::empty(DType::f32, {std::max<std::int64_t>(rows, 1), width});
  return {buffer.data<float>(), rows, width, Eigen::OuterStride<>(width)};
}

}  // namespace

Gpt2Config Gpt2Config::from_fields(const Fields& config) {
  Gpt2Config c;
  c.n_layer = config.integer("n_layer", 1);
  c.n_head = config.integer("n_head", 1);
  c.n_embd = config.integer("n_embd", 1);
  c.n_positions = config.integer("n_positions", 1);
  c.vocab_size = config.integer("vocab_size", 1);
  c.n_inner = config.integer_or("n_inner", 4 * c.n_embd, 1);
  if (c.n_embd % c.n_head != 0)
    fail<ConfigError>("{}: n_embd {} is not a multiple of n_head {}", config.where(), c.n_embd, c.n_head);
  c.layer_norm_epsilon = config.positive_number_or("layer_norm_epsilon", c.layer_norm_epsilon);
  const std::string act = config.string_or("activation_function", "gelu_new");
  if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast")
    c.activation = nn::Activation::gelu_tanh;
  else if (act == "gelu")
    c.activation = nn::Activation::gelu_erf;
  else
    fail<ConfigError>("{}: activation_function '{}' is not supported (gelu_new, gelu)", config.where(), act);
  // Variants of the attention that GPT-2 checkpoints in this project never use.
  if (config.boolean_or("scale_attn_by_inverse_layer_idx", false) || !config.boolean_or("scale_attn_weights", true) ||
      config.boolean_or("add_cross_attention", false))
    fail<ConfigError>("{}: only GPT-2's standard self-attention is supported", config.where());
  c.num_labels = config.has("id2label") ? static_cast<std::int64_t>(config.object_size("id2label"))
                                        : config.integer_or("num_labels", 2, 1);
  return c;
}

// --- state ------------------------------------------------------------------------------------

Gpt2State::Gpt2State(const Gpt2Config& config, std::size_t batch)
    : layers_(config.n_layer), heads_(config.n_head), head_dim_(config.head_dim()), sequences_(batch) {}

Gpt2State::Gpt2State(const Gpt2State& other)
    : layers_(other.layers_), heads_(other.heads_), head_dim_(other.head_dim_), sequences_(other.sequences_) {
  const std::pair<Tensor*, const Tensor*> buffers[] = {
      {&x_, &other.x_},           {&normed_, &other.normed_}, {&qkv_, &other.qkv_},   {&attn_, &other.attn_},
      {&mlp_, &other.mlp_},       {&hidden_, &other.hidden_}, {&last_, &other.last_}, {&logits_, &other.logits_}};
  for (const auto& [mine, theirs] : buffers)
    if (theirs->defined()) *mine = theirs->clone();
}

Gpt2State& Gpt2State::operator=(const Gpt2State& other) {
  if (this != &other) *this = Gpt2State(other);
  return *this;
}

void Gpt2State::grow(Sequence& s, std::int64_t rows) const {
  if (rows <= s.capacity) return;
  const std::int64_t capacity = std::max(rows, 2 * s.capacity);
  std::vector<float> kv(static_cast<std::size_t>(layers_ * 2 * heads_ * capacity * head_dim_));
  const std::int64_t used = s.length() * head_dim_;
  for (std::int64_t block = 0; block < layers_ * 2 * heads_; ++block)
    std::copy_n(s.kv.data() + block * s.capacity * head_dim_, used, kv.data() + block * capacity * head_dim_);
  s.kv = std::move(kv);
  s.capacity = capacity;
}

void Gpt2State::reserve(std::int64_t more) {
  for (auto& s : sequences_) grow(s, s.length() + more);
}

void Gpt2State::remove(std::size_t b) {
  if (b >= sequences_.size()) fail<InputError>("Gpt2State: no sequence {} in a batch of {}", b, sequences_.size());
  sequences_.erase(sequences_.begin() + static_cast<std::ptrdiff_t>(b));
}

float* Gpt2State::keys(Sequence& s, std::int64_t layer, std::int64_t head) const {
  return s.kv.data() + ((layer * 2 + 0) * heads_ + head) * s.capacity * head_dim_;
}

float* Gpt2State::values(Sequence& s, std::int64_t layer, std::int64_t head) const {
  return s.kv.data() + ((layer * 2 + 1) * heads_ + head) * s.capacity * head_dim_;
}

// --- model ------------------------------------------------------------------------------------

Gpt2Model Gpt2Model::load(const Bundle& bundle, std::string_view name, std::shared_ptr<ThreadPool> pool,
                          nn::MatrixType weights) {
  return load(read_component(bundle, name), std::move(pool), weights);
}

Gpt2Model Gpt2Model::load(const Component& component, std::shared_ptr<ThreadPool> pool, nn::MatrixType weights) {
  component.expect_type({"gpt2", "gpt2_classifier"});
  const Bundle& bundle = *component.bundle;
  Gpt2Model m;
  m.name_ = component.name;
  m.config_ = Gpt2Config::from_fields(component.config);
  m.pool_ = pool ? std::move(pool) : ThreadPool::shared_default();
  const Gpt2Config& c = m.config_;
  const std::string t = m.name_ + "/transformer.";
  const nn::Conv1dLayout layout = nn::conv1d_layout(component);
  component.expect_layers("n_layer", c.n_layer, t + "h." + std::to_string(c.n_layer - 1) + ".ln_1.weight");
  // The layers load on the pool: each reads and scans its weights and transposes its Conv1Ds,
  // the bulk of a load. Chunk 0 is the embeddings, so errors come in the tensors' order.
  m.layers_.resize(static_cast<std::size_t>(c.n_layer));
  m.pool_->parallel_for(m.layers_.size() + 1, [&](std::size_t chunk) {
    if (chunk == 0) {
      m.wte_ = nn::load_matrix(bundle, t + "wte.weight", {c.vocab_size, c.n_embd}, weights);
      m.wpe_ = nn::load_weight(bundle, t + "wpe.weight", {c.n_positions, c.n_embd});
      return;
    }
    const std::string h = t + "h." + std::to_string(chunk - 1) + ".";
    m.layers_[chunk - 1] = {
        nn::load_layer_norm(bundle, h + "ln_1", c.n_embd, c.layer_norm_epsilon),
        nn::load_conv1d(bundle, h + "attn.c_attn", c.n_embd, 3 * c.n_embd, weights, layout),
        nn::load_conv1d(bundle, h + "attn.c_proj", c.n_embd, c.n_embd, weights, layout),
        nn::load_layer_norm(bundle, h + "ln_2", c.n_embd, c.layer_norm_epsilon),
        nn::load_conv1d(bundle, h + "mlp.c_fc", c.n_embd, c.n_inner, weights, layout),
        nn::load_conv1d(bundle, h + "mlp.c_proj", c.n_inner, c.n_embd, weights, layout),
    };
  });
  m.ln_f_ = nn::load_layer_norm(bundle, t + "ln_f", c.n_embd, c.layer_norm_epsilon);
  m.lm_head_ = component.entry.boolean_or("tied_lm_head", true)
                   ? m.wte_
                   : nn::load_matrix(bundle, m.name_ + "/lm_head.weight", {c.vocab_size, c.n_embd}, weights);
  if (component.type == "gpt2_classifier")
    m.score_.weight = nn::load_weight(bundle, m.name_ + "/score.weight", {c.num_labels, c.n_embd});
  return m;
}

Gpt2State Gpt2Model::start(const Tensor& prefix) const { return start(std::span<const Tensor>(&prefix, 1)); }

Gpt2State Gpt2Model::start(std::span<const Tensor> prefixes) const {
  const Gpt2Config& c = config_;
  Gpt2State state(c, prefixes.size());
  for (std::size_t b = 0; b < prefixes.size(); ++b) {
    const Tensor& p = prefixes[b];
    if (!p.defined()) continue;
    if (p.dtype() != DType::f32 || p.rank() != 2 || p.dim(1) != c.prefix_width())
      fail<ShapeError>("component '{}': prefix '{}' must be f32 (S, {}) = (S, layers * 2 * n_embd), found {} {}",
                       name_, p.name(), c.prefix_width(), dtype_name(p.dtype()), shape_string(p.shape()));
    auto& s = state.sequences_[b];
    state.grow(s, p.dim(0));
    s.prefix = p.dim(0);
    const float* src = p.data<float>();
    for (std::int64_t row = 0; row < s.prefix; ++row)
      for (std::int64_t l = 0; l < c.n_layer; ++l)
        for (std::int64_t h = 0; h < c.n_head; ++h) {
          const float* k = src + row * c.prefix_width() + (l * 2 * c.n_head + h) * c.head_dim();
          const float* v = k + c.n_embd;
          std::copy_n(k, c.head_dim(), state.keys(s, l, h) + row * c.head_dim());
          std::copy_n(v, c.head_dim(), state.values(s, l, h) + row * c.head_dim());
        }
  }
  return state;
}

Gpt2Output Gpt2Model::forward(Gpt2State& state, std::span<const std::vector<std::int32_t>> tokens,
                              Logits logits) const {
  std::vector<std::span<const std::int32_t>> spans(tokens.begin(), tokens.end());
  return run(state, spans, logits);
}

Gpt2Output Gpt2Model::forward(Gpt2State& state, std::span<const std::int32_t> tokens, Logits logits) const {
  return run(state, std::span<const std::span<const std::int32_t>>(&tokens, 1), logits);
}

std::unique_ptr<lm::State> Gpt2Model::new_state(std::span<const Tensor> prefixes, std::int64_t reserve) const {
  auto state = std::make_unique<Gpt2State>(start(prefixes));
  state->reserve(reserve);
  return state;
}

Tensor Gpt2Model::forward_last(lm::State& state, std::span<const std::span<const std::int32_t>> tokens) const {
  auto* own = dynamic_cast<Gpt2State*>(&state);
  if (!own) fail<InputError>("component '{}': the state was not started by a GPT-2 model", name_);
  return run(*own, tokens, Logits::last).logits;
}

std::span<const std::int32_t> Gpt2Model::newest(std::span<const std::int32_t> ids) const {
  const auto limit = static_cast<std::size_t>(config_.n_positions);
  return ids.size() > limit ? ids.last(limit) : ids;
}

Gpt2Output Gpt2Model::forward(std::span<const std::int32_t> ids, const Tensor& prefix, Logits logits) const {
  Gpt2State state = start(prefix);
  return forward(state, newest(ids), logits);
}

Tensor Gpt2Model::classify(std::span<const std::vector<std::int32_t>> batch) const {
  if (!has_classifier())
    fail<ConfigError>("component '{}' is not a gpt2_classifier: it has no score head", name_);
  std::vector<std::span<const std::int32_t>> sequences;
  for (const auto& ids : batch) {
    if (ids.empty()) fail<InputError>("component '{}': cannot classify an empty sequence", name_);
    sequences.push_back(newest(ids));
  }
  const auto b = static_cast<std::int64_t>(batch.size());
  Tensor last = Tensor::empty(DType::f32, {b, config_.n_embd});
  // Chunks of at most kClassifyChunkTokens tokens (or one sequence) share a state, so that the
  // scratch buffers stay bounded however many sequences come.
  for (std::size_t first = 0; first < sequences.size();) {
    std::size_t end = first, tokens = 0;
    while (end < sequences.size() && (end == first || tokens + sequences[end].size() <= kClassifyChunkTokens))
      tokens += sequences[end++].size();
    const std::span<const std::span<const std::int32_t>> chunk(sequences.data() + first, end - first);
    std::vector<Tensor> no_prefixes(chunk.size());
    Gpt2State state = start(no_prefixes);
    const Gpt2Output out = run(state, chunk, Logits::none);
    for (std::size_t i = 0; i < chunk.size(); ++i)
      nn::view(last).row(static_cast<std::int64_t>(first + i)) = nn::view(out.hidden).row(out.offsets[i + 1] - 1);
    first = end;
  }
  Tensor scores = Tensor::empty(DType::f32, {b, config_.num_labels}, name_ + " scores");
  nn::linear(nn::view(last), score_, nn::view(scores), *pool_);
  return scores;
}

Gpt2Output Gpt2Model::run(Gpt2State& state, std::span<const std::span<const std::int32_t>> tokens,
                          Logits logits) const {
  const Gpt2Config& c = config_;
  const std::int64_t d = c.n_embd;
  if (tokens.size() != state.batch())
    fail<InputError>("component '{}': {} sequences given for a state of {}", name_, tokens.size(), state.batch());

  Gpt2Output out;
  out.offsets.assign(tokens.size() + 1, 0);
  for (std::size_t b = 0; b < tokens.size(); ++b) {
    const auto n = static_cast<std::int64_t>(tokens[b].size());
    const auto& s = state.sequences_[b];
    if (s.tokens + n > c.n_positions)
      fail<InputError>("component '{}': sequence {} would reach position {}, but the model has {} positions",
                       name_, b, s.tokens + n - 1, c.n_positions);
    if (n == 0 && logits == Logits::last)
      fail<InputError>("component '{}': sequence {} has no token to take logits from", name_, b);
    out.offsets[b + 1] = out.offsets[b] + n;
  }
  const std::int64_t rows = out.offsets.back();
  // Each sequence's cache grows by its own new tokens only: sized by the batch's total, a batch
  // of B sequences would hold B times the keys and values it needs.
  for (std::size_t b = 0; b < tokens.size(); ++b) {
    auto& s = state.sequences_[b];
    state.grow(s, s.length() + static_cast<std::int64_t>(tokens[b].size()));
  }

  nn::MutableMap x = scratch(state.x_, rows, d);
  nn::MutableMap normed = scratch(state.normed_, rows, d);
  nn::MutableMap attn = scratch(state.attn_, rows, d);
  nn::MutableMap mlp = scratch(state.mlp_, rows, c.n_inner);
  nn::MutableMap qkv = scratch(state.qkv_, rows, 3 * d);

  // Token + position embeddings.
  const nn::ConstMap wpe = nn::view(wpe_);
  for (std::size_t b = 0; b < tokens.size(); ++b) {
    const std::int64_t first = out.offsets[b];
    const auto n = static_cast<std::int64_t>(tokens[b].size());
    nn::gather_rows(wte_, tokens[b], x.middleRows(first, n), "token id");
    for (std::int64_t i = 0; i < n; ++i) x.row(first + i) += wpe.row(state.sequences_[b].tokens + i);
  }

  for (std::int64_t l = 0; l < c.n_layer; ++l) {
    const Layer& layer = layers_[static_cast<std::size_t>(l)];
    nn::layer_norm(x, layer.ln_1, normed);
    nn::linear(normed, layer.c_attn, qkv, *pool_);
    attention(l, state, out.offsets);
    nn::linear(attn, layer.c_proj, x, *pool_, nn::Activation::none, /*accumulate=*/true);
    nn::layer_norm(x, layer.ln_2, normed);
    nn::linear(normed, layer.c_fc, mlp, *pool_, c.activation);
    nn::linear(mlp, layer.mlp_proj, x, *pool_, nn::Activation::none, /*accumulate=*/true);
  }
  for (std::size_t b = 0; b < tokens.size(); ++b) state.sequences_[b].tokens += static_cast<std::int64_t>(tokens[b].size());

  nn::layer_norm(x, ln_f_, scratch(state.hidden_, rows, d));
  out.hidden = state.hidden_.rows(0, rows);
  if (logits == Logits::all) {
    nn::linear(scratch(state.hidden_, rows, d), lm_head_, scratch(state.logits_, rows, c.vocab_size), *pool_);
    out.logits = state.logits_.rows(0, rows);
  } else if (logits == Logits::last) {
    const auto batch = static_cast<std::int64_t>(tokens.size());
    nn::MutableMap last = scratch(state.last_, batch, d);
    for (std::int64_t b = 0; b < batch; ++b) last.row(b) = nn::view(out.hidden).row(out.offsets[b + 1] - 1);
    nn::linear(last, lm_head_, scratch(state.logits_, batch, c.vocab_size), *pool_);
    out.logits = state.logits_.rows(0, batch);
  }
  return out;
}

// Appends the new keys/values to each sequence's cache, then runs every (sequence, head) pair:
// the new queries see the prefix, the earlier tokens and themselves causally.
void Gpt2Model::attention(std::int64_t l, Gpt2State& state, std::span<const std::int64_t> offsets) const {
  const Gpt2Config& c = config_;
  const std::int64_t d = c.n_embd, hd = c.head_dim(), heads = c.n_head;
  const float* qkv = state.qkv_.data<float>();
  float* attn = state.attn_.data<float>();
  const auto batch = static_cast<std::int64_t>(state.batch());
  for (std::int64_t b = 0; b < batch; ++b) {
    auto& s = state.sequences_[static_cast<std::size_t>(b)];
    for (std::int64_t r = offsets[b]; r < offsets[b + 1]; ++r) {
      const std::int64_t pos = s.length() + (r - offsets[b]);
      for (std::int64_t h = 0; h < heads; ++h) {
        std::copy_n(qkv + r * 3 * d + d + h * hd, hd, state.keys(s, l, h) + pos * hd);
        std::copy_n(qkv + r * 3 * d + 2 * d + h * hd, hd, state.values(s, l, h) + pos * hd);
      }
    }
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  pool_->parallel_for(static_cast<std::size_t>(batch * heads), [&](std::size_t task) {
    const auto b = static_cast<std::int64_t>(task) / heads, h = static_cast<std::int64_t>(task) % heads;
    auto& s = state.sequences_[static_cast<std::size_t>(b)];
    const std::int64_t n = offsets[b + 1] - offsets[b];
    if (n == 0) return;
    const std::int64_t past = s.length(), keys = past + n;
    const Eigen::OuterStride<> row_stride(hd);
    nn::attend(nn::ConstMap(qkv + offsets[b] * 3 * d + h * hd, n, hd, Eigen::OuterStride<>(3 * d)),
               nn::ConstMap(state.keys(s, l, h), keys, hd, row_stride),
               nn::ConstMap(state.values(s, l, h), keys, hd, row_stride),
               nn::MutableMap(attn + offsets[b] * d + h * hd, n, hd, Eigen::OuterStride<>(d)), scale, past);
  });
}

}  // namespace ecr
