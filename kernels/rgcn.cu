// One warp per (target node, channel): lanes own feature columns, so each neighbour row is read
// with coalesced loads. The loop order is the CPU twin's (relations in order, each relation's
// neighbours in CSR order, each added with weight coeff / count), so the fp32 sums agree to
// rounding. Nodes of a KG have few neighbours per relation; a warp per node keeps the
// load balanced without a segmented scan.
#include "rgcn.cuh"

#include <algorithm>

#include "common.cuh"

namespace ecr::kernels {

namespace {

constexpr int kNodesPerBlock = 8;  // warps per block
constexpr int kColumnsPerLane = 4;  // columns a lane accumulates at once: 128 per warp pass

template <class T>
__global__ void __launch_bounds__(32 * kNodesPerBlock)
    aggregate_kernel(const T* x, std::int64_t n, int in, const std::int64_t* indptr, const std::int32_t* sources,
                     int relations, const float* coeff, int channels, T* z) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kNodesPerBlock + threadIdx.y;
  if (i >= n) return;
  const int slot = blockIdx.y;  // 0: x itself, k + 1: channel k
  const int lane = threadIdx.x;
  const std::int64_t width = static_cast<std::int64_t>(channels + 1) * in;
  T* out = z + i * width + static_cast<std::int64_t>(slot) * in;
  if (slot == 0) {
    for (int c = lane; c < in; c += 32) out[c] = x[i * in + c];
    return;
  }
  const float* weights = coeff + static_cast<std::int64_t>(slot - 1) * relations;
  for (int c0 = 0; c0 < in; c0 += 32 * kColumnsPerLane) {
    float acc[kColumnsPerLane] = {};
    for (int r = 0; r < relations; ++r) {
      const float w = weights[r];
      if (w == 0.0f) continue;
      const std::int64_t begin = indptr[r * n + i], end = indptr[r * n + i + 1];
      if (begin == end) continue;
      const float scale = w / static_cast<float>(end - begin);
      for (std::int64_t e = begin; e < end; ++e) {
        const T* row = x + static_cast<std::int64_t>(sources[e]) * in;
#pragma unroll
        for (int t = 0; t < kColumnsPerLane; ++t) {
          const int c = c0 + lane + 32 * t;
          if (c < in) acc[t] += scale * to_float(row[c]);
        }
      }
    }
#pragma unroll
    for (int t = 0; t < kColumnsPerLane; ++t) {
      const int c = c0 + lane + 32 * t;
      if (c < in) out[c] = from_float<T>(acc[t]);
    }
  }
}

template <class T>
__global__ void broadcast_kernel(const float* row, T* y, std::int64_t total, int cols) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride)
    y[e] = from_float<T>(row[e % cols]);
}

}  // namespace

template <class T>
cudaError_t rgcn_aggregate(const T* x, std::int64_t n, int in, const std::int64_t* indptr, const std::int32_t* sources,
                           int relations, const float* coeff, int channels, T* z, cudaStream_t stream) {
  if (n == 0 || in == 0) return cudaSuccess;
  const dim3 grid(ceil_div(n, kNodesPerBlock), channels + 1);
  aggregate_kernel<T><<<grid, dim3(32, kNodesPerBlock), 0, stream>>>(x, n, in, indptr, sources, relations, coeff,
                                                                      channels, z);
  return cudaGetLastError();
}

template <class T>
cudaError_t broadcast_row(const float* row, T* y, std::int64_t rows, int cols, cudaStream_t stream) {
  const std::int64_t total = rows * cols;
  if (total == 0) return cudaSuccess;
  const unsigned blocks = std::min(ceil_div(total, kElementwiseThreads), kMaxGridBlocks);
  broadcast_kernel<T><<<blocks, kElementwiseThreads, 0, stream>>>(row, y, total, cols);
  return cudaGetLastError();
}

#define ECR_INSTANTIATE(T)                                                                                        \
  template cudaError_t rgcn_aggregate<T>(const T*, std::int64_t, int, const std::int64_t*, const std::int32_t*,   \
                                         int, const float*, int, T*, cudaStream_t);                               \
  template cudaError_t broadcast_row<T>(const float*, T*, std::int64_t, int, cudaStream_t);
ECR_INSTANTIATE(float)
ECR_INSTANTIATE(__half)
ECR_INSTANTIATE(__nv_bfloat16)
#undef ECR_INSTANTIATE

}  // namespace ecr::kernels
