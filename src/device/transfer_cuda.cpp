#include "ecr/device/transfer_cuda.hpp"

#include "cast.cuh"
#include "tensor_cuda.hpp"

namespace ecr::cuda {

Tensor upload(const Tensor& host, Stream& stream) {
  Tensor d = empty_device(host.dtype(), host.shape(), host.name());
  upload_into(host, d, stream);
  return d;
}

void upload_into(const Tensor& host, Tensor device, Stream& stream) {
  if (host.device() != Device::cpu) fail<DeviceError>("upload: tensor '{}' is not on the CPU", host.name());
  detail::expect_device(device, "upload");
  if (host.dtype() != device.dtype() || host.numel() != device.numel())
    fail<ShapeError>("upload: tensor '{}' ({} {}) does not fit device tensor '{}' ({} {})", host.name(),
                     dtype_name(host.dtype()), shape_string(host.shape()), device.name(), dtype_name(device.dtype()),
                     shape_string(device.shape()));
  if (host.nbytes() == 0) return;
  // Pageable sources are staged before this returns, so `host` may go away right after.
  ECR_CUDA_CHECK(cudaMemcpyAsync(device.raw(), host.raw(), host.nbytes(), cudaMemcpyHostToDevice,
                                 detail::native(stream)));
}

Tensor download(const Tensor& device, Stream& stream) {
  detail::expect_device(device, "download");
  Tensor h = Tensor::empty(device.dtype(), device.shape(), device.name());
  if (h.nbytes() > 0)
    ECR_CUDA_CHECK(cudaMemcpyAsync(h.raw(), device.raw(), h.nbytes(), cudaMemcpyDeviceToHost, detail::native(stream)));
  stream.synchronize();
  return h;
}

Tensor convert(const Tensor& device, DType dtype, Stream& stream) {
  detail::expect_device(device, "convert");
  if (device.dtype() == dtype) return device;
  Tensor out = empty_device(dtype, device.shape(), device.name());
  const cudaStream_t s = detail::native(stream);
  const std::int64_t n = device.numel();
  cudaError_t status = cudaErrorInvalidValue;
  if (device.dtype() == DType::f32 && dtype == DType::f16)
    status = kernels::cast(detail::ptr<float>(device), detail::ptr<__half>(out), n, s);
  else if (device.dtype() == DType::f32 && dtype == DType::bf16)
    status = kernels::cast(detail::ptr<float>(device), detail::ptr<__nv_bfloat16>(out), n, s);
  else if (device.dtype() == DType::f16 && dtype == DType::f32)
    status = kernels::cast(detail::ptr<__half>(device), detail::ptr<float>(out), n, s);
  else if (device.dtype() == DType::bf16 && dtype == DType::f32)
    status = kernels::cast(detail::ptr<__nv_bfloat16>(device), detail::ptr<float>(out), n, s);
  else
    fail<ShapeError>("convert: tensor '{}': no device conversion from {} to {}", device.name(),
                     dtype_name(device.dtype()), dtype_name(dtype));
  ECR_CUDA_CHECK(status);
  return out;
}

Tensor host_cast(const Tensor& host, DType dtype) {
  if (host.device() != Device::cpu) fail<DeviceError>("host_cast: tensor '{}' is not on the CPU", host.name());
  if (host.dtype() == dtype) return host;
  const Tensor f32 = host.to_f32();  // ShapeError for non-floating dtypes
  Tensor out = Tensor::empty(dtype, host.shape(), host.name());
  const auto in = f32.span<float>();
  switch (dtype) {
    case DType::f32: return f32;
    case DType::f16: {
      auto o = out.span<Eigen::half>();
      for (std::size_t i = 0; i < in.size(); ++i) o[i] = Eigen::half(in[i]);
      return out;
    }
    case DType::bf16: {
      auto o = out.span<Eigen::bfloat16>();
      for (std::size_t i = 0; i < in.size(); ++i) o[i] = Eigen::bfloat16(in[i]);
      return out;
    }
    default: break;
  }
  fail<ShapeError>("host_cast: tensor '{}': cannot convert to {}", host.name(), dtype_name(dtype));
}

}  // namespace ecr::cuda
