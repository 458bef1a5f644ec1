#include "cast.cuh"

#include <algorithm>

#include "common.cuh"

namespace ecr::kernels {

namespace {

template <class From, class To>
__global__ void cast_kernel(const From* in, To* out, std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = from_float<To>(to_float(in[i]));
}

}  // namespace

template <class From, class To>
cudaError_t cast(const From* in, To* out, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const unsigned blocks = std::min(ceil_div(n, kElementwiseThreads), kMaxGridBlocks);
  cast_kernel<From, To><<<blocks, kElementwiseThreads, 0, stream>>>(in, out, n);
  return cudaGetLastError();
}

#define ECR_INSTANTIATE(From, To) template cudaError_t cast<From, To>(const From*, To*, std::int64_t, cudaStream_t);
ECR_INSTANTIATE(float, __half)
ECR_INSTANTIATE(float, __nv_bfloat16)
ECR_INSTANTIATE(__half, float)
ECR_INSTANTIATE(__nv_bfloat16, float)
#undef ECR_INSTANTIATE

}  // namespace ecr::kernels
