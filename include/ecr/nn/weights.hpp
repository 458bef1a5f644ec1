// Reading a model's weights out of a bundle. Every tensor is checked against the shape the
// model's config implies before any op sees it, so a bundle that does not fit its config fails
// at load with a ShapeError naming the tensor, never later with a bad read.
#pragma once

#include <string>

#include "ecr/core/tensor.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/nn/ops.hpp"

namespace ecr::nn {

// The tensor `name` as f32 with `shape`: f32 tensors stay views into the bundle, f16 and bf16
// ones are converted. ShapeError (naming the bundle and tensor) on another shape or dtype;
// FormatError when it holds NaN or infinity (Bundle::finite_tensor).
Tensor load_weight(const Bundle& bundle, const std::string& name, const Shape& shape);

// A Linear from `prefix.weight` stored (out, in) (nn.Linear) and `prefix.bias` (out).
Linear load_linear(const Bundle& bundle, const std::string& prefix, std::int64_t in, std::int64_t out);
// A Linear from `prefix.weight` stored (in, out) (GPT-2's Conv1D), transposed, and `prefix.bias`.
Linear load_conv1d(const Bundle& bundle, const std::string& prefix, std::int64_t in, std::int64_t out);
// A LayerNorm from `prefix.weight` and `prefix.bias`, both (dim).
LayerNorm load_layer_norm(const Bundle& bundle, const std::string& prefix, std::int64_t dim, float eps);

}  // namespace ecr::nn
