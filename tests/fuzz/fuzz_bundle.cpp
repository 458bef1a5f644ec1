// libFuzzer entry point for the bundle reader: any byte string must end in a FormatError or a
// load whose tensors can all be read. Seed corpus: tests/fuzz/make_seed.sh writes a small bundle.
#include <cstddef>
#include <cstdint>

#include "ecr/io/bundle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto bundle = ecr::Bundle::from_bytes({reinterpret_cast<const std::byte*>(data), size}, "fuzz");
    for (const auto& info : bundle.tensors()) {
      const ecr::Tensor t = bundle.tensor(info.name);
      const auto* p = static_cast<const volatile std::uint8_t*>(t.raw());
      std::uint8_t acc = 0;
      for (std::size_t i = 0; i < t.nbytes(); ++i) acc ^= p[i];
      (void)acc;
    }
  } catch (const ecr::FormatError&) {
  }
  return 0;
}
