// The CUDA device layer in a build without CUDA: everything says so with a DeviceError.
#ifndef ECR_WITH_CUDA

#include "ecr/device/cuda.hpp"

namespace ecr::cuda {

namespace {
[[noreturn]] void no_cuda(const char* what) { fail<DeviceError>("{}: this build of ecr has no CUDA backend (ECR_WITH_CUDA=OFF)", what); }
}  // namespace

bool available() noexcept { return false; }
std::string unavailable_reason() { return "built without CUDA (ECR_WITH_CUDA=OFF)"; }
int device_count() { return 0; }
void select_device(int) { no_cuda("select_device"); }
DeviceInfo device_info(int) { no_cuda("device_info"); }
Tensor to_device(const Tensor&) { no_cuda("to_device"); }
Tensor to_host(const Tensor&) { no_cuda("to_host"); }
Tensor empty_device(DType, Shape, std::string) { no_cuda("empty_device"); }

struct Stream::Impl {};
Stream::Stream() { no_cuda("Stream"); }
Stream::~Stream() = default;
void Stream::synchronize() {}
void* Stream::native() const { return nullptr; }
void* Stream::cublas() const { return nullptr; }

}  // namespace ecr::cuda

#endif
