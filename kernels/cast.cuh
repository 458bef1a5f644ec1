// Storage conversions on the device (round to nearest even), e.g. f32 weights combined by a
// GEMM to f16 / bf16 storage.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ecr::kernels {

template <class From, class To>
[[nodiscard]] cudaError_t cast(const From* in, To* out, std::int64_t n, cudaStream_t stream);

}  // namespace ecr::kernels
