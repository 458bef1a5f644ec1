// The CUDA device layer (built with ECR_WITH_CUDA).
#include <memory>

#include "check_cuda.hpp"
#include "ecr/device/cuda.hpp"

namespace ecr::cuda {

namespace {
// Asked once: the answer does not change while the process runs.
const std::pair<int, std::string>& probe() {
  static const std::pair<int, std::string> result = [] {
    int n = 0;
    const cudaError_t status = cudaGetDeviceCount(&n);
    if (status != cudaSuccess) return std::pair<int, std::string>{0, std::string("no CUDA device: ") + cudaGetErrorString(status)};
    if (n == 0) return std::pair<int, std::string>{0, "no CUDA device"};
    return std::pair<int, std::string>{n, ""};
  }();
  return result;
}

void require_device(const char* what) {
  if (!available()) fail<DeviceError>("{}: {}", what, unavailable_reason());
}
}  // namespace

bool available() noexcept {
  try {
    return probe().first > 0;
  } catch (...) {
    return false;
  }
}
std::string unavailable_reason() { return probe().second; }
int device_count() { return probe().first; }

void select_device(int index) {
  require_device("select_device");
  if (index < 0 || index >= device_count())
    fail<DeviceError>("select_device: no CUDA device {} (this machine has {})", index, device_count());
  ECR_CUDA_CHECK(cudaSetDevice(index));
}

DeviceInfo device_info(int device) {
  require_device("device_info");
  cudaDeviceProp prop{};
  ECR_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return {prop.name, prop.totalGlobalMem, prop.major, prop.minor, prop.multiProcessorCount};
}

Tensor empty_device(DType dtype, Shape shape, std::string name) {
  require_device("empty_device");
  const std::size_t bytes = static_cast<std::size_t>(shape_numel(shape)) * dtype_size(dtype);
  void* p = nullptr;
  ECR_CUDA_CHECK(cudaMalloc(&p, bytes == 0 ? 1 : bytes));
  std::shared_ptr<void> owner(p, [](void* q) { cudaFree(q); });
  return Tensor::wrap(p, dtype, std::move(shape), std::move(owner), StorageKind::owned, Device::cuda, std::move(name));
}

Tensor to_device(const Tensor& host) {
  if (host.device() != Device::cpu) fail<DeviceError>("to_device: tensor '{}' is not on the CPU", host.name());
  Tensor d = empty_device(host.dtype(), host.shape(), host.name());
  ECR_CUDA_CHECK(cudaMemcpy(d.raw(), host.raw(), host.nbytes(), cudaMemcpyHostToDevice));
  return d;
}

Tensor to_host(const Tensor& device) {
  if (device.device() != Device::cuda) fail<DeviceError>("to_host: tensor '{}' is not on a CUDA device", device.name());
  Tensor h = Tensor::empty(device.dtype(), device.shape(), device.name());
  ECR_CUDA_CHECK(cudaMemcpy(h.raw(), device.raw(), device.nbytes(), cudaMemcpyDeviceToHost));
  return h;
}

struct Stream::Impl {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
};

Stream::Stream() : impl_(std::make_unique<Impl>()) {
  require_device("Stream");
  ECR_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  ECR_CUDA_CHECK(cublasCreate(&impl_->cublas));
  ECR_CUDA_CHECK(cublasSetStream(impl_->cublas, impl_->stream));
  // fp32 GEMMs stay exact fp32 (no TF32) unless a caller opts into tensor-core math: parity first.
  ECR_CUDA_CHECK(cublasSetMathMode(impl_->cublas, CUBLAS_PEDANTIC_MATH));
}

Stream::~Stream() {
  if (!impl_) return;
  if (impl_->cublas) cublasDestroy(impl_->cublas);
  if (impl_->stream) cudaStreamDestroy(impl_->stream);
}

void Stream::synchronize() { ECR_CUDA_CHECK(cudaStreamSynchronize(impl_->stream)); }
void* Stream::native() const { return impl_->stream; }
void* Stream::cublas() const { return impl_->cublas; }

}  // namespace ecr::cuda
