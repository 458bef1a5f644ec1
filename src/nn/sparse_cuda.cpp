#include "sparse_cuda.hpp"

#include <cusparse.h>

#include <memory>
#include <vector>

#include "../device/tensor_cuda.hpp"

namespace ecr::cuda {

namespace {

void check_sparse(cusparseStatus_t status, const char* call) {
  if (status != CUSPARSE_STATUS_SUCCESS)
    fail<DeviceError>("{} failed: cuSPARSE status {} ({})", call, static_cast<int>(status),
                      cusparseGetErrorString(status));
}
#define ECR_SPARSE_CHECK(call) check_sparse((call), #call)

// The handle and descriptors of one product, destroyed on every way out.
struct SpmmHandles {
  cusparseHandle_t handle = nullptr;
  cusparseSpMatDescr_t a = nullptr;
  cusparseDnMatDescr_t b = nullptr, c = nullptr;
  ~SpmmHandles() {
    if (c) cusparseDestroyDnMat(c);
    if (b) cusparseDestroyDnMat(b);
    if (a) cusparseDestroySpMat(a);
    if (handle) cusparseDestroy(handle);
  }
};

// An i64 copy of a CSR index tensor (i32 or i64): cuSPARSE wants one index type for both arrays.
Tensor as_i64(const Tensor& t) {
  if (t.dtype() == DType::i64) return t;
  Tensor out = Tensor::empty(DType::i64, t.shape(), t.name());
  const auto* in = t.data<std::int32_t>();
  auto* o = out.data<std::int64_t>();
  for (std::int64_t i = 0; i < t.numel(); ++i) o[i] = in[i];
  return out;
}

}  // namespace

Tensor cooccurrence_product(Stream& stream, const CooccurrenceMatrix& c, const Tensor& entities) {
  detail::expect_device(entities, "cooccurrence_product");
  const std::int64_t n = c.size();
  if (entities.dtype() != DType::f32 || entities.rank() != 2 || entities.dim(0) != n)
    fail<ShapeError>("cooccurrence_product: entity table '{}' {} {} must be f32 with the matrix's {} rows",
                     entities.name(), dtype_name(entities.dtype()), shape_string(entities.shape()), n);
  const std::int64_t h = entities.dim(1);
  Tensor global = empty_device(DType::f32, {n, h}, "global entity table");
  if (n == 0 || h == 0) return global;
  if (c.nnz() == 0) {
    ECR_CUDA_CHECK(cudaMemsetAsync(global.raw(), 0, global.nbytes(), detail::native(stream)));
    return global;
  }
  const Tensor indptr = to_device(as_i64(c.indptr()));
  const Tensor indices = to_device(as_i64(c.indices()));
  const Tensor values = to_device(c.values());

  SpmmHandles s;
  ECR_SPARSE_CHECK(cusparseCreate(&s.handle));
  ECR_SPARSE_CHECK(cusparseSetStream(s.handle, detail::native(stream)));
  ECR_SPARSE_CHECK(cusparseCreateCsr(&s.a, n, n, c.nnz(), const_cast<void*>(indptr.raw()),
                                     const_cast<void*>(indices.raw()), const_cast<void*>(values.raw()),
                                     CUSPARSE_INDEX_64I, CUSPARSE_INDEX_64I, CUSPARSE_INDEX_BASE_ZERO, CUDA_R_32F));
  // E and G are row-major (N, H): leading dimension H.
  ECR_SPARSE_CHECK(cusparseCreateDnMat(&s.b, n, h, h, const_cast<void*>(entities.raw()), CUDA_R_32F,
                                       CUSPARSE_ORDER_ROW));
  ECR_SPARSE_CHECK(cusparseCreateDnMat(&s.c, n, h, h, global.raw(), CUDA_R_32F, CUSPARSE_ORDER_ROW));
  const float one = 1.0f, zero = 0.0f;
  std::size_t bytes = 0;
  ECR_SPARSE_CHECK(cusparseSpMM_bufferSize(s.handle, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                           CUSPARSE_OPERATION_NON_TRANSPOSE, &one, s.a, s.b, &zero, s.c, CUDA_R_32F,
                                           CUSPARSE_SPMM_ALG_DEFAULT, &bytes));
  const Tensor workspace = empty_device(DType::u8, {static_cast<std::int64_t>(bytes ? bytes : 1)}, "spmm workspace");
  ECR_SPARSE_CHECK(cusparseSpMM(s.handle, CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE, &one,
                                s.a, s.b, &zero, s.c, CUDA_R_32F, CUSPARSE_SPMM_ALG_DEFAULT,
                                const_cast<void*>(workspace.raw())));
  // The index and value copies and the workspace are freed on return: the product must be done.
  stream.synchronize();
  return global;
}

}  // namespace ecr::cuda
