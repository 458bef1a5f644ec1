// A causal language model as the decoder sees it: feed each sequence's new tokens, read the
// logits of its last one. GPT-2 (ecr/models/gpt2.hpp) implements it; another architecture plugs
// into lm::generate and lm::generate_batch by implementing these few calls.
//
//   State     the keys and values (the KV cache) of a batch of sequences, and whatever scratch
//             the model keeps with them; one decoding at a time uses it.
//   CausalLM  the weights, loaded once and const: share it across threads.
//
// A prefix is a model's own per-sequence rows placed before the first token (GPT-2 takes ECR's
// prompt as key/value rows); a model that takes none refuses a defined one.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "ecr/core/tensor.hpp"

namespace ecr::lm {

class State {
 public:
  virtual ~State() = default;
  // Sequences in the batch.
  virtual std::size_t batch() const = 0;
  // Drops sequence b and its keys/values; later sequences move down one (a batch shrinks as its
  // sequences finish).
  virtual void remove(std::size_t b) = 0;

 protected:
  State() = default;
  State(const State&) = default;
  State& operator=(const State&) = default;
};

class CausalLM {
 public:
  virtual ~CausalLM() = default;

  virtual std::int64_t vocab_size() const = 0;
  // Positions a sequence may reach: prompt and generated tokens together (prefix rows aside).
  virtual std::int64_t context_length() const = 0;

  // A fresh state for prefixes.size() sequences, each with its optional prefix (undefined: none)
  // and room for `reserve` tokens, so that feeding that many allocates nothing.
  virtual std::unique_ptr<State> new_state(std::span<const Tensor> prefixes, std::int64_t reserve) const = 0;
  // Feeds each sequence's new tokens (at least one each) after what `state` holds and keeps their
  // keys/values. Returns f32 (batch, vocab_size) host logits of each sequence's last new token,
  // a view valid until the next call on `state`. InputError for a token id outside the vocabulary
  // or a position past context_length().
  virtual Tensor forward_last(State& state, std::span<const std::span<const std::int32_t>> tokens) const = 0;

 protected:
  CausalLM() = default;
  CausalLM(const CausalLM&) = default;
  CausalLM& operator=(const CausalLM&) = default;
};

}  // namespace ecr::lm
