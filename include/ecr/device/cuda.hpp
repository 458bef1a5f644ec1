// The CUDA device layer: device discovery, device memory for tensors, streams, and their cuBLAS
// handles. The header is plain C++ (no CUDA headers), so hosts built without the CUDA
// toolkit include it too; in such a build `cuda::available()` is false and the rest throws
// DeviceError.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "ecr/core/tensor.hpp"

namespace ecr::cuda {

// True when this build has the CUDA backend and at least one device answers.
bool available() noexcept;
// Why `available()` is false ("built without CUDA", "no CUDA device: <driver message>"); empty if true.
std::string unavailable_reason();
int device_count();
// Makes device `index` current for the calling thread (cudaSetDevice): what it loads and runs
// next lives there. DeviceError for an index the machine lacks.
void select_device(int index);

struct DeviceInfo {
  std::string name;
  std::size_t total_memory = 0;
  int compute_major = 0, compute_minor = 0, multiprocessors = 0;
};
DeviceInfo device_info(int device = 0);

// Device copies of CPU tensors and back; the result owns its memory (freed with the last view).
Tensor to_device(const Tensor& host);
Tensor to_host(const Tensor& device);
Tensor empty_device(DType dtype, Shape shape, std::string name = {});

// One stream with its own cuBLAS handle: a session's private lane on the GPU, so
// sessions on different threads never serialise on a shared handle.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  void synchronize();
  void* native() const;   // cudaStream_t
  void* cublas() const;   // cublasHandle_t bound to this stream

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ecr::cuda
