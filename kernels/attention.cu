// Attention with an online (running-max) softmax, so scores never materialise in memory.
//
// Both kernels process keys in groups of 32, one key per lane: a lane computes its key's score
// against a query held in shared memory (keys staged in shared memory with an odd row stride,
// so the 32 lanes hit 32 different banks), the warp takes the group's max and sum with
// shuffles, and then every lane accumulates its own output columns (lane, lane + 32, ...) over
// the group's values, broadcasting each probability with a shuffle.
//
// Prefill: a block is 16 queries x one head; its 4 warps own 4 queries each and share each
// staged key/value group. Decode: a block is one query x one head x one split of the keys; its 4
// warps take interleaved groups, merge their (max, sum, output) in shared memory and write a
// partial result that a second pass combines across splits (flash-decoding). With one split the
// block normalises and writes the output itself.
#include "attention.cuh"

#include <algorithm>
#include <cstring>

#include "common.cuh"

namespace ecr::kernels {

namespace {

constexpr int kWarps = kAttentionWarps;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kGroup = kWarpSize;                 // keys per warp step
constexpr int kPerLane = kMaxHeadDim / kWarpSize;  // output columns per lane
constexpr int kTileQueries = kPrefillTileQueries;  // prefill queries per block
constexpr int kQueriesPerWarp = kTileQueries / kWarps;

// Shared-memory row stride for staged keys: odd, so lane j reading row j hits bank (j * s + c) % 32,
// 32 distinct banks.
__host__ __device__ inline int key_stride(int head_dim) { return head_dim | 1; }

__device__ __forceinline__ std::int64_t min64(std::int64_t a, std::int64_t b) { return a < b ? a : b; }

__device__ __forceinline__ float dot(const float* a, const float* b, int n) {
  float s = 0.0f;
#pragma unroll 8
  for (int c = 0; c < n; ++c) s += a[c] * b[c];
  return s;
}

// Copies n contiguous rows of head_dim elements (a warp's key group) into dst with row stride
// `stride`, as fp32; 16-byte loads when the rows allow them.
template <class T>
__device__ __forceinline__ void stage_rows(const T* src, int n, int head_dim, int stride, float* dst, int lane) {
  constexpr int kVec = 16 / sizeof(T);
  const int total = n * head_dim;
  if (head_dim % kVec == 0 && reinterpret_cast<std::uintptr_t>(src) % 16 == 0) {
    for (int e = lane * kVec; e < total; e += 32 * kVec) {
      const uint4 raw = *reinterpret_cast<const uint4*>(src + e);
      T values[kVec];
      memcpy(values, &raw, sizeof(raw));  // not a pointer cast: that would break strict aliasing
      const int j = e / head_dim, c = e - j * head_dim;
#pragma unroll
      for (int i = 0; i < kVec; ++i) dst[j * stride + c + i] = to_float(values[i]);
    }
  } else {
    for (int e = lane; e < total; e += 32) {
      const int j = e / head_dim, c = e - j * head_dim;
      dst[j * stride + c] = to_float(src[e]);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) prefill_kernel(AttentionParams<T> p) {
  extern __shared__ float smem[];
  const int hd = p.head_dim, ks = key_stride(hd);
  float* qs = smem;                    // kTileQueries x hd
  float* kc = qs + kTileQueries * hd;  // kGroup x ks
  float* vc = kc + kGroup * ks;        // kGroup x hd
  const int h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  const int count = p.q_count[b];
  const int first = blockIdx.x * kTileQueries;
  if (first >= count) return;  // the whole block: this tile is past the sequence's queries
  const int rows = min(kTileQueries, count - first);
  const std::int64_t past = p.past[b];
  const std::int64_t row0 = static_cast<std::int64_t>(p.q_start[b]) + first;
  // What the tile's last query sees.
  const std::int64_t keys = p.causal ? past + first + rows : past + count;
  const std::int64_t kv_offset = static_cast<std::int64_t>(b) * p.kv_seq_stride + h * p.kv_head_stride;
  const T* kb = p.k + kv_offset;
  const T* vb = p.v + kv_offset;

  for (int e = threadIdx.x; e < rows * hd; e += kThreads) {
    const int r = e / hd, c = e - r * hd;
    qs[e] = to_float(p.q[(row0 + r) * p.q_stride + static_cast<std::int64_t>(h) * hd + c]);
  }

  float m[kQueriesPerWarp], l[kQueriesPerWarp], o[kQueriesPerWarp][kPerLane];
#pragma unroll
  for (int i = 0; i < kQueriesPerWarp; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) o[i][t] = 0.0f;
  }

  for (std::int64_t base = 0; base < keys; base += kGroup) {
    const int n = static_cast<int>(min64(kGroup, keys - base));
    __syncthreads();  // the previous group is consumed (and the queries are staged)
    for (int e = threadIdx.x; e < n * hd; e += kThreads) {
      const int j = e / hd, c = e - j * hd;
      kc[j * ks + c] = to_float(kb[base * hd + e]);
      vc[e] = to_float(vb[base * hd + e]);
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kQueriesPerWarp; ++i) {
      const int r = warp * kQueriesPerWarp + i;
      // This query sees keys [0, visible).
      const std::int64_t visible = p.causal ? past + first + r + 1 : past + count;
      if (r >= rows || base >= visible) continue;         // warp-uniform
      float s = -INFINITY;
      if (lane < n && base + lane < visible) s = dot(qs + r * hd, kc + lane * ks, hd) * p.scale;
      const float m_new = fmaxf(m[i], warp_max(s));  // finite: key `base` is visible
      const float correction = expf(m[i] - m_new);
      const float e = expf(s - m_new);
      l[i] = l[i] * correction + warp_sum(e);
#pragma unroll
      for (int t = 0; t < kPerLane; ++t) o[i][t] *= correction;
      for (int j = 0; j < n; ++j) {
        const float ej = __shfl_sync(kFullMask, e, j);
#pragma unroll
        for (int t = 0; t < kPerLane; ++t) {
          const int c = lane + 32 * t;
          if (c < hd) o[i][t] += ej * vc[j * hd + c];
        }
      }
      m[i] = m_new;
    }
  }

#pragma unroll
  for (int i = 0; i < kQueriesPerWarp; ++i) {
    const int r = warp * kQueriesPerWarp + i;
    if (r >= rows) continue;
    T* out = p.out + (row0 + r) * p.out_stride + static_cast<std::int64_t>(h) * hd;
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) {
      const int c = lane + 32 * t;
      if (c < hd) out[c] = from_float<T>(l[i] > 0.0f ? o[i][t] / l[i] : 0.0f);
    }
  }
}

// Partial results per (sequence, head, split): max, sum, then head_dim unnormalised outputs.
__host__ __device__ inline std::int64_t partial_offset(int b, int h, int split, int heads, int splits, int head_dim) {
  return ((static_cast<std::int64_t>(b) * heads + h) * splits + split) * (head_dim + 2);
}

template <class T>
__global__ void __launch_bounds__(kThreads) decode_kernel(AttentionParams<T> p, int keys_per_split, float* partial) {
  extern __shared__ float smem[];
  const int hd = p.head_dim, ks = key_stride(hd);
  float* qs = smem;                          // hd
  float* staged = qs + hd;                   // kWarps x kGroup x ks
  float* os = staged + kWarps * kGroup * ks; // kWarps x hd
  float* ms = os + kWarps * hd;              // kWarps
  float* ls = ms + kWarps;                   // kWarps
  const int split = blockIdx.x, h = blockIdx.y, b = blockIdx.z, splits = gridDim.x;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  const std::int64_t keys = static_cast<std::int64_t>(p.past[b]) + 1;
  const std::int64_t begin = static_cast<std::int64_t>(split) * keys_per_split;
  const std::int64_t end = split == splits - 1 ? keys : min64(keys, begin + keys_per_split);
  const std::int64_t row = p.q_start[b];
  const std::int64_t kv_offset = static_cast<std::int64_t>(b) * p.kv_seq_stride + h * p.kv_head_stride;
  const T* kb = p.k + kv_offset;
  const T* vb = p.v + kv_offset;

  const T* q = p.q + row * p.q_stride + static_cast<std::int64_t>(h) * hd;
  for (int c = threadIdx.x; c < hd; c += kThreads) qs[c] = to_float(q[c]);
  __syncthreads();

  float* kw = staged + warp * kGroup * ks;
  float m = -INFINITY, l = 0.0f, o[kPerLane];
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) o[t] = 0.0f;
  for (std::int64_t base = begin + warp * kGroup; base < end; base += kWarps * kGroup) {
    const int n = static_cast<int>(min64(kGroup, end - base));
    stage_rows(kb + base * hd, n, hd, ks, kw, lane);
    __syncwarp();
    float s = -INFINITY;
    if (lane < n) s = dot(qs, kw + lane * ks, hd) * p.scale;
    const float m_new = fmaxf(m, warp_max(s));  // finite: n >= 1
    const float correction = expf(m - m_new);
    const float e = expf(s - m_new);
    l = l * correction + warp_sum(e);
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) o[t] *= correction;
    const T* values = vb + base * hd;
    for (int j = 0; j < n; ++j) {
      const float ej = __shfl_sync(kFullMask, e, j);
#pragma unroll
      for (int t = 0; t < kPerLane; ++t) {
        const int c = lane + 32 * t;
        if (c < hd) o[t] += ej * to_float(values[j * hd + c]);
      }
    }
    m = m_new;
    __syncwarp();  // the group is consumed before the next one is staged over it
  }

  if (lane == 0) {
    ms[warp] = m;
    ls[warp] = l;
  }
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int c = lane + 32 * t;
    if (c < hd) os[warp * hd + c] = o[t];
  }
  __syncthreads();

  for (int c = threadIdx.x; c < hd; c += kThreads) {
    float max = -INFINITY;
    for (int w = 0; w < kWarps; ++w) max = fmaxf(max, ms[w]);
    float sum = 0.0f, acc = 0.0f;
    if (max != -INFINITY)
      for (int w = 0; w < kWarps; ++w) {
        if (ms[w] == -INFINITY) continue;  // a warp that saw no key
        const float f = expf(ms[w] - max);
        sum += ls[w] * f;
        acc += os[w * hd + c] * f;
      }
    if (splits == 1) {
      p.out[row * p.out_stride + static_cast<std::int64_t>(h) * hd + c] = from_float<T>(sum > 0.0f ? acc / sum : 0.0f);
    } else {
      float* part = partial + partial_offset(b, h, split, p.heads, splits, hd);
      if (c == 0) {
        part[0] = max;
        part[1] = sum;
      }
      part[2 + c] = acc;
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) combine_kernel(AttentionParams<T> p, int splits, const float* partial) {
  const int h = blockIdx.x, b = blockIdx.y, hd = p.head_dim;
  const float* parts = partial + partial_offset(b, h, 0, p.heads, splits, hd);
  const std::int64_t stride = hd + 2;
  for (int c = threadIdx.x; c < hd; c += kThreads) {
    float max = -INFINITY;
    for (int s = 0; s < splits; ++s) max = fmaxf(max, parts[s * stride]);
    float sum = 0.0f, acc = 0.0f;
    if (max != -INFINITY)
      for (int s = 0; s < splits; ++s) {
        const float ms = parts[s * stride];
        if (ms == -INFINITY) continue;  // a split past the sequence's keys
        const float f = expf(ms - max);
        sum += parts[s * stride + 1] * f;
        acc += parts[s * stride + 2 + c] * f;
      }
    p.out[static_cast<std::int64_t>(p.q_start[b]) * p.out_stride + static_cast<std::int64_t>(h) * hd + c] =
        from_float<T>(sum > 0.0f ? acc / sum : 0.0f);
  }
}

template <class T>
__global__ void append_kv_kernel(const T* keys, const T* values, std::int64_t src_stride, T* k_cache, T* v_cache,
                                 std::int64_t seq_stride, std::int64_t head_stride, std::int64_t capacity,
                                 int heads, int head_dim, const std::int32_t* q_start, const std::int32_t* q_count,
                                 const std::int32_t* past) {
  const int i = blockIdx.x, b = blockIdx.y;
  if (i >= q_count[b]) return;
  const std::int64_t pos = static_cast<std::int64_t>(past[b]) + i;
  if (pos < 0 || pos >= capacity) return;
  const std::int64_t src = (static_cast<std::int64_t>(q_start[b]) + i) * src_stride;
  const int width = heads * head_dim;
  for (int e = threadIdx.x; e < width; e += blockDim.x) {
    const int h = e / head_dim, c = e - h * head_dim;
    const std::int64_t dst = static_cast<std::int64_t>(b) * seq_stride + h * head_stride + pos * head_dim + c;
    k_cache[dst] = keys[src + e];
    v_cache[dst] = values[src + e];
  }
}

std::size_t prefill_smem(int hd) {
  return sizeof(float) * (static_cast<std::size_t>(kTileQueries) * hd + kGroup * key_stride(hd) + kGroup * hd);
}

std::size_t decode_smem(int hd) {
  return sizeof(float) *
         (static_cast<std::size_t>(hd) + kWarps * kGroup * key_stride(hd) + kWarps * hd + 2 * kWarps);
}

// Opts a kernel into more than the default 48 KiB of dynamic shared memory, once per
// instantiation: the first call comes before any CUDA graph capture (callers warm up first).
template <class Kernel>
cudaError_t allow_shared_memory(Kernel kernel, std::size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

}  // namespace

DecodeSplit plan_decode(int batch, int heads, std::int64_t max_keys, int multiprocessors) {
  constexpr std::int64_t kBlockKeys = kDecodeKeysPerBlock;
  max_keys = std::max<std::int64_t>(max_keys, 1);
  const std::int64_t pairs = std::max<std::int64_t>(static_cast<std::int64_t>(batch) * heads, 1);
  const std::int64_t wanted = (2 * static_cast<std::int64_t>(std::max(multiprocessors, 1)) + pairs - 1) / pairs;
  const std::int64_t most = (max_keys + kBlockKeys - 1) / kBlockKeys;
  const std::int64_t splits = std::clamp<std::int64_t>(wanted, 1, most);
  const std::int64_t per_split = ((max_keys + splits - 1) / splits + kBlockKeys - 1) / kBlockKeys * kBlockKeys;
  return {static_cast<int>(per_split), static_cast<int>((max_keys + per_split - 1) / per_split)};
}

std::size_t decode_workspace_floats(int batch, int heads, DecodeSplit split, int head_dim) {
  if (split.splits <= 1) return 0;
  return static_cast<std::size_t>(batch) * heads * split.splits * (head_dim + 2);
}

template <class T>
cudaError_t attention_prefill(const AttentionParams<T>& p, int max_queries, cudaStream_t stream) {
  if (p.head_dim < 1 || p.head_dim > kMaxHeadDim) return cudaErrorInvalidValue;
  if (max_queries <= 0 || p.batch <= 0 || p.heads <= 0) return cudaSuccess;
  const std::size_t smem = prefill_smem(p.head_dim);
  static const cudaError_t opted = allow_shared_memory(prefill_kernel<T>, prefill_smem(kMaxHeadDim));
  if (opted != cudaSuccess) return opted;
  const dim3 grid(ceil_div(max_queries, kTileQueries), p.heads, p.batch);
  prefill_kernel<T><<<grid, kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

template <class T>
cudaError_t attention_decode(const AttentionParams<T>& p, DecodeSplit split, float* workspace, cudaStream_t stream) {
  if (p.head_dim < 1 || p.head_dim > kMaxHeadDim || split.splits < 1 || split.keys_per_split < 1)
    return cudaErrorInvalidValue;
  if (split.splits > 1 && !workspace) return cudaErrorInvalidValue;
  if (p.batch <= 0 || p.heads <= 0) return cudaSuccess;
  static const cudaError_t opted = allow_shared_memory(decode_kernel<T>, decode_smem(kMaxHeadDim));
  if (opted != cudaSuccess) return opted;
  const dim3 grid(split.splits, p.heads, p.batch);
  decode_kernel<T><<<grid, kThreads, decode_smem(p.head_dim), stream>>>(p, split.keys_per_split, workspace);
  if (split.splits > 1) {
    const cudaError_t launched = cudaGetLastError();
    if (launched != cudaSuccess) return launched;
    combine_kernel<T><<<dim3(p.heads, p.batch), kThreads, 0, stream>>>(p, split.splits, workspace);
  }
  return cudaGetLastError();
}

template <class T>
cudaError_t append_kv(const T* keys, const T* values, std::int64_t src_stride, T* k_cache, T* v_cache,
                      std::int64_t seq_stride, std::int64_t head_stride, std::int64_t capacity, int heads,
                      int head_dim, const std::int32_t* q_start, const std::int32_t* q_count,
                      const std::int32_t* past, int batch, int max_queries, cudaStream_t stream) {
  if (max_queries <= 0 || batch <= 0) return cudaSuccess;
  append_kv_kernel<T><<<dim3(max_queries, batch), kElementwiseThreads, 0, stream>>>(keys, values, src_stride, k_cache, v_cache,
                                                                     seq_stride, head_stride, capacity, heads,
                                                                     head_dim, q_start, q_count, past);
  return cudaGetLastError();
}

#define ECR_INSTANTIATE(T)                                                                                        \
  template cudaError_t attention_prefill<T>(const AttentionParams<T>&, int, cudaStream_t);                        \
  template cudaError_t attention_decode<T>(const AttentionParams<T>&, DecodeSplit, float*, cudaStream_t);         \
  template cudaError_t append_kv<T>(const T*, const T*, std::int64_t, T*, T*, std::int64_t, std::int64_t,         \
                                    std::int64_t, int, int, const std::int32_t*, const std::int32_t*,             \
                                    const std::int32_t*, int, int, cudaStream_t);
ECR_INSTANTIATE(float)
ECR_INSTANTIATE(__half)
ECR_INSTANTIATE(__nv_bfloat16)
#undef ECR_INSTANTIATE

}  // namespace ecr::kernels
