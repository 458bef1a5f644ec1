// Decoding a causal LM (ecr/lm/causal_lm.hpp): one loop for one sequence, one for a batch, the
// shared prompt-fitting and stop rules. Tokens are chosen by lm::Sampler (ecr/lm/sampler.hpp).
//
// Context: when prompt + max_new_tokens exceeds the model's context length, the prompt keeps its
// newest context_length - max_new_tokens tokens (max_new_tokens must be below it).
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
#include <span>
#include <vector>

#include "ecr/core/tensor.hpp"
#include "ecr/lm/causal_lm.hpp"
#include "ecr/lm/options.hpp"
#include "ecr/lm/sampler.hpp"

namespace ecr::lm {

enum class StopReason { max_new_tokens, stop_token, callback };

struct Generation {
  std::vector<std::int32_t> tokens;  // new tokens only, including a final stop token
  StopReason reason = StopReason::max_new_tokens;
};

// Continues `prompt` (non-empty) after an optional prefix (see CausalLM).
Generation generate(const CausalLM& model, std::span<const std::int32_t> prompt, const GenerateOptions& options,
                    const Tensor& prefix = {});

// One sequence of a batch. `prompt` is read during generate_batch() only; the caller owns it.
struct GenerateRequest {
  std::span<const std::int32_t> prompt;  // non-empty
  Tensor prefix;                         // optional prefix (undefined: none)
  GenerateOptions options;
};

// One Generation per request, in order; request i's equals
// generate(model, requests[i].prompt, requests[i].options, requests[i].prefix). Every request is
// checked (InputError; the model's error for a prefix) before any decoding starts.
std::vector<Generation> generate_batch(const CausalLM& model, std::span<const GenerateRequest> requests);
// The same options for every prompt; `prefixes` is empty (none) or one per prompt.
std::vector<Generation> generate_batch(const CausalLM& model, std::span<const std::vector<std::int32_t>> prompts,
                                       const GenerateOptions& options, std::span<const Tensor> prefixes = {});

// The prompt-fitting rule of every decoder (CPU, batched, device): checks `options` and that the
// prompt is non-empty, and returns the prompt's newest tokens that leave room for max_new_tokens
// in `context_length` positions after the `held` tokens a session already holds.
std::span<const std::int32_t> fit_prompt(std::span<const std::int32_t> prompt, const GenerateOptions& options,
                                         std::int64_t context_length, std::int64_t held = 0);

// The stop rule of every decoder, applied to the token it has just chosen: appends it to
// `generation`, streams it to options.on_token, and returns true when decoding ends after it,
// with generation.reason saying why. The callback's verdict comes first, then the stop tokens,
// then max_new_tokens.
bool accept_token(Generation& generation, std::int32_t token, const GenerateOptions& options);

}  // namespace ecr::lm
