// The element-wise and row-wise ops of the transformer engine, on row-major f32 matrices:
// layer norm, RMS norm, SwiGLU, GELU (tanh approximation and exact erf) and ReLU, softmax and embedding gathers. Rows are
// independent, so none of them depends on how work is split across threads.
#pragma once

#include <cstdint>
#include <span>

#include <Eigen/Core>

#include "ecr/core/tensor.hpp"
#include "ecr/nn/activation.hpp"

namespace ecr::nn {

// Ops take Eigen::Ref to row-major f32 matrices with unit inner stride: whole buffers, row
// ranges, or one attention head's columns of a (rows, heads * head_dim) buffer, all without copies.
using Matrix = Eigen::Ref<RowMatrix<float>, 0, Eigen::OuterStride<>>;
using ConstMatrix = Eigen::Ref<const RowMatrix<float>, 0, Eigen::OuterStride<>>;
using ConstMap = Eigen::Map<const RowMatrix<float>, Eigen::Unaligned, Eigen::OuterStride<>>;
using MutableMap = Eigen::Map<RowMatrix<float>, Eigen::Unaligned, Eigen::OuterStride<>>;

// A f32 tensor as (prod of leading dims, last dim).
inline ConstMap view(const Tensor& t) {
  const std::int64_t cols = t.rank() == 0 ? 1 : t.dim(-1);
  return {t.data<float>(), cols == 0 ? 0 : t.numel() / cols, cols, Eigen::OuterStride<>(cols)};
}
inline MutableMap view(Tensor& t) {
  const std::int64_t cols = t.rank() == 0 ? 1 : t.dim(-1);
  return {t.data<float>(), cols == 0 ? 0 : t.numel() / cols, cols, Eigen::OuterStride<>(cols)};
}

// LayerNorm over the last dimension: y = (x - mean) / sqrt(var + eps) * weight + bias, with the
// biased variance as torch computes it.
struct LayerNorm {
  Tensor weight;  // (D) f32
  Tensor bias;    // (D) f32
  float eps = 1e-5f;
};
// y may alias x.
void layer_norm(ConstMatrix x, const LayerNorm& norm, Matrix y);

// RMSNorm over the last dimension (Llama): y = x / sqrt(mean(x^2) + eps) * weight; no mean is
// subtracted and there is no bias.
struct RmsNorm {
  Tensor weight;  // (D) f32
  float eps = 1e-5f;
};
// y may alias x.
void rms_norm(ConstMatrix x, const RmsNorm& norm, Matrix y);

// Llama's gated MLP activation, in place on gate: gate = silu(gate) * up, silu(g) = g / (1 + e^-g).
void swiglu(Matrix gate, ConstMatrix up);

// The activation in place (ecr/nn/activation.hpp).
void activate(Activation activation, Matrix x);

// Softmax of each row, in place, over its first `valid[i]` entries; the rest become 0.
// An empty `valid` means every entry of every row.
void softmax_rows(Matrix x, std::span<const std::int64_t> valid = {});

// out[i] = table[ids[i]]; InputError when an id is outside [0, table rows). `what` names the
// table in that message ("token id", "position").
void gather_rows(ConstMatrix table, std::span<const std::int32_t> ids, Matrix out, const char* what);

}  // namespace ecr::nn
