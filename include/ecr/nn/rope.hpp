// Rotary position embedding as llama.cpp applies it to Llama-family models (ggml's rope mode 0,
// "norm"): within each head, the ADJACENT pairs (x[2i], x[2i+1]) of its first `dims` values are
// rotated by the angle  position / factor * base^(-2i / dims);  the rest of the head is left as it
// is. (HuggingFace's Llama rotates (x[i], x[i + dims/2]) instead; the GGUF converter permutes the
// rows of attn_q and attn_k so that the adjacent-pair form computes the same thing.) `factor` is
// the linear ("position interpolation") scaling of rope.scaling.factor: 1 means none.
#pragma once

#include <cstdint>
#include <span>

#include "ecr/nn/ops.hpp"

namespace ecr::nn {

struct Rope {
  std::int64_t dims = 0;  // rotated values per head (rope.dimension_count), even
  float base = 10000.0f;  // rope.freq_base
  float factor = 1.0f;    // positions are divided by it (rope.scaling.factor, linear)
};

// Rotates, in place, every head of row r of x (rows, heads * head_dim) for position positions[r].
void rope(Matrix x, std::int64_t head_dim, std::span<const std::int64_t> positions, const Rope& rope);

}  // namespace ecr::nn
