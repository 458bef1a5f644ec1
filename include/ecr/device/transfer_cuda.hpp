// Stream-ordered copies between host and device, and host-side storage casts.
//
// cuda::to_device / to_host copy on the legacy default stream, which a cuda::Stream (created
// non-blocking) does not wait for: a kernel on the stream may start before such an upload
// lands, and such a download may read before the stream's kernels finish. Code that runs work on
// a Stream moves data with these instead.
//
// Needs a build with ECR_WITH_CUDA=ON (the functions exist only there).
#pragma once

#ifndef ECR_WITH_CUDA
#error "ecr/device/transfer_cuda.hpp needs a build of ecr with ECR_WITH_CUDA=ON"
#endif

#include "ecr/core/tensor.hpp"
#include "ecr/device/cuda.hpp"

namespace ecr::cuda {

// A device copy of a CPU tensor, ordered before everything later enqueued on `stream`.
Tensor upload(const Tensor& host, Stream& stream);
// Copies a CPU tensor into an existing device tensor of the same dtype and element count.
void upload_into(const Tensor& host, Tensor device, Stream& stream);
// A CPU copy of a device tensor after everything enqueued on `stream` so far (waits for it).
Tensor download(const Tensor& device, Stream& stream);

// A device tensor converted between f32 and f16 / bf16 on the device (round to nearest even);
// `device` itself when the dtype already matches.
Tensor convert(const Tensor& device, DType dtype, Stream& stream);

// A CPU tensor converted between f32, f16 and bf16 (round to nearest even), e.g. to store
// weights on the device in half precision. Returns `host` itself when the dtype already matches.
Tensor host_cast(const Tensor& host, DType dtype);

}  // namespace ecr::cuda
