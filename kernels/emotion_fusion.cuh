// The input of ECR's emotion fusion (CPU twin: PromptEncoder's mix_emotions + fuse_emotions):
// each entity row joined with its emotion mixture mu_l = sum_k prob[l, k] M[emo[l, k]].
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ecr::kernels {

// joined is (rows, hidden + emotion_dim) with rows = count (local entities only) or 2 * count
// (local, then global). Row l < count: [local[l] | mu_l]; row count + l: [global[entities[l]] |
// mu_l]. mu_l mixes `slots` emotions: ids and probs are (count, slots); table is (emotion_rows,
// emotion_dim). An id out of range contributes nothing (host wrappers reject them first).
template <class T>
[[nodiscard]] cudaError_t emotion_join(const T* local, const T* global, std::int64_t global_rows,
                                       const std::int32_t* entities, std::int64_t count, int hidden,
                                       const T* table, std::int64_t emotion_rows, int emotion_dim,
                                       const std::int32_t* ids, const float* probs, int slots, bool with_global,
                                       T* joined, cudaStream_t stream);

}  // namespace ecr::kernels
