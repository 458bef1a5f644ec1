// Decoding with a GPT-2 model: greedy or sampled, with HuggingFace's logits processors.
//
// Each step, in HuggingFace's order: repetition penalty, no-repeat n-grams, then (sampling
// only) temperature, top-k, top-p; greedy takes the first arg max. Penalties and n-grams look at
// the prompt and the generated tokens together, as HF's input_ids do.
//
// Sampling is reproducible: the generator is std::mt19937_64 seeded with `seed`, and a uniform
// draw is its top 53 bits / 2^53 (not std::uniform_real_distribution, whose output differs
// between standard libraries); the token is the first whose cumulative probability exceeds it.
//
// Context: when prompt + max_new_tokens exceeds n_positions, the prompt keeps its newest
// n_positions - max_new_tokens tokens (max_new_tokens must be below n_positions).
//
// Batches: generate_batch() decodes several sequences together, each with its own prompt, prefix,
// options (seed, stop tokens, processors, budget), keys/values and stop; every step feeds the
// still-running sequences' new tokens through the model at once, so each weight matrix is read
// once per step for all of them, and a sequence leaves the batch when it stops. Each sequence's
// tokens and stop reason are those generate() gives it alone: the processors and the sampler's
// generator are its own, and only the float rounding of the differently shaped GEMMs differs,
// which changes a token only where two candidates tie to within that rounding.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <vector>

#include "ecr/core/tensor.hpp"
#include "ecr/models/gpt2.hpp"

namespace ecr {

struct GenerateOptions {
  std::int64_t max_new_tokens = 50;
  float temperature = 0.0f;  // 0: greedy; > 0: sample at this temperature
  std::int64_t top_k = 0;    // sampling: keep the k most likely tokens (0: all)
  float top_p = 1.0f;        // sampling: keep the smallest set with this much probability
  float repetition_penalty = 1.0f;     // > 1 discourages tokens already present
  std::int64_t no_repeat_ngram_size = 0;  // > 0: never repeat an n-gram of this size
  std::vector<std::int32_t> stop_tokens;  // generation ends after producing one of these
  std::uint64_t seed = 0;
  // Called with each new token as soon as it is chosen; return false to stop after it.
  std::function<bool(std::int32_t)> on_token;
};

enum class StopReason { max_new_tokens, stop_token, callback };

struct Generation {
  std::vector<std::int32_t> tokens;  // new tokens only, including a final stop token
  StopReason reason = StopReason::max_new_tokens;
};

// Continues `prompt` (non-empty) after an optional prefix prompt (see Gpt2Model::start).
Generation generate(const Gpt2Model& model, std::span<const std::int32_t> prompt, const GenerateOptions& options,
                    const Tensor& prefix = {});

// One sequence of a batch. `prompt` is read during generate_batch() only; the caller owns it.
struct GenerateRequest {
  std::span<const std::int32_t> prompt;  // non-empty
  Tensor prefix;                         // optional prefix prompt (undefined: none)
  GenerateOptions options;
};

// One Generation per request, in order; request i's equals
// generate(model, requests[i].prompt, requests[i].options, requests[i].prefix). Every request is
// checked (InputError, ShapeError for a prefix) before any decoding starts.
std::vector<Generation> generate_batch(const Gpt2Model& model, std::span<const GenerateRequest> requests);
// The same options for every prompt; `prefixes` is empty (none) or one per prompt.
std::vector<Generation> generate_batch(const Gpt2Model& model, std::span<const std::vector<std::int32_t>> prompts,
                                       const GenerateOptions& options, std::span<const Tensor> prefixes = {});

// The stop rule of every decoder (CPU, batched, device), applied to the token it has just
// chosen: appends it to `generation`, streams it to options.on_token, and returns true when
// decoding ends after it, with generation.reason saying why. The callback's verdict comes first,
// then the stop tokens, then max_new_tokens.
bool accept_token(Generation& generation, std::int32_t token, const GenerateOptions& options);

// InputError naming the option when `options` asks for something impossible (a negative count,
// top_p outside (0, 1], a non-positive penalty). generate() and the device decoder call it.
void check_generate_options(const GenerateOptions& options);

// The logits processors, exposed for tests and other decoders. `context` is prompt + generated.
// HF RepetitionPenaltyLogitsProcessor: a seen token's logit is divided by `penalty` when
// positive, multiplied when negative.
void apply_repetition_penalty(std::span<float> logits, std::span<const std::int32_t> context, float penalty);
// HF NoRepeatNGramLogitsProcessor: tokens that would complete an n-gram already in `context`
// get -infinity.
void ban_repeated_ngrams(std::span<float> logits, std::span<const std::int32_t> context, std::int64_t n);
// Temperature, top-k and top-p (HF warpers, in that order): filtered tokens get -infinity.
void warp_for_sampling(std::span<float> logits, const GenerateOptions& options);
// Picks a token: arg max when options.temperature is 0, otherwise warps and samples.
std::int32_t choose_token(std::span<float> logits, const GenerateOptions& options, std::mt19937_64& rng);

}  // namespace ecr
