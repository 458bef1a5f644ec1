#include "attention_cuda.hpp"

#include <algorithm>

#include "../device/tensor_cuda.hpp"
#include "attention.cuh"
#include "ecr/device/transfer_cuda.hpp"

namespace ecr::cuda {

using detail::cols;
using detail::native;
using detail::ptr;
using detail::rows;

namespace {

struct Layout {
  std::int64_t batch = 0, heads = 0, capacity = 0, head_dim = 0;
};

// Checks the cache against q and the batch; ShapeError / InputError name what does not fit.
Layout check(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const AttentionBatch& batch,
             const char* what) {
  detail::expect_matrix(q, what);
  detail::expect_matrix(k_cache, what);
  detail::expect_matrix(v_cache, what);
  if (k_cache.rank() != 4 || v_cache.shape() != k_cache.shape() || k_cache.dtype() != q.dtype() ||
      v_cache.dtype() != q.dtype())
    fail<ShapeError>("{}: caches '{}' {} {} and '{}' {} {} must both be (batch, heads, capacity, head_dim) in the "
                     "queries' dtype {}",
                     what, k_cache.name(), dtype_name(k_cache.dtype()), shape_string(k_cache.shape()), v_cache.name(),
                     dtype_name(v_cache.dtype()), shape_string(v_cache.shape()), dtype_name(q.dtype()));
  const Layout l{k_cache.dim(0), k_cache.dim(1), k_cache.dim(2), k_cache.dim(3)};
  if (l.head_dim < 1 || l.head_dim > kernels::kMaxHeadDim)
    fail<ConfigError>("{}: head_dim {} is outside the supported 1..{}", what, l.head_dim, kernels::kMaxHeadDim);
  if (cols(q) < l.heads * l.head_dim)
    fail<ShapeError>("{}: queries '{}' {} have fewer than heads * head_dim = {} columns", what, q.name(),
                     shape_string(q.shape()), l.heads * l.head_dim);
  const auto b = static_cast<std::size_t>(l.batch);
  if (batch.q_start.size() != b || batch.q_count.size() != b || batch.past.size() != b)
    fail<InputError>("{}: the batch describes {}, {} and {} sequences, the cache holds {}", what, batch.q_start.size(),
                     batch.q_count.size(), batch.past.size(), b);
  for (std::size_t i = 0; i < b; ++i) {
    const std::int64_t start = batch.q_start[i], count = batch.q_count[i], past = batch.past[i];
    if (start < 0 || count < 0 || past < 0 || start + count > rows(q) || past + count > l.capacity)
      fail<InputError>("{}: sequence {} (rows {}..{}, {} cached keys) does not fit {} query rows and capacity {}", what,
                       i, start, start + count, past, rows(q), l.capacity);
  }
  return l;
}

// The batch's three arrays on the device, back to back.
Tensor upload_batch(const AttentionBatch& batch, Stream& stream) {
  std::vector<std::int32_t> all(batch.q_start);
  all.insert(all.end(), batch.q_count.begin(), batch.q_count.end());
  all.insert(all.end(), batch.past.begin(), batch.past.end());
  const auto n = static_cast<std::int64_t>(all.size());
  return upload(Tensor::from_vector(all, {n}, "attention batch"), stream);
}

template <class T>
kernels::AttentionParams<T> params(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                   const Tensor& arrays, const Layout& l, float scale, bool causal = true) {
  kernels::AttentionParams<T> p;
  p.q = ptr<T>(q);
  p.k = ptr<T>(k);
  p.v = ptr<T>(v);
  p.out = ptr<T>(out);
  p.q_stride = cols(q);
  p.out_stride = cols(out);
  p.kv_head_stride = l.capacity * l.head_dim;
  p.kv_seq_stride = l.heads * p.kv_head_stride;
  p.q_start = ptr<std::int32_t>(arrays);
  p.q_count = p.q_start + l.batch;
  p.past = p.q_count + l.batch;
  p.batch = static_cast<int>(l.batch);
  p.heads = static_cast<int>(l.heads);
  p.head_dim = static_cast<int>(l.head_dim);
  p.scale = scale;
  p.causal = causal;
  return p;
}

void expect_output(const Tensor& out, const Tensor& q, const Layout& l, const char* what) {
  detail::expect_matrix(out, what);
  if (out.dtype() != q.dtype() || rows(out) != rows(q) || cols(out) != l.heads * l.head_dim)
    fail<ShapeError>("{}: output '{}' must be {} ({}, {}), found {} {}", what, out.name(), dtype_name(q.dtype()),
                     rows(q), l.heads * l.head_dim, dtype_name(out.dtype()), shape_string(out.shape()));
}

int multiprocessors() {
  static const int count = [] {
    int device = 0, n = 0;
    ECR_CUDA_CHECK(cudaGetDevice(&device));
    ECR_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    return n;
  }();
  return count;
}

}  // namespace

void attention_prefill(Stream& stream, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                       const AttentionBatch& batch, Tensor out, float scale) {
  const Layout l = check(q, k_cache, v_cache, batch, "attention_prefill");
  expect_output(out, q, l, "attention_prefill");
  const int most = batch.q_count.empty() ? 0 : *std::max_element(batch.q_count.begin(), batch.q_count.end());
  const Tensor arrays = upload_batch(batch, stream);
  detail::dispatch(q.dtype(), "attention_prefill", [&](auto tag) {
    using T = decltype(tag);
    ECR_CUDA_CHECK(kernels::attention_prefill(params<T>(q, k_cache, v_cache, out, arrays, l, scale, batch.causal), most,
                                              native(stream)));
  });
  stream.synchronize();  // the uploaded arrays are freed on return
}

void attention_decode(Stream& stream, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                      const AttentionBatch& batch, Tensor out, float scale, int keys_per_split) {
  const Layout l = check(q, k_cache, v_cache, batch, "attention_decode");
  expect_output(out, q, l, "attention_decode");
  std::int64_t max_keys = 1;
  for (std::size_t b = 0; b < batch.q_count.size(); ++b) {
    if (batch.q_count[b] != 1)
      fail<InputError>("attention_decode: sequence {} has {} queries; decode takes exactly one", b, batch.q_count[b]);
    max_keys = std::max<std::int64_t>(max_keys, batch.past[b] + 1);
  }
  kernels::DecodeSplit split = kernels::plan_decode(static_cast<int>(l.batch), static_cast<int>(l.heads), max_keys,
                                                    multiprocessors());
  if (keys_per_split > 0)
    split = {keys_per_split, static_cast<int>((max_keys + keys_per_split - 1) / keys_per_split)};
  const std::size_t floats =
      kernels::decode_workspace_floats(static_cast<int>(l.batch), static_cast<int>(l.heads), split,
                                       static_cast<int>(l.head_dim));
  const Tensor workspace =
      floats ? empty_device(DType::f32, {static_cast<std::int64_t>(floats)}, "decode workspace") : Tensor();
  const Tensor arrays = upload_batch(batch, stream);
  detail::dispatch(q.dtype(), "attention_decode", [&](auto tag) {
    using T = decltype(tag);
    ECR_CUDA_CHECK(kernels::attention_decode(params<T>(q, k_cache, v_cache, out, arrays, l, scale), split,
                                             floats ? ptr<float>(workspace) : nullptr, native(stream)));
  });
  stream.synchronize();  // the workspace and arrays are freed on return
}

void append_kv(Stream& stream, const Tensor& keys, const Tensor& values, const AttentionBatch& batch, Tensor k_cache,
               Tensor v_cache) {
  const Layout l = check(keys, k_cache, v_cache, batch, "append_kv");
  if (values.shape() != keys.shape() || values.dtype() != keys.dtype() || cols(keys) != l.heads * l.head_dim)
    fail<ShapeError>("append_kv: keys '{}' {} and values '{}' {} must both be (rows, heads * head_dim = {})",
                     keys.name(), shape_string(keys.shape()), values.name(), shape_string(values.shape()),
                     l.heads * l.head_dim);
  detail::expect_device(values, "append_kv");
  const int most = batch.q_count.empty() ? 0 : *std::max_element(batch.q_count.begin(), batch.q_count.end());
  const Tensor arrays = upload_batch(batch, stream);
  const std::int32_t* starts = ptr<std::int32_t>(arrays);
  detail::dispatch(keys.dtype(), "append_kv", [&](auto tag) {
    using T = decltype(tag);
    ECR_CUDA_CHECK(kernels::append_kv(ptr<T>(keys), ptr<T>(values), cols(keys), ptr<T>(k_cache), ptr<T>(v_cache),
                                      l.heads * l.capacity * l.head_dim, l.capacity * l.head_dim, l.capacity,
                                      static_cast<int>(l.heads), static_cast<int>(l.head_dim), starts,
                                      starts + l.batch, starts + 2 * l.batch, static_cast<int>(l.batch), most,
                                      native(stream)));
  });
  stream.synchronize();
}

}  // namespace ecr::cuda
