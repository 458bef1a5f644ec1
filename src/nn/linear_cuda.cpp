// cuBLAS is column-major; a row-major matrix is its transpose in column-major. So the row-major
// C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T, with the operands
// swapped and the same leading dimensions.
#include "ecr/nn/linear_cuda.hpp"

#include "ecr/device/transfer_cuda.hpp"
#include "gemm_cuda.hpp"
#include "ops_cuda.hpp"

namespace ecr::cuda {

namespace detail {

namespace {

cudaDataType_t data_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return CUDA_R_32F;
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    default: break;
  }
  fail<ShapeError>("gemm: dtype {} is not f32, f16 or bf16", dtype_name(dtype));
}

}  // namespace

void gemm(cublasHandle_t handle, bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
          float alpha, const void* a, std::int64_t lda, const void* b, std::int64_t ldb, DType ab, float beta, void* c,
          std::int64_t ldc, DType cd, GemmMath math) {
  if (m == 0 || n == 0) return;
  const bool exact = math == GemmMath::exact;
  const cublasComputeType_t compute = exact ? CUBLAS_COMPUTE_32F_PEDANTIC
                                      : ab == DType::f32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                         : CUBLAS_COMPUTE_32F;
  // The stream's handle defaults to pedantic math; tensor-core GEMMs lift it for their call only.
  if (!exact) ECR_CUDA_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
  const cublasStatus_t status =
      cublasGemmEx(handle, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                   narrow(n, "gemm"), narrow(m, "gemm"), narrow(k, "gemm"), &alpha, b, data_type(ab),
                   narrow(ldb, "gemm"), a, data_type(ab), narrow(lda, "gemm"), &beta, c, data_type(cd),
                   narrow(ldc, "gemm"), compute, CUBLAS_GEMM_DEFAULT);
  if (!exact) ECR_CUDA_CHECK(cublasSetMathMode(handle, CUBLAS_PEDANTIC_MATH));
  ECR_CUDA_CHECK(status);
}

}  // namespace detail

void gemm(Stream& stream, const Tensor& a, bool transpose_a, const Tensor& b, bool transpose_b, Tensor c, float alpha,
          float beta, GemmMath math) {
  detail::expect_matrix(a, "gemm");
  detail::expect_matrix(b, "gemm");
  detail::expect_matrix(c, "gemm");
  const std::int64_t ar = detail::rows(a), ac = detail::cols(a), br = detail::rows(b), bc = detail::cols(b);
  const std::int64_t m = transpose_a ? ac : ar, k = transpose_a ? ar : ac;
  const std::int64_t kb = transpose_b ? bc : br, n = transpose_b ? br : bc;
  if (a.dtype() != b.dtype() || (c.dtype() != a.dtype() && c.dtype() != DType::f32))
    fail<ShapeError>("gemm: operands '{}' ({}) and '{}' ({}) must share a dtype, and '{}' ({}) have it or be f32",
                     a.name(), dtype_name(a.dtype()), b.name(), dtype_name(b.dtype()), c.name(),
                     dtype_name(c.dtype()));
  if (k != kb || detail::rows(c) != m || detail::cols(c) != n)
    fail<ShapeError>("gemm: {}{} x {}{} does not give '{}' {}", shape_string(a.shape()), transpose_a ? "^T" : "",
                     shape_string(b.shape()), transpose_b ? "^T" : "", c.name(), shape_string(c.shape()));
  detail::gemm(detail::blas(stream), transpose_a, transpose_b, m, n, k, alpha, a.raw(), ac, b.raw(), bc, a.dtype(),
               beta, c.raw(), n, c.dtype(), math);
}

Linear Linear::upload(const nn::Linear& layer, Stream& stream, DType storage) {
  Linear out;
  out.weight = cuda::upload(host_cast(layer.weight, storage), stream);
  if (layer.bias.defined()) out.bias = cuda::upload(layer.bias.to_f32(), stream);
  return out;
}

void linear(Stream& stream, const Tensor& x, const Linear& layer, Tensor y, nn::Activation activation, bool accumulate,
            GemmMath math) {
  if (accumulate && activation != nn::Activation::none)
    fail<ShapeError>("linear: an accumulating layer takes no activation (weight '{}')", layer.weight.name());
  gemm(stream, x, false, layer.weight, true, y, 1.0f, accumulate ? 1.0f : 0.0f, math);
  bias_activation(stream, y, layer.bias, activation);
}

}  // namespace ecr::cuda
