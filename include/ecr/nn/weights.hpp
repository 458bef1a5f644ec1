// Reading a model's weights out of a bundle. Every tensor is checked against the shape the
// model's config implies before any op sees it, so a bundle that does not fit its config fails
// at load with a ShapeError naming the tensor, never later with a bad read.
//
// int8 matrices (docs/format.md) are i8 tensors with an f32 `<name>.scale` beside them, one scale
// per output channel: per row of an (out, in) matrix or an embedding table, per column of a
// GPT-2 Conv1D weight stored (in, out).
#pragma once

#include <optional>
#include <string>

#include "ecr/core/tensor.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/io/component.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/nn/ops.hpp"

namespace ecr::nn {

// How a loader keeps a weight matrix: DType::f32 widens it (what every model but GPT-2 computes
// with), kAsStored keeps the bundle's dtype, f16 / bf16 / i8 cast it at load (cast_matrix).
using MatrixType = std::optional<DType>;
inline constexpr MatrixType kAsStored = std::nullopt;

// The tensor `name` as f32 with `shape`: f32 tensors stay views into the bundle, f16 and bf16
// ones are converted, an i8 matrix is multiplied out by its per-row scale. ShapeError (naming the
// bundle and tensor) on another shape or dtype; FormatError when it holds NaN or infinity
// (Bundle::finite_tensor).
Tensor load_weight(const Bundle& bundle, const std::string& name, const Shape& shape);

// The (out, in) matrix `name`, and its scale when stored i8, as `type` says; bias undefined.
// ShapeError naming the weight or its scale when either does not fit.
Linear load_matrix(const Bundle& bundle, const std::string& name, const Shape& shape, MatrixType type);
// A Linear from `prefix.weight` stored (out, in) (nn.Linear) and `prefix.bias` (out).
Linear load_linear(const Bundle& bundle, const std::string& prefix, std::int64_t in, std::int64_t out,
                   MatrixType type = DType::f32);
// How a GPT-2 component stores its Conv1D weights (docs/format.md, "conv1d_layout"): (in, out)
// as HuggingFace does, or (out, in) as the converter writes them. Absent means in_out (older
// bundles); any other value is a ConfigError naming the component.
enum class Conv1dLayout { in_out, out_in };
Conv1dLayout conv1d_layout(const Component& component);
// A Linear from GPT-2's Conv1D `prefix.weight` and `prefix.bias` (out): an (out, in) weight is
// read like load_linear's, an (in, out) one transposed in its stored dtype.
Linear load_conv1d(const Bundle& bundle, const std::string& prefix, std::int64_t in, std::int64_t out,
                   MatrixType type = DType::f32, Conv1dLayout layout = Conv1dLayout::in_out);
// A LayerNorm from `prefix.weight` and `prefix.bias`, both (dim).
LayerNorm load_layer_norm(const Bundle& bundle, const std::string& prefix, std::int64_t dim, float eps);

// `matrix`'s weight (and scale) as `dtype`, bias kept: f32 multiplies out an i8 scale; f16 and
// bf16 round to nearest even; i8 quantizes each row symmetrically with scale max|row| / 127 (1
// for an all-zero row), as tools/convert.py --dtype int8 does; the block types with a quantizer
// (q8_0, q4_0, q4_1, q5_0, q5_1) quantize each block of 32 as GGML does (ShapeError naming the
// weight when `in` is not a multiple of 32; the k-quants have no quantizer). The same dtype
// returns it as it is.
Linear cast_matrix(const Linear& matrix, DType dtype);

}  // namespace ecr::nn
