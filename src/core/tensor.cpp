#include "ecr/core/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace ecr {

namespace {
constexpr std::size_t kAlignment = 64;
}  // namespace

std::string_view device_name(Device device) { return device == Device::cpu ? "cpu" : "cuda"; }

std::string shape_string(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0) fail<ShapeError>("negative dimension in shape {}", shape_string(shape));
    if (d != 0 && n > std::numeric_limits<std::int64_t>::max() / d)
      fail<ShapeError>("shape {} has more elements than fit in 64 bits", shape_string(shape));
    n *= d;
  }
  return n;
}

std::size_t storage_bytes(DType dtype, const Shape& shape, std::string_view tensor) {
  const std::int64_t n = shape_numel(shape);
  if (shape.empty() || n == 0) return static_cast<std::size_t>(n) * dtype_traits(dtype).block_bytes;
  const std::size_t row = row_bytes(dtype, shape.back(), tensor);
  const auto rows = static_cast<std::size_t>(n / shape.back());
  if (row != 0 && rows > std::numeric_limits<std::size_t>::max() / row)
    fail<ShapeError>("tensor '{}': {} {} has more bytes than fit in memory", tensor, dtype_name(dtype), shape_string(shape));
  return rows * row;
}

Tensor Tensor::empty(DType dtype, Shape shape, std::string name) {
  const std::size_t bytes = storage_bytes(dtype, shape, name);
  // Round up so that every allocation is a whole number of cache lines (and never zero bytes).
  const std::size_t padded = std::max<std::size_t>(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  void* p = ::operator new(padded, std::align_val_t(kAlignment));
  std::shared_ptr<void> owner(p, [](void* q) { ::operator delete(q, std::align_val_t(kAlignment)); });
  return wrap(p, dtype, std::move(shape), std::move(owner), StorageKind::owned, Device::cpu, std::move(name));
}

Tensor Tensor::zeros(DType dtype, Shape shape, std::string name) {
  Tensor t = empty(dtype, std::move(shape), std::move(name));
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::wrap(void* data, DType dtype, Shape shape, std::shared_ptr<void> owner, StorageKind kind,
                    Device device, std::string name) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  t.nbytes_ = storage_bytes(dtype, shape, name);
  t.data_ = data;
  t.owner_ = std::move(owner);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = kind;
  t.name_ = std::move(name);
  return t;
}

std::int64_t Tensor::dim(int i) const {
  const int r = rank();
  const int k = i < 0 ? r + i : i;
  if (k < 0 || k >= r) fail<ShapeError>("tensor '{}': no dimension {} in shape {}", name_, i, shape_string(shape_));
  return shape_[static_cast<std::size_t>(k)];
}

void Tensor::check_access(DType requested) const {
  if (requested != dtype_)
    fail<ShapeError>("tensor '{}': accessed as {} but holds {}", name_, dtype_name(requested), dtype_name(dtype_));
  if (device_ != Device::cpu)
    fail<DeviceError>("tensor '{}': host access to memory on {}", name_, device_name(device_));
}

std::pair<std::int64_t, std::int64_t> Tensor::as_2d() const {
  if (shape_.empty()) return {1, 1};
  const std::int64_t cols = shape_.back();
  return {cols == 0 ? 0 : numel_ / cols, cols};
}

Tensor Tensor::reshape(Shape shape) const {
  if (shape_numel(shape) != numel_)
    fail<ShapeError>("tensor '{}': cannot reshape {} to {}", name_, shape_string(shape_), shape_string(shape));
  if (storage_bytes(dtype_, shape, name_) != nbytes_)
    fail<ShapeError>("tensor '{}': cannot reshape {} {} to {}: its blocks would split", name_, dtype_name(dtype_),
                     shape_string(shape_), shape_string(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  if (t.storage_ == StorageKind::owned) t.storage_ = StorageKind::view;
  return t;
}

Tensor Tensor::rows(std::int64_t begin, std::int64_t count) const {
  if (rank() < 1) fail<ShapeError>("tensor '{}': rows() of a scalar", name_);
  if (begin < 0 || count < 0 || begin > shape_[0] - count)
    fail<ShapeError>("tensor '{}': rows [{}, {}) outside first dimension {}", name_, begin, begin + count, shape_[0]);
  // Rows of a rank-1 block tensor are single values: only whole blocks can be cut out.
  const std::size_t skipped = rank() > 1 ? (shape_[0] == 0 ? 0 : nbytes_ / static_cast<std::size_t>(shape_[0])) *
                                               static_cast<std::size_t>(begin)
                                         : storage_bytes(dtype_, {begin}, name_);
  Tensor t = *this;
  t.shape_[0] = count;
  t.numel_ = shape_numel(t.shape_);
  t.nbytes_ = storage_bytes(dtype_, t.shape_, name_);
  t.data_ = static_cast<std::byte*>(data_) + skipped;
  if (t.storage_ == StorageKind::owned) t.storage_ = StorageKind::view;
  return t;
}

Tensor Tensor::row(std::int64_t i) const {
  Tensor t = rows(i, 1);
  t.shape_.erase(t.shape_.begin());
  return t;
}

Tensor Tensor::clone() const {
  if (device_ != Device::cpu) fail<DeviceError>("tensor '{}': clone() of memory on {}", name_, device_name(device_));
  Tensor t = empty(dtype_, shape_, name_);
  std::memcpy(t.data_, data_, nbytes());
  return t;
}

Tensor Tensor::to_f32() const {
  if (dtype_ == DType::f32) return clone();
  const auto widen = dtype_traits(dtype_).to_f32;
  if (!widen || dtype_ == DType::i8)
    fail<ShapeError>("tensor '{}': to_f32() of {} (expected f32, f16, bf16 or a block type)", name_, dtype_name(dtype_));
  if (device_ != Device::cpu) fail<DeviceError>("tensor '{}': to_f32() of memory on {}", name_, device_name(device_));
  Tensor t = empty(DType::f32, shape_, name_);
  widen(data_, t.data<float>(), numel_);
  return t;
}

Tensor Tensor::from_f32(DType dtype) const {
  const auto narrow = dtype_traits(dtype).from_f32;
  if (!narrow)
    fail<ShapeError>("tensor '{}': cannot round to {} (f32, f16, bf16 or a block type with a quantizer)", name_,
                     dtype_name(dtype));
  if (is_block_type(dtype)) {  // a block's scale comes from its extremes: one infinity or NaN spoils all 32
    const float* v = data<float>();
    for (std::int64_t i = 0; i < numel_; ++i)
      if (!std::isfinite(v[i]))
        fail<InputError>("tensor '{}': value {} at {} is not finite; {} needs finite values", name_, v[i], i,
                         dtype_name(dtype));
  }
  Tensor t = empty(dtype, shape_, name_);
  narrow(data<float>(), t.data_, numel_);
  return t;
}

void Tensor::expect(DType dtype, const Shape& shape) const {
  if (dtype != dtype_ || shape != shape_)
    fail<ShapeError>("tensor '{}': expected {} {}, found {} {}", name_, dtype_name(dtype), shape_string(shape),
                     dtype_name(dtype_), shape_string(shape_));
}

void Tensor::expect_rank(DType dtype, int rank) const {
  if (dtype != dtype_ || rank != this->rank())
    fail<ShapeError>("tensor '{}': expected a rank-{} {} tensor, found {} {}", name_, rank, dtype_name(dtype),
                     dtype_name(dtype_), shape_string(shape_));
}

}  // namespace ecr
