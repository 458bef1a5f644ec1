// Scaled dot-product attention for one head of one sequence. The models run it for every
// (sequence, head) pair on the thread pool; each pair is independent, so splitting them across
// threads never changes a result.
//
// Masks are expressed as key ranges rather than additive matrices: a prefix prompt is a block of
// keys every query sees, a causal mask lets query i see keys [0, i + causal_offset], and padding
// never reaches this op because batched sequences are packed back to back.
#pragma once

#include <cstdint>
#include <optional>

#include "ecr/nn/ops.hpp"

namespace ecr::nn {

// out = softmax(scale * q k^T [masked]) v.  q, out: (queries, head_dim); k, v: (keys, head_dim).
// With causal_offset = c, query i sees keys [0, i + c] only (c = keys - queries when the
// queries are the newest positions); without it, every key.
void attend(ConstMatrix q, ConstMatrix k, ConstMatrix v, Matrix out, float scale,
            std::optional<std::int64_t> causal_offset);

}  // namespace ecr::nn
