// GPT-2 (HuggingFace GPT2LMHeadModel / GPT2ForSequenceClassification semantics, docs/math.md
// section 3): the backbone of recommendation and generation, and the emotion classifier.
//
//   Gpt2Model   weights and config, loaded once, const: share it across threads.
//   Gpt2State   one session's keys/values (prefix rows, then every token fed so far) and
//               scratch buffers: feeding one more token costs one token's work.
//
// Batches: several sequences of different lengths are packed back to back, so there is no
// padding to mask; each sequence attends to its own prefix and tokens only, and gets the same
// result as when run alone (up to float rounding of the differently shaped GEMMs).
//
// Context limit: positions are learned up to n_positions. forward() on a state throws
// InputError when a token would pass that limit; the one-shot forward(ids) and classify() keep
// the newest n_positions tokens (forward returns outputs for those only); lm::generate() keeps the
// newest prompt tokens that leave room for max_new_tokens (lm/generate.hpp).
//
// Gpt2Model is an lm::CausalLM (lm/causal_lm.hpp): lm::generate and lm::generate_batch decode it,
// with ECR's prompt as the prefix.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ecr/core/tensor.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/io/component.hpp"
#include "ecr/lm/causal_lm.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/nn/ops.hpp"
#include "ecr/nn/weights.hpp"

namespace ecr {

struct Gpt2Config {
  std::int64_t n_layer = 0;
  std::int64_t n_head = 0;
  std::int64_t n_embd = 0;
  std::int64_t n_inner = 0;  // 4 * n_embd when the config says null
  std::int64_t n_positions = 0;
  std::int64_t vocab_size = 0;
  std::int64_t num_labels = 0;  // gpt2_classifier components only
  float layer_norm_epsilon = 1e-5f;
  nn::Activation activation = nn::Activation::gelu_tanh;

  std::int64_t head_dim() const { return n_embd / n_head; }
  // Width of one prefix row: (layer, key|value, head, head_dim) flattened.
  std::int64_t prefix_width() const { return n_layer * 2 * n_embd; }
  // From a HuggingFace GPT2Config JSON (a component's config); ConfigError naming the field.
  static Gpt2Config from_fields(const Fields& config);
};

class Gpt2State final : public lm::State {
 public:
  // A copy is independent of its source (a fork of the session): buffers are copied, not shared.
  Gpt2State(const Gpt2State& other);
  Gpt2State& operator=(const Gpt2State& other);
  Gpt2State(Gpt2State&&) noexcept = default;
  Gpt2State& operator=(Gpt2State&&) noexcept = default;

  std::size_t batch() const override { return sequences_.size(); }
  // Prefix rows of sequence b.
  std::int64_t prefix_length(std::size_t b) const { return sequences_.at(b).prefix; }
  // Tokens fed so far to sequence b: the position of its next token.
  std::int64_t tokens(std::size_t b) const { return sequences_.at(b).tokens; }
  // Makes room for `more` tokens per sequence, so that feeding them allocates nothing.
  void reserve(std::int64_t more);
  // Drops sequence b and its keys/values; later sequences move down one (a batch shrinks as its
  // sequences finish).
  void remove(std::size_t b) override;

 private:
  friend class Gpt2Model;
  struct Sequence {
    std::vector<float> kv;  // [layer][key|value][head][capacity][head_dim]
    std::int64_t capacity = 0;
    std::int64_t prefix = 0;
    std::int64_t tokens = 0;
    std::int64_t length() const { return prefix + tokens; }
  };
  Gpt2State(const Gpt2Config& config, std::size_t batch);
  void grow(Sequence& s, std::int64_t rows) const;
  float* keys(Sequence& s, std::int64_t layer, std::int64_t head) const;
  float* values(Sequence& s, std::int64_t layer, std::int64_t head) const;

  std::int64_t layers_ = 0, heads_ = 0, head_dim_ = 0;
  std::vector<Sequence> sequences_;
  // Scratch and output buffers, (rows, width) each; they grow and are then reused.
  Tensor x_, normed_, qkv_, attn_, mlp_, hidden_, last_, logits_;
};

// Which positions forward() computes LM-head logits for.
enum class Logits { none, last, all };

struct Gpt2Output {
  // Views of the state's buffers, valid until the next forward() on that state (clone() to keep).
  Tensor hidden;  // (rows, n_embd): final hidden states (after ln_f) of every token fed
  Tensor logits;  // (batch, vocab) for Logits::last, (rows, vocab) for Logits::all
  // Sequence b's rows of `hidden` (and of `logits` for Logits::all) are [offsets[b], offsets[b+1]).
  std::vector<std::int64_t> offsets;
};

class Gpt2Model final : public lm::CausalLM {
 public:
  // Loads component `name` (type "gpt2" or "gpt2_classifier") of `bundle`, checking every
  // tensor's shape against its config (ShapeError naming the tensor, or its int8 scale).
  // `pool` runs the ops; null means ThreadPool::shared_default() (one thread per core).
  // The matrices (the blocks' Conv1D layers, wte and the LM head) keep the bundle's dtype (f32,
  // f16, bf16, or i8 with per-row scales) and are computed in it with f32 sums (nn::linear);
  // `weights` casts them at load instead (nn::cast_matrix: f32 widens, i8 quantizes). Biases,
  // LayerNorms, wpe and the classifier head are f32.
  static Gpt2Model load(const Component& component, std::shared_ptr<ThreadPool> pool = nullptr,
                        nn::MatrixType weights = nn::kAsStored);
  static Gpt2Model load(const Bundle& bundle, std::string_view name, std::shared_ptr<ThreadPool> pool = nullptr,
                        nn::MatrixType weights = nn::kAsStored);
  // The dtype the matrices are computed in (that of wte).
  DType weight_dtype() const { return wte_.weight.dtype(); }

  const Gpt2Config& config() const { return config_; }
  const std::string& name() const { return name_; }
  bool has_classifier() const { return score_.weight.defined(); }

  // A fresh state for one sequence, with an optional prefix prompt: (S, prefix_width()) f32, read
  // as (S, layer, key|value, head, head_dim); every token attends to all S rows.
  Gpt2State start(const Tensor& prefix = {}) const;
  // A fresh state for a batch, one prefix per sequence (undefined: none).
  Gpt2State start(std::span<const Tensor> prefixes) const;

  // Feeds each sequence's new tokens after what `state` holds and keeps their keys/values.
  Gpt2Output forward(Gpt2State& state, std::span<const std::vector<std::int32_t>> tokens,
                     Logits logits = Logits::none) const;
  Gpt2Output forward(Gpt2State& state, std::span<const std::int32_t> tokens, Logits logits = Logits::none) const;
  // One sequence from scratch, keeping its newest n_positions tokens (outputs are for those).
  Gpt2Output forward(std::span<const std::int32_t> ids, const Tensor& prefix = {}, Logits logits = Logits::none) const;

  // lm::CausalLM: start(prefixes) with room reserved, and forward(..., Logits::last).
  std::int64_t vocab_size() const override { return config_.vocab_size; }
  std::int64_t context_length() const override { return config_.n_positions; }
  std::unique_ptr<lm::State> new_state(std::span<const Tensor> prefixes, std::int64_t reserve) const override;
  Tensor forward_last(lm::State& state, std::span<const std::span<const std::int32_t>> tokens) const override;

  // gpt2_classifier: the `score` head on each sequence's last token, (batch, num_labels); like
  // the one-shot forward, each sequence keeps its newest n_positions tokens. The batch runs in
  // chunks of at most kClassifyChunkTokens tokens, so its memory does not grow with its size.
  static constexpr std::size_t kClassifyChunkTokens = 4096;
  Tensor classify(std::span<const std::vector<std::int32_t>> batch) const;

 private:
  struct Layer {
    nn::LayerNorm ln_1;
    nn::Linear c_attn;  // (3 * n_embd, n_embd): queries, keys, values
    nn::Linear c_proj;
    nn::LayerNorm ln_2;
    nn::Linear c_fc;
    nn::Linear mlp_proj;
  };
  // The last n_positions of `ids` (the context policy of the one-shot calls).
  std::span<const std::int32_t> newest(std::span<const std::int32_t> ids) const;
  Gpt2Output run(Gpt2State& state, std::span<const std::span<const std::int32_t>> tokens, Logits logits) const;
  void attention(std::int64_t layer, Gpt2State& state, std::span<const std::int64_t> offsets) const;

  std::string name_;
  Gpt2Config config_;
  nn::Linear wte_;  // (vocab, n_embd), weight and scale only: the embedding table
  Tensor wpe_;  // (n_positions, n_embd)
  std::vector<Layer> layers_;
  nn::LayerNorm ln_f_;
  nn::Linear lm_head_;  // tied: wte
  nn::Linear score_;    // classifier components only, bias-free
  std::shared_ptr<ThreadPool> pool_;
};

}  // namespace ecr
