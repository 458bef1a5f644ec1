// The CUDA device layer. Without a GPU (or without the CUDA backend) these tests check that
// every entry point says so with a DeviceError, and skip the device round trips with a message.
#include "ecr/device/cuda.hpp"
#include "support.hpp"

using namespace ecr;

TEST_CASE("cuda device: round trip host -> device -> host, or a clear DeviceError") {
  const Tensor host = Tensor::from_vector<float>({1.f, -2.f, 3.5f}, {3}, "x");
  if (!cuda::available()) {
    CHECK_FALSE(cuda::unavailable_reason().empty());
    CHECK_THROWS_AS(cuda::to_device(host), DeviceError);
    CHECK_THROWS_AS(cuda::Stream(), DeviceError);
    MESSAGE("skipped device round trip: " << cuda::unavailable_reason());
    return;
  }
  const auto info = cuda::device_info(0);
  MESSAGE("device: " << info.name);
  const Tensor dev = cuda::to_device(host);
  CHECK(dev.device() == Device::cuda);
  CHECK_THROWS_AS(dev.data<float>(), DeviceError);  // host access to device memory is refused
  const Tensor back = cuda::to_host(dev);
  CHECK(back.span<float>()[2] == 3.5f);
  cuda::Stream stream;
  CHECK(stream.cublas() != nullptr);
  stream.synchronize();
}
