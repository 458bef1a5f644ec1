// One block per joined row: a copy of the entity row and a `slots`-term weighted sum of emotion
// rows, accumulated in the CPU twin's order (k = 0, 1, ...) starting from zero.
#include "emotion_fusion.cuh"

#include "common.cuh"

namespace ecr::kernels {

namespace {

template <class T>
__global__ void join_kernel(const T* local, const T* global, std::int64_t global_rows, const std::int32_t* entities,
                            std::int64_t count, int hidden, const T* table, std::int64_t emotion_rows,
                            int emotion_dim, const std::int32_t* ids, const float* probs, int slots, T* joined) {
  const std::int64_t row = blockIdx.x;
  const std::int64_t l = row < count ? row : row - count;
  const int width = hidden + emotion_dim;
  T* out = joined + row * width;
  const T* source = nullptr;
  if (row < count) {
    source = local + l * hidden;
  } else {
    const std::int64_t e = entities[l];
    if (e >= 0 && e < global_rows) source = global + e * hidden;
  }
  for (int c = threadIdx.x; c < hidden; c += blockDim.x) out[c] = source ? source[c] : from_float<T>(0.0f);
  for (int c = threadIdx.x; c < emotion_dim; c += blockDim.x) {
    float mu = 0.0f;
    for (int k = 0; k < slots; ++k) {
      const std::int64_t id = ids[l * slots + k];
      if (id < 0 || id >= emotion_rows) continue;
      mu += probs[l * slots + k] * to_float(table[id * emotion_dim + c]);
    }
    out[hidden + c] = from_float<T>(mu);
  }
}

}  // namespace

template <class T>
cudaError_t emotion_join(const T* local, const T* global, std::int64_t global_rows, const std::int32_t* entities,
                         std::int64_t count, int hidden, const T* table, std::int64_t emotion_rows, int emotion_dim,
                         const std::int32_t* ids, const float* probs, int slots, bool with_global, T* joined,
                         cudaStream_t stream) {
  const std::int64_t rows = with_global ? 2 * count : count;
  if (rows == 0) return cudaSuccess;
  join_kernel<T><<<static_cast<unsigned>(rows), 256, 0, stream>>>(local, global, global_rows, entities, count, hidden,
                                                                   table, emotion_rows, emotion_dim, ids, probs,
                                                                   slots, joined);
  return cudaGetLastError();
}

#define ECR_INSTANTIATE(T)                                                                                     \
  template cudaError_t emotion_join<T>(const T*, const T*, std::int64_t, const std::int32_t*, std::int64_t,  \
                                       int, const T*, std::int64_t, int, const std::int32_t*, const float*,   \
                                       int, bool, T*, cudaStream_t);
ECR_INSTANTIATE(float)
ECR_INSTANTIATE(__half)
ECR_INSTANTIATE(__nv_bfloat16)
#undef ECR_INSTANTIATE

}  // namespace ecr::kernels
