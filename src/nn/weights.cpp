#include "ecr/nn/weights.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace ecr::nn {

namespace {

bool is_floating(DType d) { return d == DType::f32 || d == DType::f16 || d == DType::bf16; }

// The stored matrix `name` with `shape` and, when it is i8, its scale over dimension `channels`.
Linear read_matrix(const Bundle& bundle, const std::string& name, const Shape& shape, int channels) {
  Tensor t = bundle.finite_tensor(name);  // NaN or infinity: FormatError naming the tensor
  if ((!is_floating(t.dtype()) && t.dtype() != DType::i8) || t.shape() != shape)
    fail<ShapeError>("bundle '{}': tensor '{}': expected f32, f16, bf16 or i8 {}, found {} {}", bundle.label(), name,
                     shape_string(shape), dtype_name(t.dtype()), shape_string(t.shape()));
  t.set_name(name);
  Linear m{t, {}, {}};
  if (t.dtype() == DType::i8) {
    const std::string scale_name = name + ".scale";
    const Shape scale_shape{shape[static_cast<std::size_t>(channels)]};
    if (!bundle.contains(scale_name))
      fail<ShapeError>("bundle '{}': i8 tensor '{}' has no scale tensor '{}' (f32 {})", bundle.label(), name,
                       scale_name, shape_string(scale_shape));
    m.scale = bundle.finite_tensor(scale_name);
    if (m.scale.dtype() != DType::f32 || m.scale.shape() != scale_shape)
      fail<ShapeError>("bundle '{}': tensor '{}': expected f32 {}, found {} {}", bundle.label(), scale_name,
                       shape_string(scale_shape), dtype_name(m.scale.dtype()), shape_string(m.scale.shape()));
    m.scale.set_name(scale_name);
  }
  return m;
}

// In 16 x 16 tiles: a tile's rows and columns both stay in L1, so the strided side of the copy
// hits cache. Eigen's element-by-element transpose of GPT-2's 85 M Conv1D weights was most of
// the backbone's load (about 4x slower on a 768 x 3072 bf16 matrix).
template <class T>
Tensor transposed(const Tensor& stored) {
  constexpr std::int64_t kTile = 16;
  const std::int64_t rows = stored.dim(0), cols = stored.dim(1);
  Tensor t = Tensor::empty(stored.dtype(), {cols, rows}, stored.name());
  const T* from = static_cast<const T*>(stored.raw());  // a bundle tensor of T's size
  T* to = static_cast<T*>(t.raw());
  for (std::int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (std::int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const std::int64_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
      for (std::int64_t c = c0; c < c1; ++c)
        for (std::int64_t r = r0; r < r1; ++r) to[c * rows + r] = from[r * cols + c];
    }
  return t;
}

Tensor transposed(const Tensor& stored) {
  switch (stored.dtype()) {
    case DType::f16:  // the bits move, not the values
    case DType::bf16: return transposed<std::uint16_t>(stored);
    case DType::i8: return transposed<std::int8_t>(stored);
    default:
      if (is_block_type(stored.dtype()))  // a column of blocks is no block
        fail<ShapeError>("tensor '{}': a {} matrix cannot be transposed", stored.name(), dtype_name(stored.dtype()));
      return transposed<float>(stored);
  }
}

Linear as_type(Linear m, MatrixType type) { return type ? cast_matrix(m, *type) : m; }

}  // namespace

Tensor load_weight(const Bundle& bundle, const std::string& name, const Shape& shape) {
  if (shape.size() == 2) {
    const Linear m = read_matrix(bundle, name, shape, 0);
    return m.weight.dtype() == DType::f32 ? m.weight : cast_matrix(m, DType::f32).weight;
  }
  Tensor t = bundle.finite_tensor(name);
  if (!is_floating(t.dtype()) || t.shape() != shape)
    fail<ShapeError>("bundle '{}': tensor '{}': expected f32, f16 or bf16 {}, found {} {}", bundle.label(), name,
                     shape_string(shape), dtype_name(t.dtype()), shape_string(t.shape()));
  if (t.dtype() != DType::f32) t = t.to_f32();
  t.set_name(name);
  return t;
}

Linear load_matrix(const Bundle& bundle, const std::string& name, const Shape& shape, MatrixType type) {
  return as_type(read_matrix(bundle, name, shape, 0), type);
}

Linear load_linear(const Bundle& bundle, const std::string& prefix, std::int64_t in, std::int64_t out,
                   MatrixType type) {
  Linear m = load_matrix(bundle, prefix + ".weight", {out, in}, type);
  m.bias = load_weight(bundle, prefix + ".bias", {out});
  return m;
}

Conv1dLayout conv1d_layout(const Component& component) {
  const std::string layout = component.entry.string_or("conv1d_layout", "in_out");
  if (layout == "in_out") return Conv1dLayout::in_out;
  if (layout == "out_in") return Conv1dLayout::out_in;
  fail<ConfigError>("{}: conv1d_layout is '{}', expected \"in_out\" or \"out_in\"", component.entry.where(), layout);
}

Linear load_conv1d(const Bundle& bundle, const std::string& prefix, std::int64_t in, std::int64_t out,
                   MatrixType type, Conv1dLayout layout) {
  if (layout == Conv1dLayout::out_in) return load_linear(bundle, prefix, in, out, type);
  Linear m = read_matrix(bundle, prefix + ".weight", {in, out}, 1);
  m.weight = transposed(m.weight);
  m = as_type(std::move(m), type);
  m.bias = load_weight(bundle, prefix + ".bias", {out});
  return m;
}

LayerNorm load_layer_norm(const Bundle& bundle, const std::string& prefix, std::int64_t dim, float eps) {
  return {load_weight(bundle, prefix + ".weight", {dim}), load_weight(bundle, prefix + ".bias", {dim}), eps};
}

Linear cast_matrix(const Linear& matrix, DType dtype) {
  const Tensor& w = matrix.weight;
  if (w.dtype() == dtype) return matrix;
  const DTypeTraits& to = dtype_traits(dtype);
  if (to.linear == LinearKernel::none || (!to.from_f32 && dtype != DType::i8))
    fail<ShapeError>("weight '{}': cannot cast to {} (f32, f16, bf16, i8 or a block type with a quantizer: q8_0, "
                     "q4_0, q4_1, q5_0, q5_1)",
                     w.name(), dtype_name(dtype));
  Tensor values;
  if (w.dtype() == DType::i8) {
    values = Tensor::empty(DType::f32, w.shape(), w.name());
    values.matrix<float>() = w.matrix<std::int8_t>().cast<float>().array().colwise() *
                             matrix.scale.vector<float>().array();
  } else {
    values = w.to_f32();
  }
  Linear out{{}, matrix.bias, {}};
  if (dtype == DType::f32) {
    out.weight = std::move(values);
  } else if (dtype != DType::i8) {
    out.weight = values.from_f32(dtype);
  } else {
    out.weight = Tensor::empty(DType::i8, w.shape(), w.name());
    out.scale = Tensor::empty(DType::f32, {w.dim(0)}, w.name() + ".scale");
    const auto v = values.matrix<float>();
    auto q = out.weight.matrix<std::int8_t>();
    float* scale = out.scale.data<float>();
    for (Eigen::Index r = 0; r < v.rows(); ++r) {
      const float amax = v.cols() == 0 ? 0.0f : v.row(r).cwiseAbs().maxCoeff();
      scale[r] = amax > 0.0f ? amax / 127.0f : 1.0f;
      for (Eigen::Index c = 0; c < v.cols(); ++c)
        q(r, c) = static_cast<std::int8_t>(std::clamp(std::nearbyint(v(r, c) / scale[r]), -127.0f, 127.0f));
    }
  }
  return out;
}

}  // namespace ecr::nn
