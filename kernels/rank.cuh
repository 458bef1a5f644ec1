// Ranking rows of scores on the device (CPU twin: the recommender's partial_sort with
// ranks_before): each row sorted by score, higher first, equal scores by the lower column.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace ecr::kernels {

// Bytes of scratch sort_rows needs for `rows` rows of `cols` scores.
[[nodiscard]] cudaError_t sort_rows_workspace(std::int64_t rows, int cols, std::size_t* bytes);

// Row r of scores (rows, cols) sorted into sorted_scores / sorted_ids (rows, cols): descending
// score, ties in ascending column order (a stable sort of the ids 0 .. cols - 1). `offsets` is
// device scratch of rows + 1 ints; `workspace` holds sort_rows_workspace bytes.
[[nodiscard]] cudaError_t sort_rows(const float* scores, std::int64_t rows, int cols, float* sorted_scores,
                                    std::int32_t* ids, std::int32_t* sorted_ids, std::int32_t* offsets,
                                    void* workspace, std::size_t workspace_bytes, cudaStream_t stream);

}  // namespace ecr::kernels
