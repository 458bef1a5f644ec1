// Dense layers: y = act(x W^T + b) with W stored (out, in) as torch's nn.Linear stores it.
// GPT-2's Conv1D weights, stored (in, out), are transposed once at load so that every layer,
// and the tied LM head, runs through this one GEMM.
//
// Threads split the OUTPUT columns into chunks of a fixed width. A chunk's values come from one
// Eigen GEMM whose shape depends only on the problem, so the reduction order of every output
// element, and hence every bit of the result, is the same for any number of threads.
#pragma once

#include <cstdint>

#include "ecr/core/tensor.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/nn/ops.hpp"

namespace ecr::nn {

struct Linear {
  Tensor weight;  // (out, in) f32
  Tensor bias;    // (out) f32, or undefined for a bias-free layer
  std::int64_t in() const { return weight.dim(1); }
  std::int64_t out() const { return weight.dim(0); }
};

// Width of the output chunks one thread computes at a time.
inline constexpr std::int64_t kLinearChunk = 128;

// y = act(x W^T + b); with `accumulate`, y += x W^T + b instead (a residual connection; no
// activation then). x: (rows, in), y: (rows, out), not overlapping.
void linear(ConstMatrix x, const Linear& layer, Matrix y, ThreadPool& pool,
            Activation activation = Activation::none, bool accumulate = false);

}  // namespace ecr::nn
