// Llama-family causal language models (general.architecture = llama: Llama 2/3, TinyLlama,
// SmolLM2, Mistral-style) from GGUF files, as llama.cpp runs them (docs/llama.md):
//
//   x = token_embd[ids]
//   per block:  x += attn_output( attention( rope(attn_q(n)), rope(attn_k(n)), attn_v(n) ) ),  n = rms_norm(x, attn_norm)
//               x += ffn_down( silu(ffn_gate(n)) * ffn_up(n) ),                                n = rms_norm(x, ffn_norm)
//   logits = output( rms_norm(x, output_norm) )        (output absent: token_embd, tied)
//
// Attention is causal, scaled by 1/sqrt(head_dim), grouped: query head h reads key/value head
// h / (head_count / head_count_kv). Rotary embeddings are ggml's adjacent-pair form (nn/rope.hpp).
//
//   LlamaModel  the weights, viewed in the GGUF file's map (never copied: the model keeps the
//               file alive), and the hyper-parameters from its metadata; const: share it across threads.
//   LlamaState  a batch's keys/values (the KV cache) and scratch buffers.
//
// LlamaModel is an lm::CausalLM: lm::generate and lm::generate_batch decode it. It takes no prefix.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ecr/core/tensor.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/io/gguf.hpp"
#include "ecr/lm/causal_lm.hpp"
#include "ecr/models/lora.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/nn/ops.hpp"
#include "ecr/nn/rope.hpp"

namespace ecr {

struct LlamaConfig {
  std::int64_t n_layer = 0;    // llama.block_count
  std::int64_t n_embd = 0;     // llama.embedding_length
  std::int64_t n_ff = 0;       // llama.feed_forward_length
  std::int64_t n_head = 0;     // llama.attention.head_count
  std::int64_t n_head_kv = 0;  // llama.attention.head_count_kv (absent: n_head)
  std::int64_t n_ctx = 0;      // llama.context_length
  std::int64_t vocab_size = 0; // token_embd's rows
  float rms_eps = 1e-5f;       // llama.attention.layer_norm_rms_epsilon
  nn::Rope rope;               // llama.rope.dimension_count (absent: head_dim), .freq_base, .scaling

  std::int64_t head_dim() const { return n_embd / n_head; }
  std::int64_t kv_width() const { return n_head_kv * head_dim(); }
  // From the metadata: FormatError naming a missing or mistyped key, ConfigError naming a value
  // the architecture cannot have (heads not dividing the width, an unknown rope scaling). The
  // vocabulary size is left to the loader (token_embd's shape).
  static LlamaConfig from_gguf(const gguf::File& file);
};

// How the model is computed. activations: q8 (the default) runs the weights stored in GGML's
// blocks of 32 as llama.cpp does, on 8-bit activations and integer dot products
// (nn::Activations); exact runs every matrix on f32 activations, the product of the dequantized
// weights on any CPU (what the float64 reference in tools/llama_reference.py computes).
struct LlamaOptions {
  nn::Activations activations = nn::Activations::q8;
};

class LlamaState final : public lm::State {
 public:
  std::size_t batch() const override { return sequences_.size(); }
  // Tokens fed so far to sequence b: the position of its next token.
  std::int64_t tokens(std::size_t b) const { return sequences_.at(b).tokens; }
  void remove(std::size_t b) override;

 private:
  friend class LlamaModel;
  struct Sequence {
    std::vector<float> kv;  // [layer][key|value][kv_head][capacity][head_dim]
    std::int64_t capacity = 0;
    std::int64_t tokens = 0;
  };
  LlamaState(const LlamaConfig& config, std::size_t batch);
  void grow(Sequence& s, std::int64_t rows) const;
  float* keys(Sequence& s, std::int64_t layer, std::int64_t kv_head) const;
  float* values(Sequence& s, std::int64_t layer, std::int64_t kv_head) const;

  std::int64_t layers_ = 0, kv_heads_ = 0, head_dim_ = 0;
  std::vector<Sequence> sequences_;
  std::vector<std::int64_t> positions_;
  // Scratch and output buffers, (rows, width) each; they grow and are then reused.
  Tensor x_, normed_, q_, k_, v_, attn_, gate_, up_, last_, logits_;
  Tensor lora_;  // A x of a LoRA term, (rows, the model's largest rank)
};

class LlamaModel final : public lm::CausalLM {
 public:
  // Reads the architecture from `file` and views its tensors (llama.cpp's names: token_embd,
  // blk.N.attn_norm / attn_q / attn_k / attn_v / attn_output / ffn_norm / ffn_gate / ffn_up /
  // ffn_down, output_norm, output). ConfigError for another architecture or a tensor type ecr
  // has no kernel for (naming the tensor and the type); FormatError naming a missing tensor or
  // key; ShapeError naming a tensor whose shape the hyper-parameters contradict, with the shape
  // expected. `pool` runs the ops; null means ThreadPool::shared_default().
  //
  // `lora` applies LoRA adapters (models/lora.hpp), each with its scale, at run time over the
  // weights as stored: y = W x + sum over adapters of factor * B (A x). The base stays quantized
  // and in the map; an adapter adds only its small A and B (f32). Besides LoraAdapter's errors:
  // ConfigError naming the adapter file for another architecture, a tensor the model has no
  // matrix of that name for (or token_embd, whose LoRA ecr does not apply); ShapeError naming
  // the tensor when A's input or B's output width is not the matrix's.
  static LlamaModel load(const gguf::File& file, std::shared_ptr<ThreadPool> pool = nullptr,
                         LlamaOptions options = {});
  static LlamaModel load(const std::filesystem::path& path, std::shared_ptr<ThreadPool> pool = nullptr,
                         LlamaOptions options = {});
  static LlamaModel load(const gguf::File& file, std::shared_ptr<ThreadPool> pool, std::span<const LoraSpec> lora,
                         LlamaOptions options = {});
  static LlamaModel load(const std::filesystem::path& path, std::shared_ptr<ThreadPool> pool,
                         std::span<const LoraSpec> lora, LlamaOptions options = {});

  const LlamaConfig& config() const { return config_; }
  bool tied_output() const { return tied_; }
  // The matrices LoRA adapters adapt (with a non-zero scale), counted once per adapter.
  std::size_t lora_terms() const { return lora_terms_; }

  // A fresh state for `batch` sequences with room for `reserve` tokens each.
  LlamaState start(std::size_t batch, std::int64_t reserve = 0) const;
  // Feeds each sequence's new tokens after what `state` holds. With `all_logits`, returns the
  // logits of every new token, (total new tokens, vocab), sequences one after another; else of
  // each sequence's last, (batch, vocab). A view of the state's buffer, valid until its next use.
  Tensor forward(LlamaState& state, std::span<const std::span<const std::int32_t>> tokens, bool all_logits) const;

  // lm::CausalLM. A defined prefix is an InputError (Llama has no prefix rows).
  std::int64_t vocab_size() const override { return config_.vocab_size; }
  std::int64_t context_length() const override { return config_.n_ctx; }
  std::unique_ptr<lm::State> new_state(std::span<const Tensor> prefixes, std::int64_t reserve) const override;
  Tensor forward_last(lm::State& state, std::span<const std::span<const std::int32_t>> tokens) const override;

 private:
  // One adapter's low-rank update of a matrix: a (r, in), b (out, r) with the factor folded in.
  struct LoraTerm {
    nn::Linear a, b;
  };
  // A weight matrix and the LoRA terms over it.
  struct Projection {
    nn::Linear weight;
    std::vector<LoraTerm> lora;
  };
  struct Layer {
    nn::RmsNorm attn_norm;
    Projection attn_q, attn_k, attn_v, attn_output;
    nn::RmsNorm ffn_norm;
    Projection ffn_gate, ffn_up, ffn_down;
  };
  void attention(std::int64_t layer, LlamaState& state, std::span<const std::int64_t> offsets) const;
  // y = x W^T + each term's (x A^T) B^T; with `accumulate`, y += all of it.
  void project(nn::ConstMatrix x, const Projection& p, nn::Matrix y, LlamaState& state, bool accumulate = false) const;
  void add_lora(const gguf::File& file, const LoraSpec& spec);

  std::string label_;
  LlamaConfig config_;
  nn::Linear token_embd_;  // (vocab, n_embd)
  std::vector<Layer> layers_;
  nn::RmsNorm output_norm_;
  Projection output_;  // tied: token_embd_
  bool tied_ = false;
  std::int64_t lora_rank_ = 0;  // the largest rank of a LoRA term (the width of LlamaState::lora_)
  std::size_t lora_terms_ = 0;
  std::shared_ptr<ThreadPool> pool_;
};

}  // namespace ecr
