// The bundle file: one file with a JSON metadata block and a tensor table (docs/format.md).
// Bundle reads and validates a file (memory-mapped: raw tensors are used in place);
// BundleWriter produces one, byte-identical to tools/ecr_bundle.py for the same input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ecr/core/tensor.hpp"

namespace ecr {

inline constexpr std::uint32_t kBundleVersion = 1;
inline constexpr std::uint32_t kBundleAlignment = 64;
inline constexpr int kDefaultZstdLevel = 3;

enum class Codec : std::uint8_t { raw = 0, zstd = 1 };
std::string_view codec_name(Codec codec);

// One row of the tensor table.
struct TensorInfo {
  std::string name;
  DType dtype = DType::f32;
  Codec codec = Codec::raw;
  Shape shape;
  std::uint64_t offset = 0;       // absolute byte offset of the stored data
  std::uint64_t stored_size = 0;  // bytes in the file (compressed size for zstd)
  std::uint32_t crc32 = 0;        // CRC-32 of the stored bytes
  std::uint64_t raw_size() const { return static_cast<std::uint64_t>(shape_numel(shape)) * dtype_size(dtype); }
};

struct BundleOptions {
  // Check every tensor's CRC-32 at load. Off: raw tensors are not read until used (a zstd
  // tensor's CRC is checked before it is decompressed either way).
  bool verify_checksums = true;
  // Map the file (raw tensors become zero-copy views). Off: read it into memory.
  bool memory_map = true;
};

class Bundle {
 public:
  // Opens and validates `path`; throws FormatError / IoError naming the file and the fault: the
  // header, table, bounds, zstd frame sizes and metadata (valid UTF-8 JSON, nested at most
  // kMaxJsonDepth levels, "untrained" a boolean when present). A FIFO or device is refused
  // without waiting on it.
  static Bundle open(const std::filesystem::path& path, BundleOptions options = {});
  // Validates an in-memory image (copied); `label` stands for the file name in errors.
  static Bundle from_bytes(std::span<const std::byte> bytes, std::string label = "<memory>",
                           BundleOptions options = {});

  const std::string& label() const;
  const nlohmann::json& metadata() const;
  const std::vector<TensorInfo>& tensors() const;
  bool contains(std::string_view name) const;
  const TensorInfo& info(std::string_view name) const;

  // The tensor's data, as stored: a view into the map (raw) or the buffer decompressed at its
  // first use (zstd). Throws FormatError "bundle 'x': no tensor 'name'" when absent. Safe to
  // call from many threads at once.
  Tensor tensor(std::string_view name) const;
  // Same, for a model's weights: a floating tensor (f32, f16, bf16) holding NaN or infinity is a
  // FormatError naming it and the element. Checked at the first request, once per bundle (the
  // models loaded from one bundle share the check); other dtypes pass as they are.
  Tensor finite_tensor(std::string_view name) const;
  // Same, checked: ShapeError unless dtype and shape match.
  Tensor tensor(std::string_view name, DType dtype, const Shape& shape) const;

  // Re-checks every tensor's CRC-32 against the stored bytes, then checks every tensor as
  // finite_tensor() does (decompressed, floating ones finite), zstd ones streamed through a 1 MiB
  // buffer rather than held; throws FormatError on the first fault.
  void verify() const;
  // Total file size in bytes.
  std::uint64_t file_size() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

class BundleWriter {
 public:
  // `metadata` is stored byte for byte; it must be a JSON object.
  explicit BundleWriter(std::string metadata);
  // Serialises compactly with sorted keys, as tools/ecr_bundle.py does.
  explicit BundleWriter(const nlohmann::json& metadata);

  // Adds a CPU tensor under `name` (names must be unique); the bytes are copied.
  void add(std::string name, const Tensor& tensor, Codec codec = Codec::raw, int zstd_level = kDefaultZstdLevel);

  std::vector<std::byte> bytes() const;
  void write(const std::filesystem::path& path) const;

 private:
  struct Entry {
    TensorInfo info;
    std::vector<std::byte> stored;
  };
  std::string metadata_;
  std::vector<Entry> entries_;
};

// CRC-32 (zlib polynomial) of a byte range; the checksum of the format.
std::uint32_t crc32(std::span<const std::byte> bytes);

}  // namespace ecr
