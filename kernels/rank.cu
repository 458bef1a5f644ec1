// A stable segmented sort from CUB (one segment per row) rather than a hand-written top-k: it is
// comparison based, so -0.0 and +0.0 compare equal as they do on the CPU, and stability gives
// the lower id first among equal scores. A full sort of each row costs more than a selection,
// but one row is one catalogue of entities (tens of thousands), a small fraction of a forward.
#include "rank.cuh"

#include <algorithm>
#include <cstdint>

#include <cub/device/device_segmented_sort.cuh>

#include "common.cuh"

namespace ecr::kernels {

namespace {

// ids[r * cols + c] = c; offsets[r] = r * cols for r <= rows.
__global__ void iota_rows_kernel(std::int32_t* ids, std::int32_t* offsets, std::int64_t rows, int cols) {
  const std::int64_t total = rows * cols;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride)
    ids[i] = static_cast<std::int32_t>(i % cols);
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i <= rows; i += stride)
    offsets[i] = static_cast<std::int32_t>(i * cols);
}

}  // namespace

cudaError_t sort_rows_workspace(std::int64_t rows, int cols, std::size_t* bytes) {
  *bytes = 0;
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  const std::int64_t total = rows * cols;
  if (total > INT32_MAX) return cudaErrorInvalidValue;
  return cub::DeviceSegmentedSort::StableSortPairsDescending(
      nullptr, *bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
      static_cast<const std::int32_t*>(nullptr), static_cast<std::int32_t*>(nullptr), static_cast<int>(total),
      static_cast<int>(rows), static_cast<const std::int32_t*>(nullptr), static_cast<const std::int32_t*>(nullptr));
}

cudaError_t sort_rows(const float* scores, std::int64_t rows, int cols, float* sorted_scores, std::int32_t* ids,
                      std::int32_t* sorted_ids, std::int32_t* offsets, void* workspace, std::size_t workspace_bytes,
                      cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  const std::int64_t total = rows * cols;
  if (total > INT32_MAX) return cudaErrorInvalidValue;
  const unsigned blocks = std::min(ceil_div(total + 1, kElementwiseThreads), kMaxGridBlocks);
  iota_rows_kernel<<<blocks, kElementwiseThreads, 0, stream>>>(ids, offsets, rows, cols);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  return cub::DeviceSegmentedSort::StableSortPairsDescending(workspace, workspace_bytes, scores, sorted_scores, ids,
                                                             sorted_ids, static_cast<int>(total),
                                                             static_cast<int>(rows), offsets, offsets + 1, stream);
}

}  // namespace ecr::kernels
