#include "ecr/nn/rank_cuda.hpp"

#include <algorithm>
#include <climits>

#include "../device/tensor_cuda.hpp"
#include "rank.cuh"

namespace ecr::cuda {

using detail::native;
using detail::ptr;

void score_rows(Stream& stream, const Tensor& z, const Tensor& table, Tensor scores, GemmMath math) {
  detail::expect_matrix(z, "score_rows");
  detail::expect_matrix(table, "score_rows");
  detail::expect_device(scores, "score_rows");
  if (z.rank() != 2 || table.rank() != 2 || scores.rank() != 2 || scores.dtype() != DType::f32 ||
      scores.dim(0) != z.dim(0) || scores.dim(1) != table.dim(0))
    fail<ShapeError>("score_rows: z '{}' {} and table '{}' {} need f32 scores ({}, {}), found '{}' {} {}", z.name(),
                     shape_string(z.shape()), table.name(), shape_string(table.shape()), z.dim(0), table.dim(0),
                     scores.name(), dtype_name(scores.dtype()), shape_string(scores.shape()));
  gemm(stream, z, false, table, true, scores, 1.0f, 0.0f, math);
}

Tensor score_rows(Stream& stream, const Tensor& z, const Tensor& table, GemmMath math) {
  detail::expect_matrix(z, "score_rows");
  detail::expect_matrix(table, "score_rows");
  Tensor scores = empty_device(DType::f32, {z.rank() == 2 ? z.dim(0) : 0, table.rank() == 2 ? table.dim(0) : 0},
                               "scores");
  score_rows(stream, z, table, scores, math);
  return scores;
}

std::vector<std::vector<RankedItem>> top_k_rows(Stream& stream, const Tensor& scores, std::int64_t k) {
  detail::expect_device(scores, "top_k_rows");
  if (scores.rank() != 2 || scores.dtype() != DType::f32)
    fail<ShapeError>("top_k_rows: scores '{}' must be an f32 (rows, items) matrix, found {} {}", scores.name(),
                     dtype_name(scores.dtype()), shape_string(scores.shape()));
  if (k < 0) fail<InputError>("top_k_rows: k is {}, expected k >= 0", k);
  const std::int64_t rows = scores.dim(0), cols = scores.dim(1);
  if (rows * cols > INT_MAX)
    fail<ShapeError>("top_k_rows: {} x {} scores exceed the sort's 2^31 - 1 entries", rows, cols);
  k = std::min(k, cols);
  std::vector<std::vector<RankedItem>> out(static_cast<std::size_t>(rows));
  if (k == 0 || rows == 0) return out;

  const int n = static_cast<int>(cols);
  std::size_t bytes = 0;
  ECR_CUDA_CHECK(kernels::sort_rows_workspace(rows, n, &bytes));
  const Tensor sorted = empty_device(DType::f32, {rows, cols}, "sorted scores");
  const Tensor ids = empty_device(DType::i32, {rows, cols}, "ids");
  const Tensor sorted_ids = empty_device(DType::i32, {rows, cols}, "sorted ids");
  const Tensor offsets = empty_device(DType::i32, {rows + 1}, "row offsets");
  const Tensor workspace = empty_device(DType::u8, {static_cast<std::int64_t>(std::max<std::size_t>(bytes, 1))},
                                        "sort workspace");
  ECR_CUDA_CHECK(kernels::sort_rows(ptr<float>(scores), rows, n, ptr<float>(sorted), ptr<std::int32_t>(ids),
                                    ptr<std::int32_t>(sorted_ids), ptr<std::int32_t>(offsets), ptr<std::uint8_t>(workspace), bytes,
                                    native(stream)));

  // The first k columns of each sorted row.
  std::vector<float> top_scores(static_cast<std::size_t>(rows * k));
  std::vector<std::int32_t> top_ids(static_cast<std::size_t>(rows * k));
  const auto pitch = static_cast<std::size_t>(cols);
  const auto width = static_cast<std::size_t>(k);
  ECR_CUDA_CHECK(cudaMemcpy2DAsync(top_scores.data(), width * sizeof(float), sorted.raw(), pitch * sizeof(float),
                                   width * sizeof(float), static_cast<std::size_t>(rows), cudaMemcpyDeviceToHost,
                                   native(stream)));
  ECR_CUDA_CHECK(cudaMemcpy2DAsync(top_ids.data(), width * sizeof(std::int32_t), sorted_ids.raw(),
                                   pitch * sizeof(std::int32_t), width * sizeof(std::int32_t),
                                   static_cast<std::size_t>(rows), cudaMemcpyDeviceToHost, native(stream)));
  stream.synchronize();  // the host vectors are filled and the scratch may be freed
  for (std::int64_t r = 0; r < rows; ++r) {
    auto& row = out[static_cast<std::size_t>(r)];
    row.reserve(width);
    for (std::int64_t j = 0; j < k; ++j)
      row.push_back({top_ids[static_cast<std::size_t>(r * k + j)], top_scores[static_cast<std::size_t>(r * k + j)]});
  }
  return out;
}

}  // namespace ecr::cuda
