// cuBLAS GEMMs and dense layers on the device (CPU twin: nn::linear).
//
// Numerics: GemmMath::exact runs fp32 GEMMs as fp32 (CUBLAS_COMPUTE_32F_PEDANTIC: no TF32, no
// reduced-precision tensor-core paths), for parity with the CPU engine. GemmMath::tensor_cores
// lets cuBLAS use tensor cores: TF32 for f32 operands, and f16 / bf16 operands with fp32
// accumulation. f16 / bf16 storage always accumulates in fp32.
//
// Needs a build with ECR_WITH_CUDA=ON (the functions exist only there).
#pragma once

#ifndef ECR_WITH_CUDA
#error "ecr/nn/linear_cuda.hpp needs a build of ecr with ECR_WITH_CUDA=ON"
#endif

#include "ecr/core/tensor.hpp"
#include "ecr/device/cuda.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/nn/activation.hpp"

namespace ecr::cuda {

enum class GemmMath { exact, tensor_cores };

// c = alpha * op(a) op(b) + beta * c for row-major device matrices (rank >= 1, read as rows x
// last dim); op transposes when asked. a and b share a dtype (f32, f16, bf16); c has it too, or
// is f32. ShapeError when the shapes do not chain.
void gemm(Stream& stream, const Tensor& a, bool transpose_a, const Tensor& b, bool transpose_b, Tensor c,
          float alpha = 1.0f, float beta = 0.0f, GemmMath math = GemmMath::exact);

// A Linear on the device: weight (out, in) in the storage dtype, bias (out) f32 or undefined.
struct Linear {
  Tensor weight;
  Tensor bias;
  std::int64_t in() const { return weight.dim(1); }
  std::int64_t out() const { return weight.dim(0); }
  // Uploads a CPU layer, its weight stored as `storage` (f32, f16 or bf16), its bias as f32.
  static Linear upload(const nn::Linear& layer, Stream& stream, DType storage = DType::f32);
};

// y = act(x W^T + b); with `accumulate`, y += x W^T + b (no activation then). x (rows, in) and y
// (rows, out) are device tensors in the layer's storage dtype; y is written in place.
void linear(Stream& stream, const Tensor& x, const Linear& layer, Tensor y,
            nn::Activation activation = nn::Activation::none,
            bool accumulate = false, GemmMath math = GemmMath::exact);

}  // namespace ecr::cuda
