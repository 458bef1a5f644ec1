// Typed errors. Every failure that a host can provoke with bad input (a file, a tensor, a dialog)
// surfaces as an ecr::Error whose kind says what went wrong and whose message names the thing
// (file, tensor, field) and what was expected.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace ecr {

enum class ErrorKind {
  format,  // a file is not what it claims to be (magic, bounds, checksum, JSON)
  shape,   // a tensor's shape or dtype differs from what the model needs
  input,   // a request is malformed (empty dialog, unknown entity, invalid UTF-8)
  io,      // the operating system refused (open, read, map)
  device,  // CUDA or cuBLAS reported a failure or no device is present
  config,  // an option or a bundle's metadata asks for something unsupported
};

constexpr std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::format: return "format error";
    case ErrorKind::shape: return "shape error";
    case ErrorKind::input: return "input error";
    case ErrorKind::io: return "io error";
    case ErrorKind::device: return "device error";
    case ErrorKind::config: return "config error";
  }
  return "error";
}

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message)
      : std::runtime_error(std::string(to_string(kind)) + ": " + message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// The subclasses let callers catch one family (catch (const ecr::FormatError&)) and let tests
// check the kind with CHECK_THROWS_AS.
#define ECR_DEFINE_ERROR(Name, kind_value)                                  \
  class Name : public Error {                                               \
   public:                                                                  \
    explicit Name(std::string message) : Error(kind_value, std::move(message)) {} \
  };
ECR_DEFINE_ERROR(FormatError, ErrorKind::format)
ECR_DEFINE_ERROR(ShapeError, ErrorKind::shape)
ECR_DEFINE_ERROR(InputError, ErrorKind::input)
ECR_DEFINE_ERROR(IoError, ErrorKind::io)
ECR_DEFINE_ERROR(DeviceError, ErrorKind::device)
ECR_DEFINE_ERROR(ConfigError, ErrorKind::config)
#undef ECR_DEFINE_ERROR

// fmt-style helpers: throw_format("{}: tensor '{}' ...", path, name).
template <class E, class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw E(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace ecr
