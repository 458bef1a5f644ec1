// Attention over a KV cache on the device (CPU twin: nn::attend with a causal offset); kernels
// in kernels/attention.cu.
//
// A batch of sequences is packed back to back: sequence b's new queries are rows q_start[b] ..
// q_start[b] + q_count[b] - 1, and past[b] keys are cached before them (a prefix prompt's rows,
// then earlier tokens). Query i of sequence b sees keys [0, past[b] + i]: the whole prefix and
// the new tokens causally. With `causal` false (a bidirectional encoder such as RoBERTa) every
// query of sequence b sees keys [0, past[b] + q_count[b]). Per-sequence counts replace a padding
// mask.
//
// Private to the library (src/, not installed), like nn/ops_cuda.hpp: the device models call the
// kernels directly; the kernel tests call these checked wrappers.
#pragma once

#ifndef ECR_WITH_CUDA
#error "nn/attention_cuda.hpp needs a build of ecr with ECR_WITH_CUDA=ON"
#endif

#include <cstdint>
#include <vector>

#include "ecr/core/tensor.hpp"
#include "ecr/device/cuda.hpp"

namespace ecr::cuda {

struct AttentionBatch {
  std::vector<std::int32_t> q_start;
  std::vector<std::int32_t> q_count;
  std::vector<std::int32_t> past;
  bool causal = true;  // read by attention_prefill only
};

// Shapes: q (rows, >= heads * head_dim), its first heads * head_dim columns read as heads (so a
// packed (rows, 3 * d) query|key|value buffer can be passed as is); k_cache and v_cache
// (batch, heads, capacity, head_dim); out (rows, heads * head_dim). One storage dtype (f32, f16,
// bf16) for all; head_dim <= 128.

// Any number of queries per sequence.
void attention_prefill(Stream& stream, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                       const AttentionBatch& batch, Tensor out, float scale);

// One query per sequence (q_count[b] == 1), its own key already in the cache at row past[b]. The
// keys are split over blocks, keys_per_split each (0: chosen for the device), and combined.
void attention_decode(Stream& stream, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                      const AttentionBatch& batch, Tensor out, float scale, int keys_per_split = 0);

// Writes the new rows' keys and values, (rows, heads * head_dim) each, into cache rows past[b] ..
// past[b] + q_count[b] - 1 of their sequence.
void append_kv(Stream& stream, const Tensor& keys, const Tensor& values, const AttentionBatch& batch, Tensor k_cache,
               Tensor v_cache);

}  // namespace ecr::cuda
