// Eigen must not split a chunk's GEMM across its own threads (as it would under OpenMP): the
// chunk is the unit of parallel work, and its reduction order must not depend on threads.
#define EIGEN_DONT_PARALLELIZE
#include "ecr/nn/linear.hpp"

namespace ecr::nn {

void linear(ConstMatrix x, const Linear& layer, Matrix y, ThreadPool& pool, Activation activation, bool accumulate) {
  const ConstMap w = view(layer.weight);
  const float* bias = layer.bias.defined() ? layer.bias.data<float>() : nullptr;
  const std::int64_t out = w.rows();
  const std::int64_t chunks = (out + kLinearChunk - 1) / kLinearChunk;
  pool.parallel_for(static_cast<std::size_t>(chunks), [&](std::size_t c) {
    const std::int64_t begin = static_cast<std::int64_t>(c) * kLinearChunk;
    const std::int64_t width = std::min(kLinearChunk, out - begin);
    auto block = y.middleCols(begin, width);
    const auto wt = w.middleRows(begin, width).transpose();
    if (accumulate)
      block.noalias() += x * wt;
    else
      block.noalias() = x * wt;
    if (bias) block.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias + begin, width);
    if (activation != Activation::none)
      activate(activation, block);
  });
}

}  // namespace ecr::nn
