// Row softmax (CPU twin: nn::softmax_rows after a scale): the attention-style softmax of
// KGPrompt's token-entity cross-attention (scale 1 / H) and of any score matrix.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ecr::kernels {

// Row i of x (rows, cols) becomes softmax(scale * x[i, :n]) over its first n = valid[i] entries
// (all cols when valid is null; n is clamped to cols) and 0 after them; a row with n <= 0 becomes
// all zeros. Max-subtracted, fp32 throughout, in place.
template <class T>
[[nodiscard]] cudaError_t softmax_rows(T* x, std::int64_t rows, int cols, float scale, const std::int32_t* valid,
                                       cudaStream_t stream);

}  // namespace ecr::kernels
