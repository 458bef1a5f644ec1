// Scaled dot-product attention over a KV cache (CPU twin: nn::attend with a causal offset), for
// prefill (many queries per sequence) and decode (one query per sequence, keys split across
// blocks flash-decoding style, then a reduction pass). Storage T is float, __half or
// __nv_bfloat16; scores, softmax and the weighted sum of values are fp32.
//
// Masking is by key ranges, as on the CPU: a prefix prompt is the first rows of the cache, which
// every query sees; query i of a sequence sees keys [0, past + i]. Batched sequences are packed
// back to back with per-sequence counts, so padding never reaches these kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "limits.hpp"

namespace ecr::kernels {

// One layer's attention over a batch. Sequence b's queries are rows q_start[b] ..
// q_start[b] + q_count[b] - 1 of q (rows q_stride apart, head h at columns h * head_dim); its
// outputs go to the same rows of out (out_stride apart). Its keys for head h are rows of
// head_dim elements starting at k + b * kv_seq_stride + h * kv_head_stride (values likewise in v).
// Causal (GPT-2): query i of sequence b sees keys [0, past[b] + i]. Not causal (RoBERTa's
// bidirectional encoder): every query of sequence b sees keys [0, past[b] + q_count[b]), so a
// sequence attends to all of its own tokens and never to another's padding. The three arrays
// live in device memory, so a captured CUDA graph can advance them between replays.
template <class T>
struct AttentionParams {
  const T* q = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  T* out = nullptr;
  std::int64_t q_stride = 0;
  std::int64_t out_stride = 0;
  std::int64_t kv_seq_stride = 0;
  std::int64_t kv_head_stride = 0;
  const std::int32_t* q_start = nullptr;
  const std::int32_t* q_count = nullptr;
  const std::int32_t* past = nullptr;
  int batch = 0;
  int heads = 0;
  int head_dim = 0;
  float scale = 1.0f;
  bool causal = true;
};

// Passed by value as a kernel argument: a plain bit copy of the host struct.
static_assert(std::is_trivially_copyable_v<AttentionParams<float>> && std::is_standard_layout_v<AttentionParams<float>>);
static_assert(std::is_trivially_copyable_v<AttentionParams<__half>> && std::is_standard_layout_v<AttentionParams<__half>>);
static_assert(std::is_trivially_copyable_v<AttentionParams<__nv_bfloat16>> &&
              std::is_standard_layout_v<AttentionParams<__nv_bfloat16>>);

// Prefill: up to max_queries queries per sequence, each block a tile of kPrefillTileQueries
// queries of one head; causal or not as p.causal says.
template <class T>
[[nodiscard]] cudaError_t attention_prefill(const AttentionParams<T>& p, int max_queries, cudaStream_t stream);

// How decode splits the keys: `splits` blocks per (sequence, head), each over keys_per_split keys
// (the last one also takes any keys beyond splits * keys_per_split, so none is ever dropped).
struct DecodeSplit {
  int keys_per_split = kDecodeKeysPerBlock;
  int splits = 1;
};
static_assert(std::is_trivially_copyable_v<DecodeSplit>);
// Enough blocks to fill `multiprocessors` SMs about twice for contexts up to max_keys keys.
DecodeSplit plan_decode(int batch, int heads, std::int64_t max_keys, int multiprocessors);
// Floats of workspace attention_decode needs (partial maxima, sums and outputs per split).
std::size_t decode_workspace_floats(int batch, int heads, DecodeSplit split, int head_dim);

// Decode: one query per sequence, row q_start[b]; it sees past[b] + 1 keys (its own already
// appended). q_count and causal are not read. `workspace` may be null when split.splits == 1.
template <class T>
[[nodiscard]] cudaError_t attention_decode(const AttentionParams<T>& p, DecodeSplit split, float* workspace,
                                           cudaStream_t stream);

// Appends the new rows' keys and values to the cache: row q_start[b] + i of keys / values (rows
// src_stride apart, heads * head_dim wide) goes to cache row past[b] + i of every head of
// sequence b (laid out as in AttentionParams). Rows at or beyond `capacity` are not written.
template <class T>
[[nodiscard]] cudaError_t append_kv(const T* keys, const T* values, std::int64_t src_stride, T* k_cache, T* v_cache,
                                    std::int64_t seq_stride, std::int64_t head_stride, std::int64_t capacity,
                                    int heads, int head_dim, const std::int32_t* q_start,
                                    const std::int32_t* q_count, const std::int32_t* past, int batch,
                                    int max_queries, cudaStream_t stream);

}  // namespace ecr::kernels
