// The co-occurrence product G = C E on the device (CPU twin: CooccurrenceMatrix::multiply), for
// the rec prompt's global entity table (docs/math.md section 4) when the bundle does not store it.
#pragma once

#include "ecr/core/tensor.hpp"
#include "ecr/device/cuda.hpp"
#include "ecr/kg/cooccurrence.hpp"

namespace ecr::cuda {

// C (N x N, CSR on the host) times E (N, H) f32 on the device -> (N, H) f32 on the device, through
// cuSPARSE's SpMM. ShapeError when E is not an f32 matrix of N rows.
Tensor cooccurrence_product(Stream& stream, const CooccurrenceMatrix& c, const Tensor& entities);

}  // namespace ecr::cuda
