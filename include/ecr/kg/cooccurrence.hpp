// CooccurrenceMatrix: ECR's sparse, row-stochastic N x N matrix C of emotion-aware entity
// co-occurrences (docs/math.md section 9), from which the rec prompt's global entity table G = C E
// is built once at load. tools/ecr_kg.py counts it from annotated dialogs; the bundle stores it
// as CSR (docs/format.md, "Co-occurrence matrix").
#pragma once

#include <cstdint>
#include <string_view>

#include "ecr/core/tensor.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/io/bundle.hpp"

namespace ecr {

class CooccurrenceMatrix {
 public:
  // Reads cooccurrence/{indptr, indices, values}: indptr i64 (N + 1) from 0 to nnz, never
  // decreasing; indices i32 or i64, ascending and distinct within a row, each in [0, N); values
  // f32, finite and >= 0. `num_entities` is the KG's N (the matrix must be N x N). Throws
  // FormatError naming the tensor and the entry, ShapeError for a dtype or shape.
  static CooccurrenceMatrix load(const Bundle& bundle, std::int64_t num_entities);
  // The same checks on tensors a host (or a test) already holds; `label` names their source in
  // errors.
  static CooccurrenceMatrix from_tensors(Tensor indptr, Tensor indices, Tensor values, std::int64_t num_entities,
                                         std::string_view label = "co-occurrence");

  std::int64_t size() const { return n_; }
  std::int64_t nnz() const { return values_.numel(); }
  const Tensor& indptr() const { return indptr_; }    // i64 (N + 1)
  const Tensor& indices() const { return indices_; }  // i32 or i64 (nnz)
  const Tensor& values() const { return values_; }    // f32 (nnz)
  // C[row, col] (0 where nothing is stored).
  float at(std::int64_t row, std::int64_t col) const;

  // G = C E for E (N, H) f32 on the CPU -> (N, H) f32. Throws ShapeError when E is not N rows.
  // Rows are split into fixed blocks across `pool` (when given): the result does not depend on it.
  Tensor multiply(const Tensor& e, ThreadPool* pool = nullptr) const;

 private:
  std::int64_t column(std::int64_t k) const;  // indices[k], whatever its integer type
  std::int64_t n_ = 0;
  Tensor indptr_, indices_, values_;
};

}  // namespace ecr
