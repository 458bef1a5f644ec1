// Error checks after every CUDA and cuBLAS call and every kernel launch: a failure
// becomes a DeviceError naming the call, the file and the line, never a silent wrong result.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "ecr/core/error.hpp"

namespace ecr::cuda::detail {

inline void check(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess)
    fail<DeviceError>("{} failed at {}:{}: {} ({})", call, file, line, cudaGetErrorString(status),
                      cudaGetErrorName(status));
}

inline void check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail<DeviceError>("{} failed at {}:{}: cuBLAS status {} ({})", call, file, line, static_cast<int>(status),
                      cublasGetStatusString(status));
}

}  // namespace ecr::cuda::detail

#define ECR_CUDA_CHECK(call) ::ecr::cuda::detail::check((call), #call, __FILE__, __LINE__)
// After a kernel launch: launch errors now, and (in debug builds) execution errors.
#define ECR_CUDA_CHECK_LAUNCH(name) ::ecr::cuda::detail::check(cudaGetLastError(), name, __FILE__, __LINE__)
