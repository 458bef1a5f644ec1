// Where a request runs: the CPU or one CUDA device, named as CTranslate2 names it (a Device and a
// device index). Plain C++, in every build: a build without CUDA still parses "cuda:0" and then
// refuses it with a DeviceError that says why.
#pragma once

#include <string>
#include <string_view>

#include "ecr/core/tensor.hpp"

namespace ecr {

struct DeviceSpec {
  Device device = Device::cpu;
  int index = 0;  // the CUDA device ordinal

  // "cpu", "cuda" (device 0) or "cuda:N"; ConfigError on anything else.
  static DeviceSpec parse(std::string_view text);
  std::string str() const;  // "cpu" or "cuda:N"
  bool operator==(const DeviceSpec&) const = default;
};

// Throws DeviceError unless `spec` can run here: the build has the CUDA backend, a driver answers
// and the ordinal names one of its devices. The CPU always can.
void require_device(const DeviceSpec& spec);

}  // namespace ecr
