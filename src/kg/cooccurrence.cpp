// Reading the co-occurrence matrix (validated CSR) and G = C E.
#include "ecr/kg/cooccurrence.hpp"

#include <algorithm>
#include <cmath>

#include "ecr/core/error.hpp"

namespace ecr {

std::int64_t CooccurrenceMatrix::column(std::int64_t k) const {
  return indices_.dtype() == DType::i32 ? indices_.data<std::int32_t>()[k] : indices_.data<std::int64_t>()[k];
}

CooccurrenceMatrix CooccurrenceMatrix::load(const Bundle& bundle, std::int64_t num_entities) {
  if (num_entities < 1) fail<InputError>("co-occurrence: {} entities: expected at least 1", num_entities);
  return from_tensors(bundle.tensor("cooccurrence/indptr"), bundle.tensor("cooccurrence/indices"),
                      bundle.tensor("cooccurrence/values"), num_entities, fmt::format("bundle '{}'", bundle.label()));
}

CooccurrenceMatrix CooccurrenceMatrix::from_tensors(Tensor indptr_tensor, Tensor indices_tensor, Tensor values_tensor,
                                                    std::int64_t num_entities, std::string_view label) {
  if (num_entities < 1) fail<InputError>("co-occurrence: {} entities: expected at least 1", num_entities);
  CooccurrenceMatrix c;
  c.n_ = num_entities;
  c.indptr_ = std::move(indptr_tensor);
  c.indptr_.expect(DType::i64, {num_entities + 1});
  c.indices_ = std::move(indices_tensor);
  if (c.indices_.dtype() != DType::i32) c.indices_.expect_rank(DType::i64, 1);
  c.indices_.expect_rank(c.indices_.dtype(), 1);
  const std::int64_t nnz = c.indices_.numel();
  c.values_ = std::move(values_tensor);
  c.values_.expect(DType::f32, {nnz});

  const auto indptr = std::as_const(c.indptr_).span<std::int64_t>();
  const auto values = std::as_const(c.values_).span<float>();
  if (indptr.front() != 0)
    fail<FormatError>("{}: tensor 'cooccurrence/indptr': must start at 0, found {}", label, indptr.front());
  for (std::int64_t row = 0; row < num_entities; ++row) {
    const std::int64_t begin = indptr[row], end = indptr[row + 1];
    if (end < begin || end > nnz)
      fail<FormatError>("{}: tensor 'cooccurrence/indptr': entry {} is {}, expected {}..{}", label, row + 1, end, begin,
                        nnz);
    for (std::int64_t k = begin; k < end; ++k) {
      const std::int64_t col = c.column(k);
      if (col < 0 || col >= num_entities)
        fail<FormatError>("{}: tensor 'cooccurrence/indices': entry {} (row {}) is {}, not a column in [0, {})", label,
                          k, row, col, num_entities);
      if (k > begin && col <= c.column(k - 1))
        fail<FormatError>("{}: tensor 'cooccurrence/indices': row {} is not ascending at entry {}", label, row, k);
      if (!std::isfinite(values[k]) || values[k] < 0.f)
        fail<FormatError>("{}: tensor 'cooccurrence/values': entry {} (row {}) is {}, expected a finite value >= 0",
                          label, k, row, values[k]);
    }
  }
  if (indptr.back() != nnz)
    fail<FormatError>("{}: tensor 'cooccurrence/indptr': ends at {}, but there are {} entries", label, indptr.back(), nnz);
  return c;
}

float CooccurrenceMatrix::at(std::int64_t row, std::int64_t col) const {
  if (row < 0 || row >= n_ || col < 0 || col >= n_)
    fail<InputError>("co-occurrence: ({}, {}) is outside the {} x {} matrix", row, col, n_, n_);
  const auto* indptr = indptr_.data<std::int64_t>();
  for (std::int64_t k = indptr[row]; k < indptr[row + 1]; ++k)
    if (column(k) == col) return values_.data<float>()[k];
  return 0.f;
}

Tensor CooccurrenceMatrix::multiply(const Tensor& e, ThreadPool* pool) const {
  if (e.rank() != 2 || e.dim(0) != n_)
    fail<ShapeError>("co-occurrence: G = C E needs E with {} rows (N, H), found {}", n_, shape_string(e.shape()));
  e.expect_rank(DType::f32, 2);
  const auto x = e.matrix<float>();
  Tensor g = Tensor::zeros(DType::f32, {n_, e.dim(1)}, "global_entities");
  auto out = g.matrix<float>();
  const auto* indptr = indptr_.data<std::int64_t>();
  const auto* values = values_.data<float>();
  constexpr std::int64_t block = 256;  // rows per task
  auto rows = [&](std::size_t b) {
    const std::int64_t first = static_cast<std::int64_t>(b) * block, last = std::min(n_, first + block);
    for (std::int64_t row = first; row < last; ++row)
      for (std::int64_t k = indptr[row]; k < indptr[row + 1]; ++k) out.row(row) += values[k] * x.row(column(k));
  };
  const auto blocks = static_cast<std::size_t>((n_ + block - 1) / block);
  if (pool) {
    pool->parallel_for(blocks, rows);
  } else {
    for (std::size_t b = 0; b < blocks; ++b) rows(b);
  }
  return g;
}

}  // namespace ecr
