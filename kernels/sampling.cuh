// Choosing the next token on the device (CPU twins in models/generate.hpp): greedy arg max,
// the repetition penalty and no-repeat n-gram processors, and temperature / top-k / top-p
// sampling driven by Philox4x32-10.
//
// Greedy equals the CPU's std::max_element exactly (the first index of the maximum). Sampling
// is reproducible for a seed (draw `step` of row r is Philox(seed; step, r), and every sum is
// an integer in a fixed order), but it is not the CPU sampler's stream: the CPU draws from
// std::mt19937_64, sums probabilities in double, and splits top-p ties at the boundary in sort
// order where the device keeps or drops a tie group whole.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace ecr::kernels {

struct SamplingParams {
  float temperature = 1.0f;  // > 0
  int top_k = 0;             // 0: all
  float top_p = 1.0f;        // (0, 1]
  std::uint64_t seed = 0;
};
// Passed by value as a kernel argument.
static_assert(std::is_trivially_copyable_v<SamplingParams> && std::is_standard_layout_v<SamplingParams>);

// out[r] = first index of the maximum of row r of logits (rows, vocab); 0 for a row of -inf.
[[nodiscard]] cudaError_t argmax_rows(const float* logits, std::int64_t rows, int vocab, std::int32_t* out,
                                      cudaStream_t stream);

// out[r] = a token drawn from row r after temperature, top-k and top-p (HF order), using draw
// step_host + *step_device (step_device may be null) of row r; -1 when every token is banned.
[[nodiscard]] cudaError_t sample_rows(const float* logits, std::int64_t rows, int vocab, SamplingParams params,
                                      std::int64_t step_host, const std::int32_t* step_device, std::int32_t* out,
                                      cudaStream_t stream);

// The logits processors on one row, over the context tokens context[0 .. length) with length =
// length_host + *length_device (length_device may be null) and at most max_length.
[[nodiscard]] cudaError_t repetition_penalty(float* logits, int vocab, const std::int32_t* context,
                                             std::int64_t length_host, const std::int32_t* length_device,
                                             std::int64_t max_length, float penalty, cudaStream_t stream);
[[nodiscard]] cudaError_t ban_repeated_ngrams(float* logits, int vocab, const std::int32_t* context,
                                              std::int64_t length_host, const std::int32_t* length_device,
                                              std::int64_t max_length, int n, cudaStream_t stream);

}  // namespace ecr::kernels
