// Host wrappers of the row-wise kernels: shape and dtype checks, then one launch each.
#include "ops_cuda.hpp"

#include "../device/tensor_cuda.hpp"
#include "activation.cuh"
#include "ecr/device/transfer_cuda.hpp"
#include "embedding.cuh"
#include "layer_norm.cuh"
#include "softmax.cuh"

namespace ecr::cuda {

using detail::cols;
using detail::expect_matrix;
using detail::native;
using detail::ptr;
using detail::rows;

namespace {

void expect_same(const Tensor& a, const Tensor& b, const char* what) {
  if (a.dtype() != b.dtype() || rows(a) != rows(b) || cols(a) != cols(b))
    fail<ShapeError>("{}: tensor '{}' ({} {}) and tensor '{}' ({} {}) must have the same dtype and shape", what,
                     a.name(), dtype_name(a.dtype()), shape_string(a.shape()), b.name(), dtype_name(b.dtype()),
                     shape_string(b.shape()));
}

// A device f32 vector of `n` entries, or undefined when `optional` and absent.
void expect_vector(const Tensor& v, std::int64_t n, const char* what, bool optional) {
  if (optional && !v.defined()) return;
  detail::expect_device(v, what);
  if (v.dtype() != DType::f32 || v.numel() != n)
    fail<ShapeError>("{}: tensor '{}' must be f32 with {} entries, found {} {}", what, v.name(), n,
                     dtype_name(v.dtype()), shape_string(v.shape()));
}

// The ids on the device after checking them against `limit` rows.
Tensor checked_ids(Stream& stream, std::span<const std::int32_t> ids, std::int64_t limit, const char* what) {
  for (const std::int32_t id : ids)
    if (id < 0 || id >= limit) fail<InputError>("{} {} is outside [0, {})", what, id, limit);
  const auto n = static_cast<std::int64_t>(ids.size());
  return upload(Tensor::from_vector(std::vector<std::int32_t>(ids.begin(), ids.end()), {n}, what), stream);
}

}  // namespace

LayerNorm LayerNorm::upload(const nn::LayerNorm& norm, Stream& stream) {
  return {cuda::upload(norm.weight.to_f32(), stream), cuda::upload(norm.bias.to_f32(), stream), norm.eps};
}

void layer_norm(Stream& stream, const Tensor& x, const LayerNorm& norm, Tensor y) {
  expect_matrix(x, "layer_norm");
  expect_same(x, y, "layer_norm");
  expect_vector(norm.weight, cols(x), "layer_norm", false);
  expect_vector(norm.bias, cols(x), "layer_norm", false);
  detail::dispatch(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    ECR_CUDA_CHECK(kernels::layer_norm(ptr<T>(x), ptr<float>(norm.weight), ptr<float>(norm.bias), ptr<T>(y), rows(x),
                                       detail::narrow(cols(x), "layer_norm"), norm.eps, native(stream)));
  });
}

void residual_layer_norm(Stream& stream, Tensor x, const Tensor& delta, const Tensor& delta_bias,
                         const LayerNorm& norm, Tensor y) {
  expect_matrix(x, "residual_layer_norm");
  expect_same(x, delta, "residual_layer_norm");
  expect_same(x, y, "residual_layer_norm");
  if (x.raw() == y.raw() || delta.raw() == y.raw())
    fail<ShapeError>("residual_layer_norm: the output '{}' must not alias its inputs", y.name());
  expect_vector(delta_bias, cols(x), "residual_layer_norm", true);
  expect_vector(norm.weight, cols(x), "residual_layer_norm", false);
  expect_vector(norm.bias, cols(x), "residual_layer_norm", false);
  detail::dispatch(x.dtype(), "residual_layer_norm", [&](auto tag) {
    using T = decltype(tag);
    ECR_CUDA_CHECK(kernels::residual_layer_norm(ptr<T>(x), ptr<T>(delta),
                                                delta_bias.defined() ? ptr<float>(delta_bias) : nullptr,
                                                ptr<float>(norm.weight), ptr<float>(norm.bias), ptr<T>(y), rows(x),
                                                detail::narrow(cols(x), "residual_layer_norm"), norm.eps,
                                                native(stream)));
  });
}

void bias_activation(Stream& stream, Tensor y, const Tensor& bias, nn::Activation activation) {
  expect_matrix(y, "bias_activation");
  expect_vector(bias, cols(y), "bias_activation", true);
  detail::dispatch(y.dtype(), "bias_activation", [&](auto tag) {
    using T = decltype(tag);
    ECR_CUDA_CHECK(kernels::bias_activation(ptr<T>(y), bias.defined() ? ptr<float>(bias) : nullptr, rows(y),
                                            detail::narrow(cols(y), "bias_activation"), activation,
                                            native(stream)));
  });
}

void softmax_rows(Stream& stream, Tensor x, float scale, const Tensor& valid) {
  expect_matrix(x, "softmax_rows");
  if (valid.defined()) {
    detail::expect_device(valid, "softmax_rows");
    if (valid.dtype() != DType::i32 || valid.numel() != rows(x))
      fail<ShapeError>("softmax_rows: lengths '{}' must be i32 with {} entries, found {} {}", valid.name(), rows(x),
                       dtype_name(valid.dtype()), shape_string(valid.shape()));
  }
  detail::dispatch(x.dtype(), "softmax_rows", [&](auto tag) {
    using T = decltype(tag);
    ECR_CUDA_CHECK(kernels::softmax_rows(ptr<T>(x), rows(x), detail::narrow(cols(x), "softmax_rows"), scale,
                                         valid.defined() ? ptr<std::int32_t>(valid) : nullptr, native(stream)));
  });
}

void gather_rows(Stream& stream, const Tensor& table, std::span<const std::int32_t> ids, Tensor out,
                 const char* what) {
  expect_matrix(table, "gather_rows");
  expect_matrix(out, "gather_rows");
  const auto n = static_cast<std::int64_t>(ids.size());
  if (out.dtype() != table.dtype() || rows(out) != n || cols(out) != cols(table))
    fail<ShapeError>("gather_rows: output '{}' must be {} ({}, {}), found {} {}", out.name(), dtype_name(table.dtype()),
                     n, cols(table), dtype_name(out.dtype()), shape_string(out.shape()));
  const Tensor device_ids = checked_ids(stream, ids, rows(table), what);
  detail::dispatch(table.dtype(), "gather_rows", [&](auto tag) {
    using T = decltype(tag);
    ECR_CUDA_CHECK(kernels::embed<T>(ptr<std::int32_t>(device_ids), n, ptr<T>(table), rows(table), nullptr, 0, 0,
                                     nullptr, ptr<T>(out), detail::narrow(cols(table), "gather_rows"),
                                     native(stream)));
  });
  stream.synchronize();  // device_ids is freed on return
}

void embed(Stream& stream, const Tensor& wte, const Tensor& wpe, std::span<const std::int32_t> ids,
           std::int64_t first_position, Tensor out) {
  expect_matrix(wte, "embed");
  expect_matrix(wpe, "embed");
  expect_matrix(out, "embed");
  const auto n = static_cast<std::int64_t>(ids.size());
  if (wpe.dtype() != wte.dtype() || cols(wpe) != cols(wte) || out.dtype() != wte.dtype() || rows(out) != n ||
      cols(out) != cols(wte))
    fail<ShapeError>("embed: tables '{}' {} {}, '{}' {} {} and output '{}' {} {} do not fit {} ids", wte.name(),
                     dtype_name(wte.dtype()), shape_string(wte.shape()), wpe.name(), dtype_name(wpe.dtype()),
                     shape_string(wpe.shape()), out.name(), dtype_name(out.dtype()), shape_string(out.shape()), n);
  if (n > 0 && (first_position < 0 || first_position + n > rows(wpe)))
    fail<InputError>("position {} is outside [0, {})", first_position < 0 ? first_position : first_position + n - 1,
                     rows(wpe));
  const Tensor device_ids = checked_ids(stream, ids, rows(wte), "token id");
  detail::dispatch(wte.dtype(), "embed", [&](auto tag) {
    using T = decltype(tag);
    ECR_CUDA_CHECK(kernels::embed<T>(ptr<std::int32_t>(device_ids), n, ptr<T>(wte), rows(wte), ptr<T>(wpe), rows(wpe),
                                     first_position, nullptr, ptr<T>(out), detail::narrow(cols(wte), "embed"),
                                     native(stream)));
  });
  stream.synchronize();  // device_ids is freed on return
}

}  // namespace ecr::cuda
