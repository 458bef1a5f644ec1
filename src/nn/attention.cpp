#include "ecr/nn/attention.hpp"

#include <algorithm>
#include <vector>

namespace ecr::nn {

void attend(ConstMatrix q, ConstMatrix k, ConstMatrix v, Matrix out, float scale,
            std::optional<std::int64_t> causal_offset) {
  const Eigen::Index queries = q.rows();
  const Eigen::Index keys = k.rows();
  // Per-thread score buffer: grows to the largest (queries x keys) seen, then never reallocates.
  thread_local std::vector<float> buffer;
  thread_local std::vector<std::int64_t> valid;
  buffer.resize(std::max<std::size_t>(buffer.size(), static_cast<std::size_t>(queries * keys)));
  MutableMap scores(buffer.data(), queries, keys, Eigen::OuterStride<>(keys));
  scores.noalias() = (q * k.transpose()) * scale;

  valid.resize(static_cast<std::size_t>(queries));
  for (Eigen::Index i = 0; i < queries; ++i)
    valid[static_cast<std::size_t>(i)] = causal_offset ? std::clamp<std::int64_t>(i + *causal_offset + 1, 0, keys) : keys;
  softmax_rows(scores, valid);
  out.noalias() = scores * v;
}

}  // namespace ecr::nn
