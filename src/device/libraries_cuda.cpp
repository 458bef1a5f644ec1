// cuBLAS and cuSPARSE, opened at their first call instead of linked. Linked, the two make every
// process that loads ecr pay for their relocations at start, GPU or not: an empty program linked
// with cudart, cuBLAS and cuSPARSE takes 238 MB and 4.1 s here, one with cudart alone 3 MB
// (/usr/bin/time -f "%M KB %e s"), and `ecr --version` took the former. The functions ecr calls are defined here under
// their C names; each looks up the library's own on first use. A library that cannot be opened
// makes every call fail with NOT_INITIALIZED, and its error string says why, so the DeviceError
// that check_cuda.hpp raises names it.
#include <dlfcn.h>

#include <cublas_v2.h>
#include <cusparse.h>

#include <string>

namespace {

struct Library {
  void* handle = nullptr;
  std::string error;  // why it could not be opened
};

const Library& open_library(const char* name) {
  // One per library name; a function-local static is opened once, thread-safely.
  auto open = [](const char* soname) {
    Library lib;
    lib.handle = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!lib.handle) lib.error = std::string("cannot open ") + soname + ": " + ::dlerror();
    return lib;
  };
  if (std::string(name) == "cublas") {
    static const Library cublas = open(("libcublas.so." + std::to_string(CUBLAS_VER_MAJOR)).c_str());
    return cublas;
  }
  static const Library cusparse = open(("libcusparse.so." + std::to_string(CUSPARSE_VER_MAJOR)).c_str());
  return cusparse;
}

template <class F>
F* find(const char* library, const char* name) {
  const Library& lib = open_library(library);
  return lib.handle ? reinterpret_cast<F*>(::dlsym(lib.handle, name)) : nullptr;
}

}  // namespace

// The library's own `name`, looked up once: null when it or the library is missing.
#define ECR_REAL(library, name) static const auto real = find<decltype(name)>(library, #name)

extern "C" {

// --- cuBLAS (cublas_v2.h maps cublasCreate to cublasCreate_v2, and so on) ---------------------

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  ECR_REAL("cublas", cublasCreate_v2);
  return real ? real(handle) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  ECR_REAL("cublas", cublasDestroy_v2);
  return real ? real(handle) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  ECR_REAL("cublas", cublasSetStream_v2);
  return real ? real(handle, stream) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t bytes) {
  ECR_REAL("cublas", cublasSetWorkspace_v2);
  return real ? real(handle, workspace, bytes) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  ECR_REAL("cublas", cublasSetMathMode);
  return real ? real(handle, mode) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  // C++ also sees an overload of cublasGemmEx (computeType as cudaDataType): the C one is this.
  using Gemm = cublasStatus_t(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                              const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                              cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
  static const auto real = find<Gemm>("cublas", "cublasGemmEx");
  return real ? real(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc,
                     computeType, algo)
              : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasAxpyEx(cublasHandle_t handle, int n, const void* alpha, cudaDataType alphaType, const void* x,
                            cudaDataType xType, int incx, void* y, cudaDataType yType, int incy,
                            cudaDataType executiontype) {
  ECR_REAL("cublas", cublasAxpyEx);
  return real ? real(handle, n, alpha, alphaType, x, xType, incx, y, yType, incy, executiontype)
              : CUBLAS_STATUS_NOT_INITIALIZED;
}

const char* cublasGetStatusString(cublasStatus_t status) {
  ECR_REAL("cublas", cublasGetStatusString);
  return real ? real(status) : open_library("cublas").error.c_str();
}

// --- cuSPARSE ---------------------------------------------------------------------------------

cusparseStatus_t cusparseCreate(cusparseHandle_t* handle) {
  ECR_REAL("cusparse", cusparseCreate);
  return real ? real(handle) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t cusparseDestroy(cusparseHandle_t handle) {
  ECR_REAL("cusparse", cusparseDestroy);
  return real ? real(handle) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t cusparseSetStream(cusparseHandle_t handle, cudaStream_t stream) {
  ECR_REAL("cusparse", cusparseSetStream);
  return real ? real(handle, stream) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

const char* cusparseGetErrorString(cusparseStatus_t status) {
  ECR_REAL("cusparse", cusparseGetErrorString);
  return real ? real(status) : open_library("cusparse").error.c_str();
}

cusparseStatus_t cusparseCreateCsr(cusparseSpMatDescr_t* descr, int64_t rows, int64_t cols, int64_t nnz,
                                   void* row_offsets, void* col_ind, void* values, cusparseIndexType_t row_offsets_type,
                                   cusparseIndexType_t col_ind_type, cusparseIndexBase_t base, cudaDataType type) {
  ECR_REAL("cusparse", cusparseCreateCsr);
  return real ? real(descr, rows, cols, nnz, row_offsets, col_ind, values, row_offsets_type, col_ind_type, base, type)
              : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t cusparseCreateDnMat(cusparseDnMatDescr_t* descr, int64_t rows, int64_t cols, int64_t ld,
                                     void* values, cudaDataType type, cusparseOrder_t order) {
  ECR_REAL("cusparse", cusparseCreateDnMat);
  return real ? real(descr, rows, cols, ld, values, type, order) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t cusparseDestroyDnMat(cusparseConstDnMatDescr_t descr) {
  ECR_REAL("cusparse", cusparseDestroyDnMat);
  return real ? real(descr) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t cusparseDestroySpMat(cusparseConstSpMatDescr_t descr) {
  ECR_REAL("cusparse", cusparseDestroySpMat);
  return real ? real(descr) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t cusparseSpMM_bufferSize(cusparseHandle_t handle, cusparseOperation_t opA, cusparseOperation_t opB,
                                         const void* alpha, cusparseConstSpMatDescr_t matA,
                                         cusparseConstDnMatDescr_t matB, const void* beta, cusparseDnMatDescr_t matC,
                                         cudaDataType computeType, cusparseSpMMAlg_t alg, size_t* bufferSize) {
  ECR_REAL("cusparse", cusparseSpMM_bufferSize);
  return real ? real(handle, opA, opB, alpha, matA, matB, beta, matC, computeType, alg, bufferSize)
              : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t cusparseSpMM(cusparseHandle_t handle, cusparseOperation_t opA, cusparseOperation_t opB,
                              const void* alpha, cusparseConstSpMatDescr_t matA, cusparseConstDnMatDescr_t matB,
                              const void* beta, cusparseDnMatDescr_t matC, cudaDataType computeType,
                              cusparseSpMMAlg_t alg, void* externalBuffer) {
  ECR_REAL("cusparse", cusparseSpMM);
  return real ? real(handle, opA, opB, alpha, matA, matB, beta, matC, computeType, alg, externalBuffer)
              : CUSPARSE_STATUS_NOT_INITIALIZED;
}

}  // extern "C"
