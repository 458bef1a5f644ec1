// One block of 1024 threads per row. Sampling finds its thresholds by radix selection on the
// order-preserving integer image of the warped logits (8 bits per pass, most significant
// first) instead of sorting the vocabulary:
//   top-k: the k-th largest value; tokens at least as large survive (ties with it too, as in HF);
//   top-p: the smallest value whose strictly larger survivors hold less than top_p of the mass,
//          i.e. the tokens HF keeps when it drops the least likely while the dropped mass stays
//          <= 1 - top_p.
// Probabilities are exp(v - max) as integers in units of 2^-40, so histograms, totals and the
// final prefix sum are exact integer sums: the same seed gives the same token on every run.
#include "sampling.cuh"

#include <climits>

#include "common.cuh"
#include "philox.cuh"

namespace ecr::kernels {

namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr float kMassScale = 0x1.0p40f;  // a probability of 1 is 2^40 units

// Larger float, larger key; -0 and +0 share a key, as they compare equal.
__device__ __forceinline__ std::uint32_t order_key(float v) {
  const std::uint32_t bits = __float_as_uint(v + 0.0f);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

__device__ __forceinline__ unsigned long long mass(float v, float max) {
  return static_cast<unsigned long long>(expf(v - max) * kMassScale);
}

__global__ void __launch_bounds__(kThreads) argmax_kernel(const float* logits, int vocab, std::int32_t* out) {
  __shared__ float best_values[kWarps];
  __shared__ int best_indices[kWarps];
  const float* row = logits + static_cast<std::int64_t>(blockIdx.x) * vocab;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // Each thread scans increasing indices and keeps the first maximum it sees; the reduction
  // breaks ties by the smaller index, so the result is the first maximum of the row.
  float best = -INFINITY;
  int index = INT_MAX;
  for (int i = threadIdx.x; i < vocab; i += kThreads) {
    const float v = row[i];
    if (v > best) {
      best = v;
      index = i;
    }
  }
  auto reduce = [&]() {
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float v = __shfl_xor_sync(kFullMask, best, offset);
      const int i = __shfl_xor_sync(kFullMask, index, offset);
      if (v > best || (v == best && i < index)) {
        best = v;
        index = i;
      }
    }
  };
  reduce();
  if (lane == 0) {
    best_values[warp] = best;
    best_indices[warp] = index;
  }
  __syncthreads();
  if (warp == 0) {
    best = best_values[lane];
    index = best_indices[lane];
    reduce();
    if (lane == 0) out[blockIdx.x] = index == INT_MAX ? 0 : index;  // all -inf: index 0, as max_element
  }
}

struct SampleShared {
  unsigned counts[256];
  unsigned long long masses[256];
  unsigned long long warp_totals[kWarps];
  float scratch[32];
  std::uint32_t prefix;
  int remaining;
  unsigned long long above;
};

__device__ unsigned long long block_sum_u64(unsigned long long v, unsigned long long* warp_totals) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  __syncthreads();
  if (lane == 0) warp_totals[warp] = v;
  __syncthreads();
  v = warp_totals[lane];
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

// Exclusive prefix sum over threads in index order; `total` receives the block's sum.
__device__ unsigned long long block_exclusive_scan(unsigned long long v, unsigned long long* warp_totals,
                                                   unsigned long long* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  unsigned long long inclusive = v;
  for (int offset = 1; offset < 32; offset <<= 1) {
    const unsigned long long up = __shfl_up_sync(kFullMask, inclusive, offset);
    if (lane >= offset) inclusive += up;
  }
  __syncthreads();
  if (lane == 31) warp_totals[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    unsigned long long t = warp_totals[lane];
    for (int offset = 1; offset < 32; offset <<= 1) {
      const unsigned long long up = __shfl_up_sync(kFullMask, t, offset);
      if (lane >= offset) t += up;
    }
    warp_totals[lane] = t;
  }
  __syncthreads();
  *total = warp_totals[kWarps - 1];
  return (warp > 0 ? warp_totals[warp - 1] : 0ull) + inclusive - v;
}

__global__ void __launch_bounds__(kThreads)
    sample_kernel(const float* logits, int vocab, SamplingParams params, std::int64_t step_host,
                  const std::int32_t* step_device, std::int32_t* out) {
  __shared__ SampleShared sh;
  const float* row = logits + static_cast<std::int64_t>(blockIdx.x) * vocab;
  const float temperature = params.temperature;
  auto value = [&](int i) { return temperature != 1.0f ? row[i] / temperature : row[i]; };

  // Top-k: the k-th largest warped value, by radix selection of its key.
  std::uint32_t kth = 0;
  if (params.top_k > 0 && params.top_k < vocab) {
    std::uint32_t prefix = 0, mask = 0;
    int remaining = params.top_k;
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int d = threadIdx.x; d < 256; d += kThreads) sh.counts[d] = 0;
      __syncthreads();
      for (int i = threadIdx.x; i < vocab; i += kThreads) {
        const std::uint32_t key = order_key(value(i));
        if ((key & mask) == prefix) atomicAdd(&sh.counts[(key >> shift) & 255u], 1u);
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        int d = 255;
        for (; d > 0; --d) {
          if (static_cast<int>(sh.counts[d]) >= remaining) break;
          remaining -= static_cast<int>(sh.counts[d]);
        }
        sh.prefix = prefix | (static_cast<std::uint32_t>(d) << shift);
        sh.remaining = remaining;
      }
      __syncthreads();
      prefix = sh.prefix;
      remaining = sh.remaining;
      mask |= 0xFFu << shift;
    }
    kth = prefix;
  }
  auto survives_k = [&](float v) { return v != -INFINITY && order_key(v) >= kth; };

  float max = -INFINITY;
  for (int i = threadIdx.x; i < vocab; i += kThreads) {
    const float v = value(i);
    if (survives_k(v)) max = fmaxf(max, v);
  }
  max = block_max(max, sh.scratch);
  if (max == -INFINITY) {  // every token is banned (the whole block takes this branch)
    if (threadIdx.x == 0) out[blockIdx.x] = -1;
    return;
  }

  // Top-p: the smallest key whose strictly larger survivors hold less than top_p of the mass.
  std::uint32_t pth = 0;
  if (params.top_p < 1.0f) {
    unsigned long long local = 0;
    for (int i = threadIdx.x; i < vocab; i += kThreads) {
      const float v = value(i);
      if (survives_k(v)) local += mass(v, max);
    }
    const double limit = static_cast<double>(params.top_p) * static_cast<double>(block_sum_u64(local, sh.warp_totals));
    std::uint32_t prefix = 0, mask = 0;
    unsigned long long above = 0;  // mass of survivors above the current key range
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int d = threadIdx.x; d < 256; d += kThreads) {
        sh.counts[d] = 0;
        sh.masses[d] = 0;
      }
      __syncthreads();
      for (int i = threadIdx.x; i < vocab; i += kThreads) {
        const float v = value(i);
        if (!survives_k(v)) continue;
        const std::uint32_t key = order_key(v);
        if ((key & mask) != prefix) continue;
        const std::uint32_t d = (key >> shift) & 255u;
        atomicAdd(&sh.counts[d], 1u);
        atomicAdd(&sh.masses[d], mass(v, max));
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        // The largest token of bucket d has exactly `acc` mass above it; the lowest bucket
        // whose largest token still has less than the limit above it holds the threshold.
        unsigned long long acc = above, chosen_above = above;
        int chosen = 0;
        for (int d = 255; d >= 0; --d) {
          if (sh.counts[d] == 0) continue;
          if (static_cast<double>(acc) >= limit) break;
          chosen = d;
          chosen_above = acc;
          acc += sh.masses[d];
        }
        sh.prefix = prefix | (static_cast<std::uint32_t>(chosen) << shift);
        sh.above = chosen_above;
      }
      __syncthreads();
      prefix = sh.prefix;
      above = sh.above;
      mask |= 0xFFu << shift;
    }
    pth = prefix;
  }
  auto survives = [&](float v) { return survives_k(v) && order_key(v) >= pth; };

  // The first token, in vocabulary order, whose cumulative mass exceeds u * total.
  const int per_thread = (vocab + kThreads - 1) / kThreads;
  const int begin = min(vocab, static_cast<int>(threadIdx.x) * per_thread);
  const int end = min(vocab, begin + per_thread);
  unsigned long long local = 0;
  for (int i = begin; i < end; ++i) {
    const float v = value(i);
    if (survives(v)) local += mass(v, max);
  }
  unsigned long long total = 0;
  const unsigned long long offset = block_exclusive_scan(local, sh.warp_totals, &total);
  const std::int64_t step = step_host + (step_device ? *step_device : 0);
  const double u = philox_uniform(params.seed, static_cast<std::uint64_t>(step), blockIdx.x);
  unsigned long long target = static_cast<unsigned long long>(u * static_cast<double>(total));
  if (target >= total) target = total - 1;  // total > 0: the maximum survives with mass 2^40
  if (offset <= target && target < offset + local) {
    unsigned long long cumulative = offset;
    for (int i = begin; i < end; ++i) {
      const float v = value(i);
      if (!survives(v)) continue;
      cumulative += mass(v, max);
      if (cumulative > target) {
        out[blockIdx.x] = i;
        break;
      }
    }
  }
}

__global__ void penalty_kernel(float* logits, int vocab, const std::int32_t* context, std::int64_t length_host,
                               const std::int32_t* length_device, float penalty) {
  const std::int64_t length = length_host + (length_device ? *length_device : 0);
  const std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= length) return;
  const std::int32_t token = context[t];
  if (token < 0 || token >= vocab) return;
  for (std::int64_t s = 0; s < t; ++s)
    if (context[s] == token) return;  // its first occurrence applies the penalty, once
  const float v = logits[token];
  logits[token] = v < 0.0f ? v * penalty : v / penalty;
}

__global__ void ngram_kernel(float* logits, int vocab, const std::int32_t* context, std::int64_t length_host,
                             const std::int32_t* length_device, int n) {
  const std::int64_t length = length_host + (length_device ? *length_device : 0);
  const std::int64_t start = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n <= 0 || start + n > length) return;
  const std::int32_t* tail = context + length - (n - 1);
  for (int j = 0; j < n - 1; ++j)
    if (context[start + j] != tail[j]) return;
  const std::int32_t next = context[start + n - 1];
  if (next >= 0 && next < vocab) logits[next] = -INFINITY;
}

}  // namespace

cudaError_t argmax_rows(const float* logits, std::int64_t rows, int vocab, std::int32_t* out, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (vocab <= 0) return cudaErrorInvalidValue;
  argmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(logits, vocab, out);
  return cudaGetLastError();
}

cudaError_t sample_rows(const float* logits, std::int64_t rows, int vocab, SamplingParams params,
                        std::int64_t step_host, const std::int32_t* step_device, std::int32_t* out,
                        cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (vocab <= 0 || !(params.temperature > 0.0f) || params.top_k < 0 || !(params.top_p > 0.0f && params.top_p <= 1.0f))
    return cudaErrorInvalidValue;
  sample_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(logits, vocab, params, step_host, step_device,
                                                                      out);
  return cudaGetLastError();
}

cudaError_t repetition_penalty(float* logits, int vocab, const std::int32_t* context, std::int64_t length_host,
                               const std::int32_t* length_device, std::int64_t max_length, float penalty,
                               cudaStream_t stream) {
  if (penalty == 1.0f || max_length <= 0) return cudaSuccess;
  penalty_kernel<<<ceil_div(max_length, 256), 256, 0, stream>>>(logits, vocab, context, length_host, length_device,
                                                                 penalty);
  return cudaGetLastError();
}

cudaError_t ban_repeated_ngrams(float* logits, int vocab, const std::int32_t* context, std::int64_t length_host,
                                const std::int32_t* length_device, std::int64_t max_length, int n,
                                cudaStream_t stream) {
  if (n <= 0 || max_length <= 0) return cudaSuccess;
  ngram_kernel<<<ceil_div(max_length, 256), 256, 0, stream>>>(logits, vocab, context, length_host, length_device, n);
  return cudaGetLastError();
}

}  // namespace ecr::kernels
