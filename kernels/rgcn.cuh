// The sparse half of the R-GCN layer (CPU twin: EntityEncoder::forward): per-relation mean
// aggregation over a CSR edge list grouped by relation and target, weighted into K channels.
// The dense half is one cuBLAS GEMM over the result (src/models/entity_encoder_cuda.cpp).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ecr::kernels {

// z is (n, (channels + 1) * in): block 0 of row i is x[i] (the root term's input) and block
// k + 1 is sum_r coeff[k, r] * mean_{j in N_r(i)} x[j], where N_r(i) = sources[indptr[r * n + i]
// .. indptr[r * n + i + 1]) and a relation without neighbours adds nothing. coeff is
// (channels, relations) fp32. x, z in T; the sums are fp32.
template <class T>
[[nodiscard]] cudaError_t rgcn_aggregate(const T* x, std::int64_t n, int in, const std::int64_t* indptr,
                                         const std::int32_t* sources, int relations, const float* coeff,
                                         int channels, T* z, cudaStream_t stream);

// Every row of y (rows, cols) becomes `row` (fp32): the bias that a GEMM with beta = 1 then adds to.
template <class T>
[[nodiscard]] cudaError_t broadcast_row(const float* row, T* y, std::int64_t rows, int cols, cudaStream_t stream);

}  // namespace ecr::kernels
