// Writing a bundle. The layout rules (table order, zero padding to 64 bytes, ZSTD_compress at the
// caller's level) are what make this writer and tools/ecr_bundle.py byte-identical.
#include <zstd.h>

#include <cstring>
#include <set>

#include "ecr/core/utf8.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/io/output_file.hpp"

namespace ecr {

namespace {

template <class T>
void put_le(std::vector<std::byte>& out, T v) {
  const auto* p = reinterpret_cast<const std::byte*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

std::uint64_t align_up(std::uint64_t x) { return (x + kBundleAlignment - 1) / kBundleAlignment * kBundleAlignment; }

}  // namespace

BundleWriter::BundleWriter(std::string metadata) : metadata_(std::move(metadata)) {
  if (!is_valid_utf8(metadata_)) fail<InputError>("bundle metadata is not valid UTF-8");
  auto parsed = nlohmann::json::parse(metadata_, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) fail<InputError>("bundle metadata must be a JSON object");
}

BundleWriter::BundleWriter(const nlohmann::json& metadata) : BundleWriter(metadata.dump()) {}

void BundleWriter::add(std::string name, const Tensor& tensor, Codec codec, int zstd_level) {
  if (name.empty() || name.size() > 4096 || name.find('\0') != std::string::npos || !is_valid_utf8(name))
    fail<InputError>("tensor name '{}' must be 1..4096 bytes of NUL-free UTF-8", name);
  for (const auto& e : entries_)
    if (e.info.name == name) fail<InputError>("tensor '{}' added twice", name);
  if (tensor.rank() > 8) fail<ShapeError>("tensor '{}': rank {} (at most 8)", name, tensor.rank());
  const auto* src = static_cast<const std::byte*>(tensor.raw());
  if (tensor.device() != Device::cpu) fail<DeviceError>("tensor '{}': only CPU tensors can be written", name);
  if (is_block_type(tensor.dtype()))
    fail<ShapeError>("tensor '{}': {} is not a bundle dtype (docs/format.md)", name, dtype_name(tensor.dtype()));

  Entry e;
  e.info.name = std::move(name);
  e.info.dtype = tensor.dtype();
  e.info.codec = codec;
  e.info.shape = tensor.shape();
  if (codec == Codec::raw) {
    e.stored.assign(src, src + tensor.nbytes());
  } else {
    e.stored.resize(ZSTD_compressBound(tensor.nbytes()));
    const std::size_t n = ZSTD_compress(e.stored.data(), e.stored.size(), src, tensor.nbytes(), zstd_level);
    if (ZSTD_isError(n)) fail<InputError>("tensor '{}': zstd: {}", e.info.name, ZSTD_getErrorName(n));
    e.stored.resize(n);
  }
  e.info.stored_size = e.stored.size();
  e.info.crc32 = crc32(e.stored);
  entries_.push_back(std::move(e));
}

std::vector<std::byte> BundleWriter::bytes() const {
  std::vector<std::byte> table;
  std::uint64_t cursor = 0;  // offsets are assigned below, once the table size is known
  // The table's size does not depend on the offsets, so build it twice: once to measure.
  auto build_table = [&](std::uint64_t table_end) {
    table.clear();
    cursor = table_end;
    for (const auto& e : entries_) {
      put_le<std::uint32_t>(table, static_cast<std::uint32_t>(e.info.name.size()));
      const auto* n = reinterpret_cast<const std::byte*>(e.info.name.data());
      table.insert(table.end(), n, n + e.info.name.size());
      put_le<std::uint8_t>(table, static_cast<std::uint8_t>(e.info.dtype));
      put_le<std::uint8_t>(table, static_cast<std::uint8_t>(e.info.codec));
      put_le<std::uint8_t>(table, static_cast<std::uint8_t>(e.info.shape.size()));
      put_le<std::uint8_t>(table, 0);
      for (auto d : e.info.shape) put_le<std::uint64_t>(table, static_cast<std::uint64_t>(d));
      const std::uint64_t offset = align_up(cursor);
      put_le<std::uint64_t>(table, offset);
      put_le<std::uint64_t>(table, e.info.stored_size);
      put_le<std::uint32_t>(table, e.info.crc32);
      put_le<std::uint32_t>(table, 0);
      cursor = offset + e.info.stored_size;
    }
  };
  const std::uint64_t meta_off = 64;
  const std::uint64_t table_off = meta_off + metadata_.size();
  build_table(0);
  const std::uint64_t table_end = table_off + table.size();
  build_table(table_end);

  std::vector<std::byte> out;
  out.reserve(cursor);
  out.insert(out.end(), reinterpret_cast<const std::byte*>("ECRBUNDL"), reinterpret_cast<const std::byte*>("ECRBUNDL") + 8);
  put_le<std::uint32_t>(out, kBundleVersion);
  put_le<std::uint32_t>(out, kBundleAlignment);
  put_le<std::uint64_t>(out, meta_off);
  put_le<std::uint64_t>(out, metadata_.size());
  put_le<std::uint64_t>(out, table_off);
  put_le<std::uint64_t>(out, table.size());
  put_le<std::uint64_t>(out, entries_.size());
  const auto* meta = reinterpret_cast<const std::byte*>(metadata_.data());
  put_le<std::uint32_t>(out, crc32({meta, metadata_.size()}));
  put_le<std::uint32_t>(out, crc32(table));
  out.insert(out.end(), meta, meta + metadata_.size());
  out.insert(out.end(), table.begin(), table.end());
  for (const auto& e : entries_) {
    out.resize(align_up(out.size()), std::byte{0});
    out.insert(out.end(), e.stored.begin(), e.stored.end());
  }
  return out;
}

void BundleWriter::write(const std::filesystem::path& path) const {
  const auto data = bytes();
  // Through a temporary file and a rename: a crash or a full disk never leaves half a bundle.
  OutputFile out(path);
  out.write(data);
  out.commit();
}

}  // namespace ecr
