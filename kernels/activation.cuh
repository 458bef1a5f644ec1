// Bias + activation epilogue of a GEMM (CPU twin: the bias add of nn::linear, then
// nn::activate; ReLU for KGPrompt's projection MLPs). y is (rows, cols) in T, bias fp32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ecr/nn/activation.hpp"

namespace ecr::kernels {

using nn::Activation;

// y = act(y + bias), in place; bias may be null.
template <class T>
[[nodiscard]] cudaError_t bias_activation(T* y, const float* bias, std::int64_t rows, int cols, Activation activation,
                                          cudaStream_t stream);

}  // namespace ecr::kernels
