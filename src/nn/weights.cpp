#include "ecr/nn/weights.hpp"

namespace ecr::nn {

Tensor load_weight(const Bundle& bundle, const std::string& name, const Shape& shape) {
  Tensor t = bundle.finite_tensor(name);  // NaN or infinity: FormatError naming the tensor
  const bool floating = t.dtype() == DType::f32 || t.dtype() == DType::f16 || t.dtype() == DType::bf16;
  if (!floating || t.shape() != shape)
    fail<ShapeError>("bundle '{}': tensor '{}': expected f32, f16 or bf16 {}, found {} {}", bundle.label(), name,
                     shape_string(shape), dtype_name(t.dtype()), shape_string(t.shape()));
  if (t.dtype() != DType::f32) t = t.to_f32();
  t.set_name(name);
  return t;
}

Linear load_linear(const Bundle& bundle, const std::string& prefix, std::int64_t in, std::int64_t out) {
  return {load_weight(bundle, prefix + ".weight", {out, in}), load_weight(bundle, prefix + ".bias", {out})};
}

Linear load_conv1d(const Bundle& bundle, const std::string& prefix, std::int64_t in, std::int64_t out) {
  const std::string name = prefix + ".weight";
  const Tensor stored = load_weight(bundle, name, {in, out});
  Tensor weight = Tensor::empty(DType::f32, {out, in}, name);
  weight.matrix<float>() = stored.matrix<float>().transpose();
  return {std::move(weight), load_weight(bundle, prefix + ".bias", {out})};
}

LayerNorm load_layer_norm(const Bundle& bundle, const std::string& prefix, std::int64_t dim, float eps) {
  return {load_weight(bundle, prefix + ".weight", {dim}), load_weight(bundle, prefix + ".bias", {dim}), eps};
}

}  // namespace ecr::nn
