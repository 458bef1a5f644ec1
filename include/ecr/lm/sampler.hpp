// Choosing the next token from a model's logits, with HuggingFace's logits processors.
//
// Each step, in HuggingFace's order: repetition penalty, no-repeat n-grams, min new tokens, then (sampling
// only) temperature, top-k, top-p; greedy takes the first arg max. Penalties and n-grams look at
// the prompt and the generated tokens together, as HF's input_ids do.
//
// Sampling is reproducible: the generator is std::mt19937_64 seeded with `seed`, and a uniform
// draw is its top 53 bits / 2^53 (not std::uniform_real_distribution, whose output differs
// between standard libraries); the token is the first whose cumulative probability exceeds it.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "ecr/lm/options.hpp"

namespace ecr::lm {

// One sequence's token choice: its context (prompt + generated) and its own generator, so that
// sequences decoded together choose exactly as each would alone.
class Sampler {
 public:
  // `options` must outlive the sampler.
  Sampler(std::span<const std::int32_t> prompt, const GenerateOptions& options);
  // The processors on `logits` (in place), then the choice; the token joins the context.
  std::int32_t next(std::span<float> logits);

 private:
  const GenerateOptions* options_;
  std::size_t prompt_size_;
  std::vector<std::int32_t> context_;
  std::mt19937_64 rng_;
};

// The processors, exposed for tests and other decoders. `context` is prompt + generated.
// HF RepetitionPenaltyLogitsProcessor: a seen token's logit is divided by `penalty` when
// positive, multiplied when negative.
void apply_repetition_penalty(std::span<float> logits, std::span<const std::int32_t> context, float penalty);
// HF NoRepeatNGramLogitsProcessor: tokens that would complete an n-gram already in `context`
// get -infinity.
void ban_repeated_ngrams(std::span<float> logits, std::span<const std::int32_t> context, std::int64_t n);
// HF MinNewTokensLengthLogitsProcessor's step: the stop tokens get -infinity (Sampler::next
// applies it while fewer than options.min_new_tokens tokens are new).
void ban_stop_tokens(std::span<float> logits, std::span<const std::int32_t> stop_tokens);
// Temperature, top-k and top-p (HF warpers, in that order): filtered tokens get -infinity.
void warp_for_sampling(std::span<float> logits, const GenerateOptions& options);
// Picks a token: arg max when options.temperature is 0, otherwise warps and samples.
std::int32_t choose_token(std::span<float> logits, const GenerateOptions& options, std::mt19937_64& rng);

}  // namespace ecr::lm
