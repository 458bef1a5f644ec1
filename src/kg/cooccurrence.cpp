// Reading the co-occurrence matrix (validated CSR) and G = C E.
#include "ecr/kg/cooccurrence.hpp"

#include <cmath>

#include "ecr/core/error.hpp"

namespace ecr {

std::int64_t CooccurrenceMatrix::column(std::int64_t k) const {
  return indices_.dtype() == DType::i32 ? indices_.data<std::int32_t>()[k] : indices_.data<std::int64_t>()[k];
}

CooccurrenceMatrix CooccurrenceMatrix::load(const Bundle& bundle, std::int64_t num_entities) {
  const std::string label = fmt::format("bundle '{}'", bundle.label());
  if (num_entities < 1) fail<InputError>("co-occurrence: {} entities: expected at least 1", num_entities);
  CooccurrenceMatrix c;
  c.n_ = num_entities;
  c.indptr_ = bundle.tensor("cooccurrence/indptr", DType::i64, {num_entities + 1});
  c.indices_ = bundle.tensor("cooccurrence/indices");
  if (c.indices_.dtype() != DType::i32) c.indices_.expect_rank(DType::i64, 1);
  c.indices_.expect_rank(c.indices_.dtype(), 1);
  const std::int64_t nnz = c.indices_.numel();
  c.values_ = bundle.tensor("cooccurrence/values", DType::f32, {nnz});

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

Tensor CooccurrenceMatrix::multiply(const Tensor& e) const {
  if (e.rank() != 2 || e.dim(0) != n_)
    fail<ShapeError>("co-occurrence: G = C E needs E with {} rows (N, H), found {}", n_, shape_string(e.shape()));
  e.expect_rank(DType::f32, 2);
  const auto x = e.matrix<float>();
  Tensor g = Tensor::zeros(DType::f32, {n_, e.dim(1)}, "global_entities");
  auto out = g.matrix<float>();
  const auto* indptr = indptr_.data<std::int64_t>();
  const auto* values = values_.data<float>();
  for (std::int64_t row = 0; row < n_; ++row)
    for (std::int64_t k = indptr[row]; k < indptr[row + 1]; ++k) out.row(row) += values[k] * x.row(column(k));
  return g;
}

}  // namespace ecr
