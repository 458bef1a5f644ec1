#include "ecr/nn/rope.hpp"

#include <cmath>
#include <vector>

#include "ecr/core/error.hpp"

namespace ecr::nn {

void rope(Matrix x, std::int64_t head_dim, std::span<const std::int64_t> positions, const Rope& rope) {
  if (static_cast<std::int64_t>(positions.size()) != x.rows() || head_dim <= 0 || x.cols() % head_dim != 0 ||
      rope.dims % 2 != 0 || rope.dims > head_dim)
    fail<ShapeError>("rope: {} positions for {} rows of width {}, head_dim {}, {} rotated dims", positions.size(),
                     x.rows(), x.cols(), head_dim, rope.dims);
  const std::int64_t pairs = rope.dims / 2;
  // The angles' frequencies once per call; the angle itself in double, so that a long position's
  // angle keeps its precision before the cosine.
  thread_local std::vector<double> inv_freq;
  inv_freq.resize(static_cast<std::size_t>(pairs));
  for (std::int64_t i = 0; i < pairs; ++i)
    inv_freq[static_cast<std::size_t>(i)] =
        std::pow(static_cast<double>(rope.base), -2.0 * static_cast<double>(i) / static_cast<double>(rope.dims));
  const std::int64_t heads = x.cols() / head_dim;
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const double position = static_cast<double>(positions[static_cast<std::size_t>(r)]) / rope.factor;
    float* row = x.row(r).data();
    for (std::int64_t i = 0; i < pairs; ++i) {
      const double angle = position * inv_freq[static_cast<std::size_t>(i)];
      const auto c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
      for (std::int64_t h = 0; h < heads; ++h) {
        float* pair = row + h * head_dim + 2 * i;
        const float x0 = pair[0], x1 = pair[1];
        pair[0] = x0 * c - x1 * s;
        pair[1] = x0 * s + x1 * c;
      }
    }
  }
}

}  // namespace ecr::nn
