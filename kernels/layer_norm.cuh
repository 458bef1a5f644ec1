// LayerNorm over the last dimension, optionally after a residual add (CPU twin: nn::layer_norm).
// x, y are (rows, cols) in T (float, __half or __nv_bfloat16); gamma, beta and the residual's
// bias are fp32. Launchers take device pointers and a stream, launch nothing for rows == 0 and
// return the launch status (cudaGetLastError) for the host wrapper to check.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ecr::kernels {

// y = (x - mean) / sqrt(var + eps) * gamma + beta, biased variance; y may alias x.
template <class T>
[[nodiscard]] cudaError_t layer_norm(const T* x, const float* gamma, const float* beta, T* y, std::int64_t rows,
                                     int cols, float eps, cudaStream_t stream);

// x += delta (+ delta_bias), then y = layer_norm(x): a transformer block's residual connection
// and the next norm in one pass. delta_bias may be null; y must not alias x or delta.
template <class T>
[[nodiscard]] cudaError_t residual_layer_norm(T* x, const T* delta, const float* delta_bias, const float* gamma,
                                              const float* beta, T* y, std::int64_t rows, int cols, float eps,
                                              cudaStream_t stream);

}  // namespace ecr::kernels
