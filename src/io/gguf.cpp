// Reading GGUF (docs/gguf.md) in the file's order: header, metadata, tensor table, data. Every
// count is checked against the bytes left before anything is read or allocated for it, every sum
// and product of sizes is overflow-checked, and each fault names the file and where it was.
#include "ecr/io/gguf.hpp"

#include <algorithm>
#include <array>
#include <bit>  // std::has_single_bit
#include <numeric>
#include <unordered_map>

#include "ecr/core/dtype.hpp"
#include "ecr/core/utf8.hpp"
#include "mapped_file.hpp"

namespace ecr::gguf {

namespace {

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr std::uint32_t kFirstVersion = 2, kLastVersion = 3;
constexpr std::uint32_t kValueTypes = 13;  // u8 .. f64

// Every type ggml defines, by id, with its block layout (gguf-py's GGML_QUANT_SIZES, ggml.h).
// Ids 4, 5 and 31..33 were dropped from ggml and are left empty; supported = a TensorType.
constexpr std::uint32_t kQK = 256;  // elements in a k-quant super-block
constexpr std::array<TypeTraits, 42> kTypes = {{
    {"F32", 1, 4, true},
    {"F16", 1, 2, true},
    {"Q4_0", 32, 2 + 16, true},
    {"Q4_1", 32, 2 + 2 + 16, true},
    {},
    {},
    {"Q5_0", 32, 2 + 4 + 16, true},
    {"Q5_1", 32, 2 + 2 + 4 + 16, true},
    {"Q8_0", 32, 2 + 32, true},
    {"Q8_1", 32, 4 + 4 + 32, false},
    {"Q2_K", kQK, 2 + 2 + kQK / 16 + kQK / 4, true},
    {"Q3_K", kQK, 2 + kQK / 4 + kQK / 8 + 12, true},
    {"Q4_K", kQK, 2 + 2 + kQK / 2 + 12, true},
    {"Q5_K", kQK, 2 + 2 + kQK / 2 + kQK / 8 + 12, true},
    {"Q6_K", kQK, 2 + kQK / 2 + kQK / 4 + kQK / 16, true},
    {"Q8_K", kQK, 4 + kQK + kQK / 8, false},
    {"IQ2_XXS", kQK, 2 + kQK / 4, false},
    {"IQ2_XS", kQK, 2 + kQK / 4 + kQK / 32, false},
    {"IQ3_XXS", kQK, 2 + kQK / 4 + kQK / 8, false},
    {"IQ1_S", kQK, 2 + kQK / 8 + kQK / 16, false},
    {"IQ4_NL", 32, 2 + 16, false},
    {"IQ3_S", kQK, 2 + kQK / 4 + kQK / 8 + kQK / 32 + 4, false},
    {"IQ2_S", kQK, 2 + kQK / 4 + kQK / 16, false},
    {"IQ4_XS", kQK, 2 + 2 + kQK / 2 + kQK / 64, false},
    {"I8", 1, 1, false},
    {"I16", 1, 2, false},
    {"I32", 1, 4, false},
    {"I64", 1, 8, false},
    {"F64", 1, 8, false},
    {"IQ1_M", kQK, kQK / 8 + kQK / 16 + kQK / 32, false},
    {"BF16", 1, 2, true},
    {},
    {},
    {},
    {"TQ1_0", kQK, 2 + 4 * 13, false},
    {"TQ2_0", kQK, 2 + 64, false},
    {},
    {},
    {},
    {"MXFP4", 32, 1 + 16, false},
    {"NVFP4", 64, 4 + 32, false},
    {"Q1_0", 128, 2 + 16, false},
}};

std::size_t scalar_size(ValueType type) {
  switch (type) {
    case ValueType::u8: case ValueType::i8: case ValueType::boolean: return 1;
    case ValueType::u16: case ValueType::i16: return 2;
    case ValueType::u32: case ValueType::i32: case ValueType::f32: return 4;
    case ValueType::u64: case ValueType::i64: case ValueType::f64: return 8;
    case ValueType::string: case ValueType::array: return 0;
  }
  return 0;
}

// The fewest bytes one element of an array of `type` takes: what bounds its count.
std::uint64_t min_element_size(ValueType type) {
  if (type == ValueType::string) return 8;              // the length
  if (type == ValueType::array) return 4 + 8;           // element type and count
  return scalar_size(type);
}

std::string shown(std::string_view name) { return printable(name.substr(0, 200)); }

}  // namespace

std::string_view type_name(ValueType type) {
  constexpr std::string_view kNames[kValueTypes] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                                    "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<std::uint32_t>(type);
  return i < kValueTypes ? kNames[i] : "unknown";
}

const TypeTraits* type_traits(std::uint32_t id) {
  if (id >= kTypes.size() || kTypes[id].block_size == 0) return nullptr;
  return &kTypes[id];
}

std::string type_name(TensorType type) {
  const auto id = static_cast<std::uint32_t>(type);
  const TypeTraits* traits = type_traits(id);
  return traits ? std::string(traits->name) : fmt::format("type {}", id);
}

bool has_magic(std::span<const std::byte> bytes) {
  return bytes.size() >= sizeof kMagic && std::memcmp(bytes.data(), kMagic, sizeof kMagic) == 0;
}

// --- Value ---------------------------------------------------------------------------------------

void Value::mismatch(ValueType wanted, bool array) const {
  const std::string actual = type_ == ValueType::array
                                 ? fmt::format("an array of {}", type_name(element_))
                                 : std::string(type_name(type_));
  fail<FormatError>("gguf '{}': key '{}' is {}, expected {}{}", label_, shown(key_), actual,
                    array ? "an array of " : "", type_name(wanted));
}

void Value::expect(ValueType wanted) const {
  if (type_ != wanted) mismatch(wanted, false);
}

void Value::expect_array(ValueType element) const {
  if (type_ != ValueType::array || element_ != element) mismatch(element, true);
}

// --- the parser ----------------------------------------------------------------------------------

// Walks the image front to back. need() is the one bounds check every read goes through; `where`
// says what was being read when the bytes ran out.
class Parser {
 public:
  Parser(std::span<const std::byte> bytes, std::string_view label) : bytes_(bytes), label_(label) {}

  std::size_t pos() const { return pos_; }
  std::uint64_t left() const { return bytes_.size() - pos_; }
  void seek(std::size_t pos) { pos_ = pos; }

  template <class... Args>
  [[noreturn]] void error(fmt::format_string<Args...> f, Args&&... args) const {
    fail<FormatError>("gguf '{}': {}", label_, fmt::format(f, std::forward<Args>(args)...));
  }

  std::span<const std::byte> take(std::uint64_t n, std::string_view what, std::string_view where) {
    if (n > left())
      error("{}: {} needs {} bytes at offset {}, but the file has {} left", where, what, n, pos_, left());
    const auto out = bytes_.subspan(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return out;
  }

  template <class T>
  T read(std::string_view what, std::string_view where) {
    T v;
    std::memcpy(&v, take(sizeof v, what, where).data(), sizeof v);  // little-endian, as is every host ecr builds for
    return v;
  }

  std::string_view string(std::string_view what, std::string_view where) {
    const auto n = read<std::uint64_t>("length", where);  // a fixed label: a vocabulary has 10^5 strings
    const auto s = take(n, what, where);
    return {reinterpret_cast<const char*>(s.data()), s.size()};
  }

  ValueType value_type(std::string_view what, std::string_view where) {
    const auto t = read<std::uint32_t>(what, where);
    if (t >= kValueTypes) error("{}: {} is {} (expected 0..{})", where, what, t, kValueTypes - 1);
    return static_cast<ValueType>(t);
  }

  // One value of `type` at the cursor, checked to its last byte. `where` names the key.
  Value value(ValueType type, std::string_view key, std::string_view where, int depth) {
    Value v;
    v.type_ = type;
    v.key_ = key;
    v.label_ = label_;
    if (type == ValueType::string) {
      v.bytes_ = as_bytes(string("string", where));
      v.count_ = v.bytes_.size();
      return v;
    }
    if (type != ValueType::array) {
      v.bytes_ = take(scalar_size(type), type_name(type), where);
      if (type == ValueType::boolean && v.bytes_[0] > std::byte{1})
        error("{}: bool is {} (expected 0 or 1)", where, static_cast<int>(v.bytes_[0]));
      return v;
    }
    if (depth >= kMaxArrayDepth) error("{}: arrays nested more than {} deep", where, kMaxArrayDepth);
    v.element_ = value_type("array element type", where);
    v.count_ = read<std::uint64_t>("array length", where);
    const std::uint64_t least = min_element_size(v.element_);
    if (v.count_ > left() / least)
      error("{}: an array of {} {} needs at least {} bytes per element, but the file has {} left", where,
            v.count_, type_name(v.element_), least, left());
    const std::size_t start = pos_;
    if (const std::size_t size = scalar_size(v.element_); size > 0) {
      take(v.count_ * size, "array", where);  // the product fits: checked against left() above
      if (v.element_ == ValueType::boolean)
        for (std::size_t i = start; i < pos_; ++i)
          if (bytes_[i] > std::byte{1})
            error("{}: bool element {} is {} (expected 0 or 1)", where, i - start, static_cast<int>(bytes_[i]));
    } else {
      // Each element takes at least one byte, so this loop ends within the file's size.
      for (std::uint64_t i = 0; i < v.count_; ++i) value(v.element_, key, where, depth + 1);
    }
    v.bytes_ = bytes_.subspan(start, pos_ - start);
    return v;
  }

 private:
  static std::span<const std::byte> as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
  }
  std::span<const std::byte> bytes_;
  std::string_view label_;
  std::size_t pos_ = 0;
};

// Arrays of strings and of arrays are walked again on request; they were checked at open.
std::vector<std::string_view> Value::strings() const {
  Parser p(bytes_, label_);
  std::vector<std::string_view> out;
  out.reserve(static_cast<std::size_t>(count_));
  for (std::uint64_t i = 0; i < count_; ++i) out.push_back(p.string("string", key_));
  return out;
}

std::vector<Value> Value::elements(std::uint64_t limit) const {
  expect(ValueType::array);
  Parser p(bytes_, label_);
  const std::uint64_t n = std::min(count_, limit);
  std::vector<Value> out;
  out.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i) out.push_back(p.value(element_, key_, key_, 1));
  return out;
}

// --- File ----------------------------------------------------------------------------------------

struct File::Impl {
  std::string label;
  std::shared_ptr<ecr::detail::FileImage> image;
  std::uint32_t version = 0;
  std::uint32_t alignment = kDefaultAlignment;
  std::uint64_t data_offset = 0;
  std::vector<KeyValue> metadata;
  std::unordered_map<std::string_view, std::size_t> keys;
  std::vector<TensorInfo> tensors;
  std::unordered_map<std::string_view, std::size_t> names;

  void parse();
  void read_metadata(Parser& p, std::uint64_t count);
  void read_alignment();
  void read_tensor_infos(Parser& p, std::uint64_t count);
  void place_tensors(std::uint64_t data_start);
};

void File::Impl::parse() {
  const auto bytes = image->bytes();
  Parser p(bytes, label);
  if (bytes.size() >= 4 && !has_magic(bytes))
    p.error("bad magic (expected 'GGUF'; not a GGUF file)");
  p.take(4, "magic 'GGUF'", "header");
  version = p.read<std::uint32_t>("version", "header");
  if (version == 1)
    p.error("GGUF version 1 is not supported (it counts in 32 bits; this reader reads versions 2 and 3)");
  if (version < kFirstVersion || version > kLastVersion) {
    if (const auto swapped = __builtin_bswap32(version); swapped >= 1 && swapped <= kLastVersion)
      p.error("version {} byte-swapped: a big-endian GGUF file, which this reader does not read", swapped);
    p.error("GGUF version {} is not supported (this reader reads versions 2 and 3)", version);
  }
  const auto n_tensors = p.read<std::uint64_t>("tensor count", "header");
  const auto n_kv = p.read<std::uint64_t>("metadata count", "header");
  read_metadata(p, n_kv);
  read_alignment();
  read_tensor_infos(p, n_tensors);
  // The data section starts at the next multiple of the alignment (which may be past the end of
  // a file with no tensor data).
  const std::uint64_t end_of_table = p.pos();
  const std::uint64_t padded = (end_of_table + alignment - 1) / alignment * alignment;  // both < 2^63
  place_tensors(padded);
}

void File::Impl::read_metadata(Parser& p, std::uint64_t count) {
  // Each entry takes at least 8 (key length) + 1 (key) + 4 (type) + 1 (value) bytes.
  constexpr std::uint64_t kLeast = 8 + 1 + 4 + 1;
  if (count > p.left() / kLeast)
    p.error("header: metadata count {} needs at least {} bytes, but the file has {} left", count, kLeast, p.left());
  metadata.reserve(static_cast<std::size_t>(count));
  keys.reserve(static_cast<std::size_t>(count));
  for (std::uint64_t i = 0; i < count; ++i) {
    std::string where = fmt::format("metadata entry {}", i);
    const std::string_view key = p.string("key", where);
    if (key.empty() || key.size() > kMaxKeyLength)
      p.error("{}: key of {} bytes (expected 1..{})", where, key.size(), kMaxKeyLength);
    where = fmt::format("key '{}'", shown(key));
    const ValueType type = p.value_type("value type", where);
    Value v = p.value(type, key, where, 0);
    if (!keys.emplace(key, metadata.size()).second) p.error("{} appears twice", where);
    metadata.push_back({key, v});
  }
}

void File::Impl::read_alignment() {
  const auto it = keys.find("general.alignment");
  if (it == keys.end()) return;
  const Value& v = metadata[it->second].value;
  if (v.type() != ValueType::u32)
    fail<FormatError>("gguf '{}': key 'general.alignment' is {}, expected u32", label, type_name(v.type()));
  alignment = v.as<std::uint32_t>();
  if (!std::has_single_bit(alignment))
    fail<FormatError>("gguf '{}': general.alignment is {} (expected a power of two)", label, alignment);
}

void File::Impl::read_tensor_infos(Parser& p, std::uint64_t count) {
  // Each row takes at least 8 (name length) + 1 (name) + 4 (n_dims) + 4 (type) + 8 (offset) bytes.
  constexpr std::uint64_t kLeast = 8 + 1 + 4 + 4 + 8;
  if (count > p.left() / kLeast)
    p.error("header: tensor count {} needs at least {} bytes, but the file has {} left", count, kLeast, p.left());
  tensors.reserve(static_cast<std::size_t>(count));
  names.reserve(static_cast<std::size_t>(count));
  for (std::uint64_t i = 0; i < count; ++i) {
    std::string where = fmt::format("tensor info {}", i);
    TensorInfo t;
    t.name = p.string("name", where);
    if (t.name.empty() || t.name.size() > kMaxTensorName)
      p.error("{}: name of {} bytes (expected 1..{})", where, t.name.size(), kMaxTensorName);
    where = fmt::format("tensor '{}'", shown(t.name));
    const auto n_dims = p.read<std::uint32_t>("n_dims", where);
    if (n_dims > kMaxDims) p.error("{}: n_dims is {} (expected 0..{})", where, n_dims, kMaxDims);
    t.numel = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const auto dim = p.read<std::uint64_t>("dimension", where);
      if (dim > static_cast<std::uint64_t>(INT64_MAX))
        p.error("{}: dimension {} is {} (expected below 2^63)", where, d, dim);
      t.dims.push_back(static_cast<std::int64_t>(dim));
      if (__builtin_mul_overflow(t.numel, t.dims.back(), &t.numel))
        p.error("{}: dimensions {} hold more than 2^63 elements", where, shape_string(t.dims));
    }
    const auto id = p.read<std::uint32_t>("type", where);
    const TypeTraits* traits = type_traits(id);
    if (!traits) p.error("{}: ggml type id {} is not a type ggml defines", where, id);
    t.type = static_cast<TensorType>(id);
    const std::int64_t row = t.dims.empty() ? 1 : t.dims[0];
    if (row % traits->block_size != 0)
      p.error("{}: a row of {} elements is not whole {} blocks of {}", where, row, traits->name, traits->block_size);
    // numel / block_size blocks; the product fits in 64 bits or the file could not hold it.
    if (__builtin_mul_overflow(static_cast<std::uint64_t>(t.numel) / traits->block_size,
                               std::uint64_t{traits->block_bytes}, &t.nbytes))
      p.error("{}: {} elements of {} take more than 2^64 bytes", where, t.numel, traits->name);
    t.offset = p.read<std::uint64_t>("offset", where);
    if (t.offset % alignment != 0)
      p.error("{}: offset {} is not a multiple of the alignment {}", where, t.offset, alignment);
    if (!names.emplace(t.name, tensors.size()).second) p.error("{}: the name appears twice", where);
    tensors.push_back(std::move(t));
  }
}

// Makes each tensor's offset absolute and checks that its bytes lie in the file and in no other
// tensor's range.
void File::Impl::place_tensors(std::uint64_t data_start) {
  data_offset = data_start;
  const std::uint64_t size = image->bytes().size();
  const std::uint64_t room = size > data_start ? size - data_start : 0;
  for (auto& t : tensors) {
    if (t.offset > room || t.nbytes > room - t.offset)
      fail<FormatError>("gguf '{}': tensor '{}': {} bytes at data offset {} run past the end of the file "
                        "(the data section holds {} bytes from offset {})",
                        label, shown(t.name), t.nbytes, t.offset, room, data_start);
    t.offset += data_start;
  }
  std::vector<std::size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return tensors[a].offset < tensors[b].offset; });
  for (std::size_t k = 1; k < order.size(); ++k) {
    const TensorInfo& before = tensors[order[k - 1]];
    const TensorInfo& t = tensors[order[k]];
    if (t.offset < before.offset + before.nbytes)
      fail<FormatError>("gguf '{}': tensor '{}' (bytes {}..{}) overlaps tensor '{}' (bytes {}..{})", label,
                        shown(t.name), t.offset, t.offset + t.nbytes, shown(before.name), before.offset,
                        before.offset + before.nbytes);
  }
}

File File::open(const std::filesystem::path& path) {
  auto impl = std::make_shared<Impl>();
  impl->label = path.string();
  impl->image = ecr::detail::FileImage::map(path);
  impl->parse();
  File f;
  f.impl_ = std::move(impl);
  return f;
}

File File::from_bytes(std::span<const std::byte> bytes, std::string label) {
  auto impl = std::make_shared<Impl>();
  impl->label = std::move(label);
  impl->image = ecr::detail::FileImage::copy(bytes);
  impl->parse();
  File f;
  f.impl_ = std::move(impl);
  return f;
}

const std::string& File::label() const { return impl_->label; }
std::uint32_t File::version() const { return impl_->version; }
std::uint32_t File::alignment() const { return impl_->alignment; }
std::uint64_t File::data_offset() const { return impl_->data_offset; }
std::uint64_t File::file_size() const { return impl_->image->bytes().size(); }
const std::vector<KeyValue>& File::metadata() const { return impl_->metadata; }
const std::vector<TensorInfo>& File::tensors() const { return impl_->tensors; }

bool File::contains(std::string_view key) const { return impl_->keys.contains(key); }

const Value& File::value(std::string_view key) const {
  const auto it = impl_->keys.find(key);
  if (it == impl_->keys.end()) fail<FormatError>("gguf '{}': no key '{}'", impl_->label, shown(key));
  return impl_->metadata[it->second].value;
}

bool File::has_tensor(std::string_view name) const { return impl_->names.contains(name); }

const TensorInfo& File::info(std::string_view name) const {
  const auto it = impl_->names.find(name);
  if (it == impl_->names.end()) fail<FormatError>("gguf '{}': no tensor '{}'", impl_->label, shown(name));
  return impl_->tensors[it->second];
}

TensorView File::tensor(std::string_view name) const {
  const TensorInfo& t = info(name);
  if (!t.traits().supported)
    fail<ConfigError>("gguf '{}': tensor '{}' has type {} (ggml type id {}), which ecr does not compute on "
                      "(it reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)",
                      impl_->label, shown(t.name), t.traits().name, static_cast<std::uint32_t>(t.type));
  return {t, impl_->image->bytes().subspan(static_cast<std::size_t>(t.offset), static_cast<std::size_t>(t.nbytes))};
}

Tensor File::view(std::string_view name) const {
  const TensorView t = tensor(name);
  // Every supported ggml type has a DType (dtype_from_gguf is the one mapping).
  const DType dtype = *dtype_from_gguf(t.info.type);
  return Tensor::wrap(const_cast<std::byte*>(t.bytes.data()), dtype, t.info.shape(), std::make_shared<File>(*this),
                      StorageKind::mapped, Device::cpu, std::string(t.info.name));
}

}  // namespace ecr::gguf
