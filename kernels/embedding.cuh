// Row gathers (CPU twin: nn::gather_rows, and GPT-2's token + position embedding).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ecr::kernels {

// out[i] = table[ids[i]] (+ positions[first + i] when `positions` is given), i < n, rows of
// `cols` elements. `first` is first_host + *first_device (first_device may be null), so a
// captured CUDA graph can read the position from device memory. Host wrappers validate ids; an
// id or position out of range still never reads outside a table, it yields a row of zeros.
template <class T>
[[nodiscard]] cudaError_t embed(const std::int32_t* ids, std::int64_t n, const T* table, std::int64_t table_rows,
                                const T* positions, std::int64_t position_rows, std::int64_t first_host,
                                const std::int32_t* first_device, T* out, int cols, cudaStream_t stream);

}  // namespace ecr::kernels
