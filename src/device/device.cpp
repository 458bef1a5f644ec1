#include "ecr/device/device.hpp"

#include <charconv>

#include "ecr/core/error.hpp"
#include "ecr/device/cuda.hpp"

namespace ecr {

DeviceSpec DeviceSpec::parse(std::string_view text) {
  if (text == "cpu") return {};
  if (text == "cuda") return {Device::cuda, 0};
  if (text.starts_with("cuda:")) {
    const std::string_view digits = text.substr(5);
    int index = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (!digits.empty() && ec == std::errc() && end == digits.data() + digits.size() && index >= 0)
      return {Device::cuda, index};
  }
  fail<ConfigError>("device '{}' is not one of cpu, cuda, cuda:N", text);
}

std::string DeviceSpec::str() const { return device == Device::cuda ? "cuda:" + std::to_string(index) : "cpu"; }

void require_device(const DeviceSpec& spec) {
  if (spec.device != Device::cuda) return;
  if (!cuda::available()) fail<DeviceError>("device {}: {}", spec.str(), cuda::unavailable_reason());
  if (spec.index >= cuda::device_count())
    fail<DeviceError>("device {}: this machine has {} CUDA device(s)", spec.str(), cuda::device_count());
}

}  // namespace ecr
