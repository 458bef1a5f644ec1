// GGUF, llama.cpp's model file (docs/gguf.md): a header, typed key/value metadata, a tensor table
// and aligned tensor data. gguf::File reads versions 2 and 3 (little-endian) from a memory map and
// checks every count, length, offset and size against the bytes that are there before using it,
// so a truncated or crafted file ends in a FormatError naming the file and the field, never in a
// read outside the image or an allocation the file's size does not pay for.
//
// Tensors stay as stored (quantized blocks included): tensor() hands out a byte span into the
// map, and a model's kernels compute on it. Metadata values are views too; Values and spans are
// valid while any copy of their File lives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ecr/core/error.hpp"
#include "ecr/core/tensor.hpp"

namespace ecr::gguf {

// The metadata value types; the numbers are the format's.
enum class ValueType : std::uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
  string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};
std::string_view type_name(ValueType type);

// ggml's tensor type ids. The enumerators are the types ecr computes on; a file may hold any type
// ggml defines (listed, named and sized by type_traits), but tensor() refuses the others.
enum class TensorType : std::uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8,
  q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, bf16 = 30,
};

// How ggml stores a type: rows are whole blocks of `block_size` elements, `block_bytes` each.
struct TypeTraits {
  std::string_view name;  // ggml's ("Q4_K")
  std::uint32_t block_size;
  std::uint32_t block_bytes;
  bool supported;  // one of TensorType's enumerators
};
// The traits of a type id, or null for an id ggml does not define.
const TypeTraits* type_traits(std::uint32_t id);
// "Q4_K", or "type 99" for an id ggml does not define.
std::string type_name(TensorType type);

// One metadata value: a scalar, a string or an array (of any type, arrays of arrays included),
// viewed in the file: valid while the File it came from (or a copy of it) lives. as<T>() converts it; the type must match exactly (no widening), else a
// FormatError names the key and both types:
//   scalars   std::uint8_t .. std::int64_t, float (f32), double (f64), bool
//   strings   std::string_view (into the map), std::string
//   arrays    std::vector<S> for a scalar S, std::vector<std::string_view>, std::vector<std::string>,
//             std::vector<Value> (each element as a Value, whatever its type: nested arrays)
class Value {
 public:
  ValueType type() const { return type_; }
  // For arrays: the elements' type, and how many there are (for a string: its bytes).
  ValueType element_type() const { return element_; }
  std::uint64_t size() const { return count_; }
  std::string_view key() const { return key_; }

  template <class T>
  T as() const;
  // An array's first `limit` elements (all by default) as Values: a summary of a long array
  // need not make a Value of each of its elements.
  std::vector<Value> elements(std::uint64_t limit = UINT64_MAX) const;

 private:
  friend class Parser;
  ValueType type_ = ValueType::u8, element_ = ValueType::u8;
  std::uint64_t count_ = 0;
  std::span<const std::byte> bytes_;  // a scalar's bytes, a string's text, an array's elements
  std::string_view key_, label_;      // for error messages

  [[noreturn]] void mismatch(ValueType wanted, bool array) const;
  void expect(ValueType wanted) const;
  void expect_array(ValueType element) const;
  std::vector<std::string_view> strings() const;
};

struct KeyValue {
  std::string_view key;
  Value value;
};

// One row of the tensor table, checked: the type is one ggml defines, the data is whole blocks,
// its byte range lies inside the file, starts at a multiple of the alignment and overlaps no
// other tensor's.
struct TensorInfo {
  std::string_view name;
  TensorType type{};
  // ggml's order, innermost first: dims[0] is the length of a row (ne0). shape() is ecr's
  // row-major order, the reverse.
  std::vector<std::int64_t> dims;
  std::uint64_t offset = 0;  // absolute, in the file
  std::uint64_t nbytes = 0;
  std::int64_t numel = 0;
  Shape shape() const { return Shape(dims.rbegin(), dims.rend()); }
  const TypeTraits& traits() const { return *type_traits(static_cast<std::uint32_t>(type)); }
};

// A tensor ready for a model: its row, and its bytes in the map.
struct TensorView {
  const TensorInfo& info;
  std::span<const std::byte> bytes;
};

inline constexpr std::uint32_t kDefaultAlignment = 32;
inline constexpr int kMaxDims = 4;          // ggml's GGML_MAX_DIMS
inline constexpr int kMaxArrayDepth = 8;    // arrays of arrays, this many levels at most
inline constexpr std::size_t kMaxTensorName = 63;  // ggml's GGML_MAX_NAME, less its NUL
inline constexpr std::size_t kMaxKeyLength = 65535;

// True when `bytes` starts with GGUF's magic ("GGUF").
bool has_magic(std::span<const std::byte> bytes);

class File {
 public:
  // Maps and checks `path`; FormatError (or IoError) names the file and the fault.
  static File open(const std::filesystem::path& path);
  // Checks an in-memory image (copied); `label` stands for the file name in errors.
  static File from_bytes(std::span<const std::byte> bytes, std::string label = "<memory>");

  const std::string& label() const;
  std::uint32_t version() const;
  std::uint32_t alignment() const;
  std::uint64_t data_offset() const;  // where the data section starts
  std::uint64_t file_size() const;

  // Metadata in file order.
  const std::vector<KeyValue>& metadata() const;
  bool contains(std::string_view key) const;
  // FormatError "no key 'k'" when absent.
  const Value& value(std::string_view key) const;
  template <class T>
  T get(std::string_view key) const { return value(key).as<T>(); }
  template <class T>
  T get_or(std::string_view key, T fallback) const {
    return contains(key) ? value(key).as<T>() : fallback;
  }

  // The tensor table in file order.
  const std::vector<TensorInfo>& tensors() const;
  bool has_tensor(std::string_view name) const;
  // FormatError "no tensor 'x'" when absent; any type ggml defines.
  const TensorInfo& info(std::string_view name) const;
  // The tensor's bytes; ConfigError naming the tensor and its type when ecr does not compute on
  // that type (a file with such tensors still opens and lists).
  TensorView tensor(std::string_view name) const;
  // The same bytes as an ecr Tensor in place (shape() row-major, the stored type): the Tensor
  // keeps the map alive. ConfigError as tensor() for a type ecr does not compute on.
  Tensor view(std::string_view name) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// --- Value::as, for the types listed above ------------------------------------------------------

namespace detail {
template <class T> struct ScalarType;
template <> struct ScalarType<std::uint8_t> { static constexpr ValueType value = ValueType::u8; };
template <> struct ScalarType<std::int8_t> { static constexpr ValueType value = ValueType::i8; };
template <> struct ScalarType<std::uint16_t> { static constexpr ValueType value = ValueType::u16; };
template <> struct ScalarType<std::int16_t> { static constexpr ValueType value = ValueType::i16; };
template <> struct ScalarType<std::uint32_t> { static constexpr ValueType value = ValueType::u32; };
template <> struct ScalarType<std::int32_t> { static constexpr ValueType value = ValueType::i32; };
template <> struct ScalarType<std::uint64_t> { static constexpr ValueType value = ValueType::u64; };
template <> struct ScalarType<std::int64_t> { static constexpr ValueType value = ValueType::i64; };
template <> struct ScalarType<float> { static constexpr ValueType value = ValueType::f32; };
template <> struct ScalarType<double> { static constexpr ValueType value = ValueType::f64; };
template <> struct ScalarType<bool> { static constexpr ValueType value = ValueType::boolean; };

template <class T, class = void> constexpr bool is_scalar = false;
template <class T> constexpr bool is_scalar<T, std::void_t<decltype(ScalarType<T>::value)>> = true;
template <class T> constexpr bool is_vector = false;
template <class T> constexpr bool is_vector<std::vector<T>> = true;
}  // namespace detail

template <class T>
T Value::as() const {
  if constexpr (detail::is_scalar<T>) {
    expect(detail::ScalarType<T>::value);
    if constexpr (std::is_same_v<T, bool>) {
      return bytes_[0] != std::byte{0};  // 0 or 1, checked at open
    } else {
      T v;
      std::memcpy(&v, bytes_.data(), sizeof v);  // the map has no alignment for it
      return v;
    }
  } else if constexpr (std::is_same_v<T, std::string_view> || std::is_same_v<T, std::string>) {
    expect(ValueType::string);
    return T(reinterpret_cast<const char*>(bytes_.data()), bytes_.size());
  } else if constexpr (detail::is_vector<T>) {
    using E = typename T::value_type;
    if constexpr (std::is_same_v<E, Value>) {
      return elements();
    } else if constexpr (std::is_same_v<E, std::string_view> || std::is_same_v<E, std::string>) {
      expect_array(ValueType::string);
      const auto views = strings();
      return T(views.begin(), views.end());
    } else {
      static_assert(detail::is_scalar<E>, "Value::as: no GGUF array type for this element type");
      expect_array(detail::ScalarType<E>::value);
      T out(static_cast<std::size_t>(count_));  // count_ was checked against the file's bytes
      if constexpr (std::is_same_v<E, bool>) {
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = bytes_[i] != std::byte{0};
      } else if (!out.empty()) {
        std::memcpy(out.data(), bytes_.data(), out.size() * sizeof(E));
      }
      return out;
    }
  } else {
    static_assert(detail::is_scalar<T>, "Value::as: no GGUF value type for this C++ type");
  }
}

}  // namespace ecr::gguf
