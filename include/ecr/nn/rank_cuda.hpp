// Scoring and ranking on the device (CPU twin: the recommender's scores z E^T, docs/math.md section 5, and
// its ranking: higher score first, then the lower id).
//
// Needs a build with ECR_WITH_CUDA=ON (the functions exist only there).
#pragma once

#ifndef ECR_WITH_CUDA
#error "ecr/nn/rank_cuda.hpp needs a build of ecr with ECR_WITH_CUDA=ON"
#endif

#include <cstdint>
#include <vector>

#include "ecr/core/tensor.hpp"
#include "ecr/device/cuda.hpp"
#include "ecr/nn/linear_cuda.hpp"

namespace ecr::cuda {

// scores = z E^T: z (B, H) and table E (N, H) device tensors of one dtype (f32, f16, bf16);
// scores (B, N) device f32, written in place. ShapeError when the shapes do not chain.
void score_rows(Stream& stream, const Tensor& z, const Tensor& table, Tensor scores, GemmMath math = GemmMath::exact);
// The same into a new (B, N) f32 device tensor.
Tensor score_rows(Stream& stream, const Tensor& z, const Tensor& table, GemmMath math = GemmMath::exact);

struct RankedItem {
  std::int32_t id = 0;  // column of the scores: the entity id when E is the whole entity table
  float score = 0.0f;
  bool operator==(const RankedItem&) const = default;
};

// The min(k, N) best columns of each row of scores (B, N) (device f32), best first: higher score,
// equal scores by the lower id (-0.0 equals +0.0), as the CPU recommender ranks. Waits for the
// stream. InputError for k < 0; ShapeError for a non-matrix or more than 2^31 - 1 scores.
std::vector<std::vector<RankedItem>> top_k_rows(Stream& stream, const Tensor& scores, std::int64_t k);

}  // namespace ecr::cuda
