// Reading a bundle: every size and offset is checked before it is used, in the order of
// docs/format.md, so that a truncated or hostile file ends in a FormatError, never in a read
// outside the image.
#include <zlib.h>
#ifdef ECR_WITH_ISAL
#include <isa-l/crc.h>
#endif
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <type_traits>
#include <unordered_map>

#include "ecr/core/json_depth.hpp"
#include "ecr/core/utf8.hpp"
#include "ecr/io/bundle.hpp"
#include "mapped_file.hpp"

namespace ecr {

namespace {

constexpr char kMagic[8] = {'E', 'C', 'R', 'B', 'U', 'N', 'D', 'L'};
constexpr std::size_t kHeaderSize = 64;
constexpr int kMaxRank = 8;
constexpr std::uint32_t kMaxNameLength = 4096;
// zstd cannot expand a frame by more than this: each block of at most 128 KiB needs at least a
// 3-byte header. A declared size beyond it is a lie, and refusing it stops allocation bombs.
constexpr std::uint64_t kMaxZstdRatio = (128 * 1024) / 3 + 1;

// Little-endian reads through memcpy: the image has no alignment guarantee for these fields.
template <class T>
T load_le(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;  // the format is little-endian and so is every platform ecr builds for
}

// Walks the table with bounds checks; every read names what it was reading.
class Cursor {
 public:
  Cursor(std::span<const std::byte> bytes, const std::string& label) : bytes_(bytes), label_(label) {}
  template <class T>
  T read(std::string_view what, std::size_t entry) {
    need(sizeof(T), what, entry);
    T v = load_le<T>(bytes_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }
  std::string_view read_bytes(std::size_t n, std::string_view what, std::size_t entry) {
    need(n, what, entry);
    std::string_view s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  bool done() const { return pos_ == bytes_.size(); }

 private:
  void need(std::size_t n, std::string_view what, std::size_t entry) const {
    if (bytes_.size() - pos_ < n)
      fail<FormatError>("bundle '{}': tensor table ends inside entry {} (reading {})", label_, entry, what);
  }
  std::span<const std::byte> bytes_;
  const std::string& label_;
  std::size_t pos_ = 0;
};

// The first element of `count` elements of `dtype` at `bytes` that is NaN or infinite, as its
// index from `first` ("element 12 is nan"), or "" (so too for dtypes that are not floating).
// One pass over the bits, so f16 and bf16 need no conversion: with the sign cleared, a value is
// NaN or infinite exactly when its bits, as a signed integer, are at least the exponent mask. A
// block's largest such value is a max reduction with no early exit, which the compiler vectorises
// even for baseline x86-64: every weight of a model passes through here at load, so the scan must
// run at memory speed. A block with a hit is searched again for the first one.
std::string first_non_finite(DType dtype, const std::byte* bytes, std::size_t count, std::uint64_t first = 0) {
  const auto scan = [&](auto type, auto exponent_mask) -> std::string {
    using Bits = decltype(type);
    using Signed = std::make_signed_t<Bits>;
    constexpr auto kMagnitude = static_cast<Bits>(~(Bits{1} << (8 * sizeof(Bits) - 1)));
    constexpr std::size_t kBlock = 4096;
    const auto at = [&](std::size_t i) {
      Bits bits;
      std::memcpy(&bits, bytes + i * sizeof(Bits), sizeof(Bits));
      return bits;
    };
    for (std::size_t begin = 0; begin < count; begin += kBlock) {
      const std::size_t end = std::min(count, begin + kBlock);
      Signed largest = 0;
      for (std::size_t i = begin; i < end; ++i)
        largest = std::max(largest, static_cast<Signed>(at(i) & kMagnitude));
      if (largest < static_cast<Signed>(exponent_mask)) continue;
      for (std::size_t i = begin; i < end; ++i) {
        const Bits bits = at(i);
        if ((bits & exponent_mask) != exponent_mask) continue;
        const Bits mantissa = bits & static_cast<Bits>(~exponent_mask & kMagnitude);
        return fmt::format("element {} is {}", first + i, mantissa ? "nan" : "inf");
      }
    }
    return {};
  };
  switch (dtype) {
    case DType::f32: return scan(std::uint32_t{}, std::uint32_t{0x7F800000});
    case DType::f16: return scan(std::uint16_t{}, std::uint16_t{0x7C00});
    case DType::bf16: return scan(std::uint16_t{}, std::uint16_t{0x7F80});
    default: return {};
  }
}

std::string first_non_finite(const Tensor& t) {
  return first_non_finite(t.dtype(), static_cast<const std::byte*>(t.raw()), static_cast<std::size_t>(t.numel()));
}

}  // namespace

std::string_view codec_name(Codec codec) { return codec == Codec::raw ? "raw" : "zstd"; }

// zlib's CRC-32 (gzip's reflected polynomial). With ISA-L the same checksum is folded with
// PCLMULQDQ where the CPU has it (ISA-L picks at run time): about 6x zlib's speed here, and the
// checksums are most of a verified load.
std::uint32_t crc32(std::span<const std::byte> bytes) {
  std::uint32_t crc = 0;  // the CRC of no bytes
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  for (std::size_t left = bytes.size(); left > 0;) {
    const auto chunk = std::min<std::size_t>(left, 1u << 30);  // zlib takes a uInt length
#ifdef ECR_WITH_ISAL
    crc = crc32_gzip_refl(crc, p, chunk);
#else
    crc = static_cast<std::uint32_t>(::crc32(crc, p, static_cast<uInt>(chunk)));
#endif
    p += chunk;
    left -= chunk;
  }
  return crc;
}

struct Bundle::Impl {
  std::string label;
  std::shared_ptr<detail::FileImage> image;
  nlohmann::json metadata;
  std::vector<TensorInfo> infos;
  std::unordered_map<std::string_view, std::size_t> index;
  // Parallel to infos, filled at first use: raw tensors are views into the image, zstd ones are
  // decompressed then (an unused component costs nothing); finite_tensor() checks a floating one
  // for NaN and infinity once. Bundles are shared across threads: each tensor has its own once
  // flags, so threads loading different parts scan their tensors at the same time. A check
  // that throws leaves its flag unset, and the next caller meets the same error.
  struct Slot {
    std::once_flag made, checked;
    Tensor tensor;
  };
  mutable std::unique_ptr<Slot[]> slots;
  bool verified = false;  // every CRC was checked at open

  // Opening reads the file in the order of docs/format.md, each stage checking what it reads
  // before the next one uses it.
  void parse(const BundleOptions& options);
  struct Header {
    std::uint64_t meta_off, meta_size, table_off, table_size, count;
    std::uint32_t meta_crc, table_crc;
  };
  Header read_header() const;
  void check_layout(const Header& header) const;
  void check_section_crcs(const Header& header, std::span<const std::byte> meta_bytes,
                          std::span<const std::byte> table_bytes) const;
  void read_metadata(std::span<const std::byte> meta_bytes);
  void read_table(const Header& header, std::span<const std::byte> table_bytes);
  TensorInfo read_entry(Cursor& cur, std::size_t e) const;
  void check_entry_data(const TensorInfo& info, std::uint64_t table_end) const;
  void index_names();
  void check_no_overlap() const;

  void check_crc(const TensorInfo& info) const;
  Tensor tensor(std::size_t i, bool check_finite) const;
  Tensor decompress(const TensorInfo& info) const;
  void verify_zstd(const TensorInfo& info) const;
};

void Bundle::Impl::parse(const BundleOptions& options) {
  const Header header = read_header();
  check_layout(header);
  const std::span<const std::byte> file = image->bytes();
  const auto meta_bytes = file.subspan(header.meta_off, header.meta_size);
  const auto table_bytes = file.subspan(header.table_off, header.table_size);
  check_section_crcs(header, meta_bytes, table_bytes);
  read_metadata(meta_bytes);
  read_table(header, table_bytes);
  index_names();
  check_no_overlap();
  // Everything is in bounds. Tensors are made at first use (tensor()).
  if (options.verify_checksums)
    for (const auto& info : infos) check_crc(info);
  verified = options.verify_checksums;
  slots = std::make_unique<Slot[]>(infos.size());
}

Bundle::Impl::Header Bundle::Impl::read_header() const {
  const std::span<const std::byte> file = image->bytes();
  if (file.size() < kHeaderSize)
    fail<FormatError>("bundle '{}': {} bytes is shorter than the 64-byte header", label, file.size());
  const std::byte* h = file.data();
  if (std::memcmp(h, kMagic, sizeof kMagic) != 0)
    fail<FormatError>("bundle '{}': bad magic (expected 'ECRBUNDL'; not an ecr bundle)", label);
  const auto version = load_le<std::uint32_t>(h + 8);
  if (version != kBundleVersion)
    fail<FormatError>("bundle '{}': version {} (this build reads version {})", label, version, kBundleVersion);
  const auto alignment = load_le<std::uint32_t>(h + 12);
  if (alignment != kBundleAlignment)
    fail<FormatError>("bundle '{}': alignment {} (expected {})", label, alignment, kBundleAlignment);
  return {load_le<std::uint64_t>(h + 16), load_le<std::uint64_t>(h + 24), load_le<std::uint64_t>(h + 32),
          load_le<std::uint64_t>(h + 40), load_le<std::uint64_t>(h + 48), load_le<std::uint32_t>(h + 56),
          load_le<std::uint32_t>(h + 60)};
}

// The metadata follows the header and the table follows the metadata, both inside the file.
void Bundle::Impl::check_layout(const Header& header) const {
  const std::uint64_t size = image->bytes().size();
  const std::uint64_t meta_off = header.meta_off, meta_size = header.meta_size;
  const std::uint64_t table_off = header.table_off, table_size = header.table_size;
  if (meta_off != kHeaderSize)
    fail<FormatError>("bundle '{}': metadata_offset {} (expected {})", label, meta_off, kHeaderSize);
  if (meta_size > size - meta_off)
    fail<FormatError>("bundle '{}': metadata of {} bytes at offset {} runs past the end of the file ({} bytes)",
                      label, meta_size, meta_off, size);
  if (table_off != meta_off + meta_size)
    fail<FormatError>("bundle '{}': table_offset {} (expected {} = metadata end)", label, table_off, meta_off + meta_size);
  if (table_size > size - table_off)
    fail<FormatError>("bundle '{}': tensor table of {} bytes at offset {} runs past the end of the file ({} bytes)",
                      label, table_size, table_off, size);
}

void Bundle::Impl::check_section_crcs(const Header& header, std::span<const std::byte> meta_bytes,
                                      std::span<const std::byte> table_bytes) const {
  // Fuzzing builds skip the two header checksums so that mutated tables reach the parser below
  // (the usual libFuzzer convention); every other build checks them.
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  if (crc32(meta_bytes) != header.meta_crc) fail<FormatError>("bundle '{}': metadata checksum mismatch", label);
  if (crc32(table_bytes) != header.table_crc) fail<FormatError>("bundle '{}': tensor table checksum mismatch", label);
#else
  (void)header, (void)meta_bytes, (void)table_bytes;
#endif
}

void Bundle::Impl::read_metadata(std::span<const std::byte> meta_bytes) {
  const std::string_view meta_text(reinterpret_cast<const char*>(meta_bytes.data()), meta_bytes.size());
  if (auto bad = utf8_error_offset(meta_text))
    fail<FormatError>("bundle '{}': metadata is not valid UTF-8 (byte {})", label, *bad);
  if (const auto nul = meta_text.find('\0'); nul != std::string_view::npos)  // the parser would stop there
    fail<FormatError>("bundle '{}': metadata is not valid JSON: a NUL byte at byte offset {}", label, nul);
  if (json_depth(meta_text) > kMaxJsonDepth)
    fail<FormatError>("bundle '{}': metadata nests arrays and objects deeper than {} levels", label, kMaxJsonDepth);
  metadata = nlohmann::json::parse(meta_text, nullptr, /*allow_exceptions=*/false);
  if (metadata.is_discarded()) fail<FormatError>("bundle '{}': metadata is not valid JSON", label);
  if (!metadata.is_object()) fail<FormatError>("bundle '{}': metadata must be a JSON object", label);
  if (const auto u = metadata.find("untrained"); u != metadata.end() && !u->is_boolean())
    fail<FormatError>("bundle '{}': metadata field 'untrained' must be true or false, found {}", label,
                      u->type_name());
}

void Bundle::Impl::read_table(const Header& header, std::span<const std::byte> table_bytes) {
  // The smallest entry (rank 0, one-byte name) is 33 bytes; more entries than that cannot fit.
  constexpr std::uint64_t kMinEntry = 4 + 1 + 4 + 8 + 8 + 4 + 4;
  if (header.count > header.table_size / kMinEntry)
    fail<FormatError>("bundle '{}': tensor_count {} cannot fit in a {}-byte table", label, header.count,
                      header.table_size);
  infos.reserve(header.count);
  Cursor cur(table_bytes, label);
  for (std::size_t e = 0; e < header.count; ++e) {
    TensorInfo info = read_entry(cur, e);
    check_entry_data(info, header.table_off + header.table_size);
    infos.push_back(std::move(info));
  }
  if (!cur.done())
    fail<FormatError>("bundle '{}': tensor table has trailing bytes after {} entries", label, header.count);
}

// One entry's fields, each checked as it is read.
TensorInfo Bundle::Impl::read_entry(Cursor& cur, std::size_t e) const {
  TensorInfo info;
  const auto name_len = cur.read<std::uint32_t>("name_length", e);
  if (name_len == 0 || name_len > kMaxNameLength)
    fail<FormatError>("bundle '{}': entry {}: name_length {} (expected 1..{})", label, e, name_len, kMaxNameLength);
  info.name = std::string(cur.read_bytes(name_len, "name", e));
  if (info.name.find('\0') != std::string::npos || !is_valid_utf8(info.name))
    fail<FormatError>("bundle '{}': entry {}: name is not NUL-free UTF-8", label, e);
  const auto dtype = cur.read<std::uint8_t>("dtype", e);
  const auto codec = cur.read<std::uint8_t>("codec", e);
  const auto rank = cur.read<std::uint8_t>("rank", e);
  const auto reserved8 = cur.read<std::uint8_t>("reserved", e);
  if (!dtype_from_code(dtype) || is_block_type(*dtype_from_code(dtype)))
    fail<FormatError>("bundle '{}': tensor '{}': unknown dtype code {}", label, info.name, dtype);
  if (codec > 1) fail<FormatError>("bundle '{}': tensor '{}': unknown codec {}", label, info.name, codec);
  if (rank > kMaxRank) fail<FormatError>("bundle '{}': tensor '{}': rank {} (at most {})", label, info.name, rank, kMaxRank);
  if (reserved8 != 0) fail<FormatError>("bundle '{}': tensor '{}': reserved byte is {} (expected 0)", label, info.name, reserved8);
  info.dtype = *dtype_from_code(dtype);
  info.codec = static_cast<Codec>(codec);
  for (int d = 0; d < rank; ++d) {
    const auto dim = cur.read<std::uint64_t>("dims", e);
    if (dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail<FormatError>("bundle '{}': tensor '{}': dimension {} is too large", label, info.name, dim);
    info.shape.push_back(static_cast<std::int64_t>(dim));
  }
  info.offset = cur.read<std::uint64_t>("data_offset", e);
  info.stored_size = cur.read<std::uint64_t>("stored_size", e);
  info.crc32 = cur.read<std::uint32_t>("crc32", e);
  if (cur.read<std::uint32_t>("reserved", e) != 0)
    fail<FormatError>("bundle '{}': tensor '{}': reserved field is not 0", label, info.name);
  return info;
}

// An entry's data: its size agrees with its shape and codec, and it lies after the table and
// inside the file.
void Bundle::Impl::check_entry_data(const TensorInfo& info, std::uint64_t table_end) const {
  const std::span<const std::byte> file = image->bytes();
  const std::uint64_t size = file.size();
  std::int64_t numel = 0;
  try {
    numel = shape_numel(info.shape);
  } catch (const ShapeError&) {
    fail<FormatError>("bundle '{}': tensor '{}': element count of {} overflows", label, info.name, shape_string(info.shape));
  }
  const std::uint64_t elem = dtype_size(info.dtype);
  if (static_cast<std::uint64_t>(numel) > std::numeric_limits<std::uint64_t>::max() / 2 / elem)
    fail<FormatError>("bundle '{}': tensor '{}': byte size of {} overflows", label, info.name, shape_string(info.shape));
  const std::uint64_t raw_size = static_cast<std::uint64_t>(numel) * elem;
  if (info.codec == Codec::raw && info.stored_size != raw_size)
    fail<FormatError>("bundle '{}': tensor '{}': stored_size {} but {} {} needs {} bytes", label, info.name,
                      info.stored_size, dtype_name(info.dtype), shape_string(info.shape), raw_size);
  if (info.codec == Codec::zstd && raw_size / kMaxZstdRatio > info.stored_size)
    fail<FormatError>("bundle '{}': tensor '{}': {} zstd bytes cannot hold {} bytes", label, info.name,
                      info.stored_size, raw_size);
  if (info.offset % kBundleAlignment != 0)
    fail<FormatError>("bundle '{}': tensor '{}': data_offset {} is not a multiple of {}", label, info.name, info.offset,
                      kBundleAlignment);
  if (info.offset < table_end)
    fail<FormatError>("bundle '{}': tensor '{}': data_offset {} lies before the end of the table ({})", label,
                      info.name, info.offset, table_end);
  if (info.offset > size || info.stored_size > size - info.offset)
    fail<FormatError>("bundle '{}': tensor '{}': {} bytes at offset {} run past the end of the file ({} bytes)",
                      label, info.name, info.stored_size, info.offset, size);
  if (info.codec == Codec::zstd) {
    // The frame header states its content size: checked against the shape now, so that a frame
    // that lies is refused at open and nothing is ever allocated for it.
    const unsigned long long declared = ZSTD_getFrameContentSize(file.data() + info.offset, info.stored_size);
    if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN)
      fail<FormatError>("bundle '{}': tensor '{}': zstd frame does not declare its size", label, info.name);
    if (declared != raw_size)
      fail<FormatError>("bundle '{}': tensor '{}': zstd frame declares {} bytes, but {} {} has {}", label,
                        info.name, declared, dtype_name(info.dtype), shape_string(info.shape), raw_size);
  }
}

void Bundle::Impl::index_names() {
  for (std::size_t i = 0; i < infos.size(); ++i)
    if (!index.emplace(infos[i].name, i).second)
      fail<FormatError>("bundle '{}': duplicate tensor name '{}'", label, infos[i].name);
}

void Bundle::Impl::check_no_overlap() const {
  // Empty tensors take no bytes (the next tensor may start at the same offset), so only tensors
  // with data can overlap.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& info : infos)
    if (info.stored_size > 0) by_offset.push_back(&info);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (std::size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i - 1]->offset + by_offset[i - 1]->stored_size > by_offset[i]->offset)
      fail<FormatError>("bundle '{}': data of tensors '{}' and '{}' overlap", label, by_offset[i - 1]->name,
                        by_offset[i]->name);
}

Tensor Bundle::Impl::decompress(const TensorInfo& info) const {
  if (!verified) check_crc(info);  // never feed zstd a corrupted frame
  Tensor t;
  try {
    t = Tensor::empty(info.dtype, info.shape, info.name);
  } catch (const std::bad_alloc&) {
    fail<IoError>("bundle '{}': tensor '{}': cannot allocate the {} bytes it decompresses to", label, info.name,
                  info.raw_size());
  }
  const std::size_t got = ZSTD_decompress(t.raw(), t.nbytes(), image->bytes().data() + info.offset, info.stored_size);
  if (ZSTD_isError(got) || got != t.nbytes())
    fail<FormatError>("bundle '{}': tensor '{}': zstd: {}", label, info.name,
                      ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short frame");
  return t;
}

Tensor Bundle::Impl::tensor(std::size_t i, bool check_finite) const {
  const TensorInfo& info = infos[i];
  Slot& slot = slots[i];
  std::call_once(slot.made, [&] {
    slot.tensor = info.codec == Codec::raw
                      ? Tensor::wrap(const_cast<std::byte*>(image->bytes().data() + info.offset), info.dtype,
                                     info.shape, image, StorageKind::mapped, Device::cpu, info.name)
                      : decompress(info);
  });
  if (check_finite)
    std::call_once(slot.checked, [&] {
      if (info.codec == Codec::raw) image->populate(info.offset, info.stored_size);
      if (const std::string bad = first_non_finite(slot.tensor); !bad.empty())
        fail<FormatError>("bundle '{}': tensor '{}': {} (weights must be finite)", label, info.name, bad);
    });
  return slot.tensor;
}

void Bundle::Impl::check_crc(const TensorInfo& info) const {
  const auto stored = image->bytes().subspan(info.offset, info.stored_size);
  if (crc32(stored) != info.crc32)
    fail<FormatError>("bundle '{}': tensor '{}': checksum mismatch (stored data is corrupted)", label, info.name);
}

Bundle Bundle::open(const std::filesystem::path& path, BundleOptions options) {
  auto impl = std::make_shared<Impl>();
  impl->label = path.string();
  impl->image = options.memory_map ? detail::FileImage::map(path) : detail::FileImage::read(path);
  impl->parse(options);
  Bundle b;
  b.impl_ = std::move(impl);
  return b;
}

Bundle Bundle::from_bytes(std::span<const std::byte> bytes, std::string label, BundleOptions options) {
  auto impl = std::make_shared<Impl>();
  impl->label = std::move(label);
  impl->image = detail::FileImage::copy(bytes);
  impl->parse(options);
  Bundle b;
  b.impl_ = std::move(impl);
  return b;
}

const std::string& Bundle::label() const { return impl_->label; }
const nlohmann::json& Bundle::metadata() const { return impl_->metadata; }
const std::vector<TensorInfo>& Bundle::tensors() const { return impl_->infos; }
std::uint64_t Bundle::file_size() const { return impl_->image->bytes().size(); }

bool Bundle::contains(std::string_view name) const { return impl_->index.count(name) != 0; }

const TensorInfo& Bundle::info(std::string_view name) const {
  auto it = impl_->index.find(name);
  if (it == impl_->index.end()) fail<FormatError>("bundle '{}': no tensor '{}'", impl_->label, name);
  return impl_->infos[it->second];
}

Tensor Bundle::tensor(std::string_view name) const {
  auto it = impl_->index.find(name);
  if (it == impl_->index.end()) fail<FormatError>("bundle '{}': no tensor '{}'", impl_->label, name);
  return impl_->tensor(it->second, false);
}

Tensor Bundle::finite_tensor(std::string_view name) const {
  auto it = impl_->index.find(name);
  if (it == impl_->index.end()) fail<FormatError>("bundle '{}': no tensor '{}'", impl_->label, name);
  return impl_->tensor(it->second, true);
}

Tensor Bundle::tensor(std::string_view name, DType dtype, const Shape& shape) const {
  Tensor t = tensor(name);
  if (t.dtype() != dtype || t.shape() != shape)
    fail<ShapeError>("bundle '{}': tensor '{}': expected {} {}, found {} {}", impl_->label, name, dtype_name(dtype),
                     shape_string(shape), dtype_name(t.dtype()), shape_string(t.shape()));
  return t;
}

// Decodes a zstd tensor through a buffer of kVerifyBuffer bytes, checking that the frame gives
// exactly its declared size and that floating values are finite: a 4 GiB tensor of zeros in a
// 128 KiB frame is verified without ever being held. The decoder's window is zstd's default
// limit (128 MiB, more than any compression level below --ultra uses).
void Bundle::Impl::verify_zstd(const TensorInfo& info) const {
  constexpr std::size_t kVerifyBuffer = std::size_t{1} << 20;
  const std::unique_ptr<ZSTD_DCtx, std::size_t (*)(ZSTD_DCtx*)> stream(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!stream) fail<IoError>("bundle '{}': tensor '{}': cannot allocate a zstd decoder", label, info.name);
  const std::size_t element = dtype_size(info.dtype);
  std::vector<std::byte> buffer(kVerifyBuffer);
  ZSTD_inBuffer in{image->bytes().data() + info.offset, info.stored_size, 0};
  std::uint64_t decoded = 0;
  std::size_t carried = 0;  // bytes of an element split across two outputs, kept at the front
  for (;;) {
    ZSTD_outBuffer out{buffer.data(), buffer.size(), carried};
    const std::size_t left = ZSTD_decompressStream(stream.get(), &out, &in);
    if (ZSTD_isError(left))
      fail<FormatError>("bundle '{}': tensor '{}': zstd: {}", label, info.name, ZSTD_getErrorName(left));
    decoded += out.pos - carried;
    const std::size_t whole = out.pos / element;
    if (const std::string bad = first_non_finite(info.dtype, buffer.data(), whole, (decoded - out.pos) / element);
        !bad.empty())
      fail<FormatError>("bundle '{}': tensor '{}': {} (weights must be finite)", label, info.name, bad);
    carried = out.pos - whole * element;
    std::memmove(buffer.data(), buffer.data() + whole * element, carried);
    if (left == 0) break;                                // the frame is complete
    if (in.pos == in.size && out.pos < out.size) break;  // the stored bytes ran out before it
  }
  if (decoded != info.raw_size() || in.pos != in.size)
    fail<FormatError>("bundle '{}': tensor '{}': zstd: short frame ({} of {} bytes, {} of {} stored bytes read)",
                      label, info.name, decoded, info.raw_size(), in.pos, in.size);
}

void Bundle::verify() const {
  for (const auto& info : impl_->infos) impl_->check_crc(info);
  for (std::size_t i = 0; i < impl_->infos.size(); ++i) {
    const TensorInfo& info = impl_->infos[i];
    if (info.codec == Codec::zstd) impl_->verify_zstd(info);
    else impl_->tensor(i, true);  // a view of the map: nothing to allocate
  }
}

}  // namespace ecr
