// libFuzzer entry point for the GGUF reader: any byte string must end in a FormatError or a file
// whose every value converts and whose every tensor's bytes can be read. Seed corpus:
// tests/fuzz/make_gguf_seed.py writes small GGUFWriter files (.ci/run).
#include <cstddef>
#include <cstdint>

#include "ecr/io/gguf.hpp"

namespace {

// Reads every element, arrays of arrays included.
std::size_t touch(const ecr::gguf::Value& v) {
  using ecr::gguf::ValueType;
  switch (v.type()) {
    case ValueType::string: return v.as<std::string_view>().size();
    case ValueType::array: {
      std::size_t n = 0;
      if (v.element_type() == ValueType::string) {
        for (auto s : v.as<std::vector<std::string_view>>()) n += s.size();
      } else if (v.element_type() == ValueType::u64) {
        n += v.as<std::vector<std::uint64_t>>().size();
      } else if (v.element_type() == ValueType::boolean) {
        n += v.as<std::vector<bool>>().size();
      }
      for (const auto& e : v.as<std::vector<ecr::gguf::Value>>()) n += touch(e);
      return n;
    }
    case ValueType::f64: return static_cast<std::size_t>(v.as<double>() != 0);
    case ValueType::boolean: return v.as<bool>();
    default: return v.size();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto file = ecr::gguf::File::from_bytes({reinterpret_cast<const std::byte*>(data), size}, "fuzz");
    volatile std::size_t sink = 0;
    for (const auto& kv : file.metadata()) sink = sink + touch(file.value(kv.key));
    for (const auto& info : file.tensors()) {
      if (!info.traits().supported) continue;
      const auto view = file.tensor(info.name);
      std::uint8_t acc = 0;
      for (std::byte b : view.bytes) acc ^= static_cast<std::uint8_t>(b);
      sink = sink + acc;
    }
  } catch (const ecr::FormatError&) {
  }
  return 0;
}
