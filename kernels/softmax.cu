// One block per row, three passes (max, sum of exponentials, normalised output) like the CPU
// twin; the exponentials are recomputed in the last pass instead of stored, so f16/bf16 rows
// are rounded once, at the end.
#include "softmax.cuh"

#include "common.cuh"

namespace ecr::kernels {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void softmax_kernel(T* x, int cols, float scale, const std::int32_t* valid) {
  __shared__ float scratch[32];
  T* row = x + static_cast<std::int64_t>(blockIdx.x) * cols;
  const int n = valid ? min(valid[blockIdx.x], cols) : cols;
  if (n <= 0) {
    for (int c = threadIdx.x; c < cols; c += blockDim.x) row[c] = from_float<T>(0.0f);
    return;
  }
  float max = -INFINITY;
  for (int c = threadIdx.x; c < n; c += blockDim.x) max = fmaxf(max, scale * to_float(row[c]));
  max = block_max(max, scratch);
  float sum = 0.0f;
  for (int c = threadIdx.x; c < n; c += blockDim.x) sum += expf(scale * to_float(row[c]) - max);
  sum = block_sum(sum, scratch);
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    row[c] = from_float<T>(c < n ? expf(scale * to_float(row[c]) - max) / sum : 0.0f);
}

}  // namespace

template <class T>
cudaError_t softmax_rows(T* x, std::int64_t rows, int cols, float scale, const std::int32_t* valid,
                         cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  softmax_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, cols, scale, valid);
  return cudaGetLastError();
}

template cudaError_t softmax_rows<float>(float*, std::int64_t, int, float, const std::int32_t*, cudaStream_t);
template cudaError_t softmax_rows<__half>(__half*, std::int64_t, int, float, const std::int32_t*, cudaStream_t);
template cudaError_t softmax_rows<__nv_bfloat16>(__nv_bfloat16*, std::int64_t, int, float, const std::int32_t*,
                                                 cudaStream_t);

}  // namespace ecr::kernels
