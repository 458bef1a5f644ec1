// Choosing tokens on the device (CPU twins in ecr/lm/sampler.hpp): greedy arg max, the
// repetition-penalty and no-repeat-n-gram processors, and temperature / top-k / top-p sampling.
//
// Greedy is exactly the CPU's choice for the same logits (the first arg max). Device sampling is
// reproducible for a seed: draw `step` of row r uses Philox4x32-10 keyed by the seed with
// counter (step, r), and all probability sums are exact integer sums, so the same logits, seed
// and step give the same token on every run and device. It is NOT the CPU sampler's stream
// (std::mt19937_64, double sums): the same seed samples different tokens on the CPU and the
// device, from the same distribution (top-p ties at the cut are kept or dropped as a group on
// the device, split by sort order on the CPU).
//
// Needs a build with ECR_WITH_CUDA=ON (the functions exist only there).
#pragma once

#ifndef ECR_WITH_CUDA
#error "ecr/models/generate_cuda.hpp needs a build of ecr with ECR_WITH_CUDA=ON"
#endif

#include <cstdint>
#include <span>
#include <vector>

#include "ecr/core/tensor.hpp"
#include "ecr/device/cuda.hpp"
#include "ecr/lm/options.hpp"

namespace ecr::cuda {

// logits: a device f32 (rows, vocab) tensor. Both return one token per row (waiting for the stream).
std::vector<std::int32_t> argmax_rows(Stream& stream, const Tensor& logits);
// options.temperature > 0; InputError when every token of a row is banned.
std::vector<std::int32_t> sample_rows(Stream& stream, const Tensor& logits, const lm::GenerateOptions& options,
                                      std::int64_t step);

// The processors, in place on a device f32 row (vocab) or (1, vocab).
void apply_repetition_penalty(Stream& stream, Tensor logits, std::span<const std::int32_t> context, float penalty);
void ban_repeated_ngrams(Stream& stream, Tensor logits, std::span<const std::int32_t> context, std::int64_t n);

// The uniform in [0, 1) behind draw `step` of row `row` under `seed`, computed on the host.
double philox_uniform(std::uint64_t seed, std::uint64_t step, std::uint32_t row);

}  // namespace ecr::cuda
