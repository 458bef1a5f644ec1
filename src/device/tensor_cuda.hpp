// Host-side helpers shared by the CUDA wrappers (src/**/*_cuda.cpp): the native handles of a
// Stream, the CUDA storage type of a dtype, and argument checks that name the tensor.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "check_cuda.hpp"
#include "ecr/core/tensor.hpp"
#include "ecr/device/cuda.hpp"

namespace ecr::cuda::detail {

inline cudaStream_t native(const Stream& stream) { return static_cast<cudaStream_t>(stream.native()); }
inline cublasHandle_t blas(const Stream& stream) { return static_cast<cublasHandle_t>(stream.cublas()); }

// Calls f(T{}) with T the CUDA storage type of a floating-point dtype.
template <class F>
decltype(auto) dispatch(DType dtype, const char* what, F&& f) {
  switch (dtype) {
    case DType::f32: return f(float{});
    case DType::f16: return f(__half{});
    case DType::bf16: return f(__nv_bfloat16{});
    default: break;
  }
  fail<ShapeError>("{}: dtype {} is not a floating-point storage type (f32, f16 or bf16)", what, dtype_name(dtype));
}

template <class T> T* ptr(const Tensor& t) { return static_cast<T*>(const_cast<void*>(t.raw())); }

// DeviceError unless t is defined and in device memory.
inline void expect_device(const Tensor& t, const char* what) {
  if (!t.defined()) fail<ShapeError>("{}: a tensor is missing", what);
  if (t.device() != Device::cuda)
    fail<DeviceError>("{}: tensor '{}' is in {} memory, expected a CUDA tensor", what, t.name(), device_name(t.device()));
}

// A device matrix (rank >= 1, read as rows x last dim) of one of the floating-point dtypes.
inline void expect_matrix(const Tensor& t, const char* what) {
  expect_device(t, what);
  if (t.rank() < 1 || (t.dtype() != DType::f32 && t.dtype() != DType::f16 && t.dtype() != DType::bf16))
    fail<ShapeError>("{}: tensor '{}' must be an f32, f16 or bf16 matrix, found {} {}", what, t.name(),
                     dtype_name(t.dtype()), shape_string(t.shape()));
}

inline std::int64_t cols(const Tensor& t) { return t.rank() == 0 ? 1 : t.dim(-1); }
inline std::int64_t rows(const Tensor& t) { return cols(t) == 0 ? 0 : t.numel() / cols(t); }

inline int narrow(std::int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) fail<ShapeError>("{}: size {} does not fit the kernel's 32-bit index", what, v);
  return static_cast<int>(v);
}

}  // namespace ecr::cuda::detail
