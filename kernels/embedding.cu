// One block per output row; the rows are contiguous, so each is one coalesced copy.
#include "embedding.cuh"

#include "common.cuh"

namespace ecr::kernels {

namespace {

template <class T>
__global__ void embed_kernel(const std::int32_t* ids, const T* table, std::int64_t table_rows, const T* positions,
                             std::int64_t position_rows, std::int64_t first_host, const std::int32_t* first_device,
                             T* out, int cols) {
  const std::int64_t i = blockIdx.x;
  T* row = out + i * cols;
  const std::int64_t id = ids[i];
  const std::int64_t pos = first_host + (first_device ? *first_device : 0) + i;
  const bool ok = id >= 0 && id < table_rows && (!positions || (pos >= 0 && pos < position_rows));
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    float v = 0.0f;
    if (ok) {
      v = to_float(table[id * cols + c]);
      if (positions) v += to_float(positions[pos * cols + c]);
    }
    row[c] = from_float<T>(v);
  }
}

}  // namespace

template <class T>
cudaError_t embed(const std::int32_t* ids, std::int64_t n, const T* table, std::int64_t table_rows, const T* positions,
                  std::int64_t position_rows, std::int64_t first_host, const std::int32_t* first_device, T* out,
                  int cols, cudaStream_t stream) {
  if (n == 0 || cols == 0) return cudaSuccess;
  embed_kernel<T><<<static_cast<unsigned>(n), 256, 0, stream>>>(ids, table, table_rows, positions, position_rows,
                                                                first_host, first_device, out, cols);
  return cudaGetLastError();
}

#define ECR_INSTANTIATE(T)                                                                                 \
  template cudaError_t embed<T>(const std::int32_t*, std::int64_t, const T*, std::int64_t, const T*,      \
                                std::int64_t, std::int64_t, const std::int32_t*, T*, int, cudaStream_t);
ECR_INSTANTIATE(float)
ECR_INSTANTIATE(__half)
ECR_INSTANTIATE(__nv_bfloat16)
#undef ECR_INSTANTIATE

}  // namespace ecr::kernels
