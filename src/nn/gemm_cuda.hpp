// The raw cuBLAS GEMM behind cuda::gemm, for wrappers that already hold device pointers.
#pragma once

#include <cstdint>

#include "../device/tensor_cuda.hpp"
#include "ecr/nn/linear_cuda.hpp"

namespace ecr::cuda::detail {

// Row-major c (m x n) = alpha * op(a) (m x k) * op(b) (k x n) + beta * c, with leading dimensions
// (elements between rows) lda, ldb, ldc as stored. a and b have dtype `ab`; c has `cd`.
void gemm(cublasHandle_t handle, bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
          float alpha, const void* a, std::int64_t lda, const void* b, std::int64_t ldb, DType ab, float beta, void* c,
          std::int64_t ldc, DType cd, GemmMath math);

}  // namespace ecr::cuda::detail
