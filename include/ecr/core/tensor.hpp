// ecr::Tensor: a dtype, a shape, a device and storage that is owned, a view into another
// tensor's storage, or a memory-mapped file region. Row-major and contiguous, always: every
// op in the engine works on contiguous rows, so strides would buy nothing but bugs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "ecr/core/dtype.hpp"
#include "ecr/core/error.hpp"

namespace ecr {

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<Eigen::half>() { return DType::f16; }
template <> constexpr DType dtype_of<Eigen::bfloat16>() { return DType::bf16; }
template <> constexpr DType dtype_of<std::int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<std::int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<std::int8_t>() { return DType::i8; }
template <> constexpr DType dtype_of<std::uint8_t>() { return DType::u8; }

enum class Device : std::uint8_t { cpu, cuda };
std::string_view device_name(Device device);

// Where a tensor's bytes live and who keeps them alive.
enum class StorageKind : std::uint8_t { owned, view, mapped };

using Shape = std::vector<std::int64_t>;
std::string shape_string(const Shape& shape);
// Number of elements; throws ShapeError on a negative dimension or an overflowing product.
std::int64_t shape_numel(const Shape& shape);
// Bytes of a `dtype` tensor of `shape`; ShapeError naming the tensor when the last dimension is
// not a multiple of a block type's block or the size overflows.
std::size_t storage_bytes(DType dtype, const Shape& shape, std::string_view tensor);

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// MatrixMap<const float> maps read-only memory (Eigen spells that Map<const Matrix<float>>).
template <class T>
using MatrixMap = Eigen::Map<std::conditional_t<std::is_const_v<T>, const RowMatrix<std::remove_const_t<T>>,
                                                RowMatrix<T>>, Eigen::Unaligned>;
template <class T>
using VectorMap = Eigen::Map<std::conditional_t<std::is_const_v<T>,
                                                const Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, 1>,
                                                Eigen::Matrix<T, Eigen::Dynamic, 1>>, Eigen::Unaligned>;

class Tensor {
 public:
  Tensor() = default;

  // Fresh CPU memory, 64-byte aligned. `empty` leaves it uninitialised.
  static Tensor empty(DType dtype, Shape shape, std::string name = {});
  static Tensor zeros(DType dtype, Shape shape, std::string name = {});
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, Shape shape, std::string name = {});

  // Wraps memory that `owner` keeps alive (a mapped file, a device allocation, a host buffer).
  static Tensor wrap(void* data, DType dtype, Shape shape, std::shared_ptr<void> owner,
                     StorageKind kind, Device device = Device::cpu, std::string name = {});

  bool defined() const noexcept { return data_ != nullptr; }
  DType dtype() const noexcept { return dtype_; }
  Device device() const noexcept { return device_; }
  StorageKind storage() const noexcept { return storage_; }
  const Shape& shape() const noexcept { return shape_; }
  int rank() const noexcept { return static_cast<int>(shape_.size()); }
  // dim(-1) is the last dimension.
  std::int64_t dim(int i) const;
  std::int64_t numel() const noexcept { return numel_; }
  std::size_t nbytes() const noexcept { return nbytes_; }
  const std::string& name() const noexcept { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

  void* raw() noexcept { return data_; }
  const void* raw() const noexcept { return data_; }

  // Typed access; throws ShapeError naming the tensor when T is not its dtype, DeviceError when
  // the bytes are not on the CPU.
  template <class T> T* data() { check_access(dtype_of<T>()); return static_cast<T*>(data_); }
  template <class T> const T* data() const { check_access(dtype_of<T>()); return static_cast<const T*>(data_); }
  template <class T> std::span<T> span() { return {data<T>(), static_cast<std::size_t>(numel_)}; }
  template <class T> std::span<const T> span() const { return {data<T>(), static_cast<std::size_t>(numel_)}; }

  // Eigen views: a rank-N tensor reads as (prod of leading dims) x (last dim).
  template <class T> MatrixMap<T> matrix() { auto [r, c] = as_2d(); return {data<T>(), r, c}; }
  template <class T> MatrixMap<const T> matrix() const { auto [r, c] = as_2d(); return {data<T>(), r, c}; }
  template <class T> VectorMap<T> vector() { return {data<T>(), numel_}; }
  template <class T> VectorMap<const T> vector() const { return {data<T>(), numel_}; }

  // Views that share this tensor's storage (no copy). A block type's rows must still hold whole
  // blocks (ShapeError).
  Tensor reshape(Shape shape) const;
  // Rows [begin, begin + count) of the first dimension.
  Tensor rows(std::int64_t begin, std::int64_t count) const;
  Tensor row(std::int64_t i) const;

  // A deep copy in owned CPU memory.
  Tensor clone() const;
  // f32 copy of a f32, f16, bf16 or block tensor (f32 input returns a clone).
  Tensor to_f32() const;
  // This f32 tensor stored as `dtype` (f32, f16, bf16 or a block type with a quantizer), rounded as
  // DTypeTraits::from_f32 says; ShapeError for another dtype or a row of partial blocks.
  Tensor from_f32(DType dtype) const;

  // Throws ShapeError "tensor 'name': expected shape [a, b] (f32), found [c, d] (f16)".
  void expect(DType dtype, const Shape& shape) const;
  void expect_rank(DType dtype, int rank) const;

 private:
  void check_access(DType requested) const;
  std::pair<std::int64_t, std::int64_t> as_2d() const;

  void* data_ = nullptr;
  std::shared_ptr<void> owner_;
  Shape shape_;
  std::int64_t numel_ = 0;
  std::size_t nbytes_ = 0;
  DType dtype_ = DType::f32;
  Device device_ = Device::cpu;
  StorageKind storage_ = StorageKind::owned;
  std::string name_;
};

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, Shape shape, std::string name) {
  Tensor t = empty(dtype_of<T>(), std::move(shape), std::move(name));
  if (static_cast<std::size_t>(t.numel()) != values.size())
    fail<ShapeError>("tensor '{}': {} values do not fill shape {}", t.name(), values.size(),
                     shape_string(t.shape()));
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

}  // namespace ecr
