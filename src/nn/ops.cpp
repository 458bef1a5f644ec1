#include "ecr/nn/ops.hpp"

#include <cmath>

#include <unsupported/Eigen/SpecialFunctions>

namespace ecr::nn {

void layer_norm(ConstMatrix x, const LayerNorm& norm, Matrix y) {
  const ConstMap weight = view(norm.weight), bias = view(norm.bias);
  const auto gamma = weight.row(0).array();
  const auto beta = bias.row(0).array();
  const float d = static_cast<float>(x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const auto row = x.row(i).array();
    const float mean = row.sum() / d;
    const float var = (row - mean).square().sum() / d;
    const float inv_std = 1.0f / std::sqrt(var + norm.eps);
    y.row(i).array() = (row - mean) * inv_std * gamma + beta;
  }
}

void rms_norm(ConstMatrix x, const RmsNorm& norm, Matrix y) {
  const auto gamma = view(norm.weight).row(0).array();
  const float d = static_cast<float>(x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const auto row = x.row(i).array();
    const float inv_rms = 1.0f / std::sqrt(row.square().sum() / d + norm.eps);
    y.row(i).array() = row * inv_rms * gamma;
  }
}

void swiglu(Matrix gate, ConstMatrix up) {
  for (Eigen::Index i = 0; i < gate.rows(); ++i) {
    auto g = gate.row(i).array();
    g = g / (1.0f + (-g).exp()) * up.row(i).array();
  }
}

// Eigen's vectorised tanh and erf keep this op a small fraction of an MLP's GEMM time.
void activate(Activation activation, Matrix x) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  constexpr float kInvSqrt2 = 0.7071067811865476f;
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    auto v = x.row(i).array();
    switch (activation) {
      case Activation::none: break;
      case Activation::relu: v = v.max(0.0f); break;
      case Activation::gelu_tanh:
        v = 0.5f * v * (1.0f + (kSqrt2OverPi * (v + 0.044715f * v.cube())).tanh());
        break;
      case Activation::gelu_erf:
        v = 0.5f * v * (1.0f + (v * kInvSqrt2).erf());
        break;
    }
  }
}

void softmax_rows(Matrix x, std::span<const std::int64_t> valid) {
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const Eigen::Index n = valid.empty() ? x.cols() : static_cast<Eigen::Index>(valid[static_cast<std::size_t>(i)]);
    auto row = x.row(i);
    if (n <= 0) {
      row.setZero();
      continue;
    }
    auto head = row.head(n).array();
    const float max = head.maxCoeff();
    head = (head - max).exp();
    head /= head.sum();
    row.tail(x.cols() - n).setZero();
  }
}

void gather_rows(ConstMatrix table, std::span<const std::int32_t> ids, Matrix out, const char* what) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::int32_t id = ids[i];
    if (id < 0 || id >= table.rows())
      fail<InputError>("{} {} is outside [0, {})", what, id, table.rows());
    out.row(static_cast<Eigen::Index>(i)) = table.row(id);
  }
}

}  // namespace ecr::nn
