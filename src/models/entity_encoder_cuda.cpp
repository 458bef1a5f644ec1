#include "ecr/models/entity_encoder_cuda.hpp"

#include <vector>

#include "../device/tensor_cuda.hpp"
#include "../nn/gemm_cuda.hpp"
#include "ecr/device/transfer_cuda.hpp"
#include "rgcn.cuh"

namespace ecr::cuda {

using detail::native;
using detail::ptr;

RelationGraph RelationGraph::upload(const RelationCsr& csr, Stream& stream) {
  csr.validate();
  RelationGraph g;
  g.num_nodes = csr.num_nodes;
  g.num_relations = csr.num_relations;
  g.indptr = cuda::upload(Tensor::from_vector(csr.indptr, {static_cast<std::int64_t>(csr.indptr.size())}, "indptr"),
                          stream);
  g.sources = cuda::upload(Tensor::from_vector(csr.sources, {csr.num_edges()}, "sources"), stream);
  stream.synchronize();  // so that any stream may use the graph
  return g;
}

namespace {

Tensor as_f32(const Tensor& t, const char* what) {
  if (!t.defined()) fail<ShapeError>("R-GCN: missing tensor '{}'", what);
  if (t.device() != Device::cpu) fail<DeviceError>("R-GCN: tensor '{}' must be given in CPU memory", t.name());
  if (t.dtype() != DType::f32 && t.dtype() != DType::f16 && t.dtype() != DType::bf16)
    fail<ShapeError>("tensor '{}': expected a floating-point R-GCN {}, found {}", t.name(), what, dtype_name(t.dtype()));
  return t.dtype() == DType::f32 ? t : t.to_f32();
}

}  // namespace

EntityEncoder::EntityEncoder(const Tensor& bases_in, const Tensor& comp_in, const Tensor& root_in,
                             const Tensor& bias_in, Stream& stream, DType storage, GemmMath math)
    : storage_(storage), math_(math) {
  const Tensor bases = as_f32(bases_in, "bases");
  const Tensor comp = as_f32(comp_in, "coefficients");
  bases.expect_rank(DType::f32, 3);
  const std::int64_t num_bases = bases.dim(0);
  in_dim_ = bases.dim(1);
  out_dim_ = bases.dim(2);
  comp.expect_rank(DType::f32, 2);
  num_relations_ = comp.dim(0);
  comp.expect(DType::f32, {num_relations_, num_bases});
  const Tensor root = as_f32(root_in, "root");
  root.expect(DType::f32, {in_dim_, out_dim_});
  const Tensor bias = as_f32(bias_in, "bias");
  bias.expect(DType::f32, {out_dim_});
  detail::dispatch(storage, "R-GCN storage", [](auto) {});

  // The CPU twin's choice: relations as channels when R <= B, else the bases.
  const bool by_relation = num_relations_ <= num_bases;
  channels_ = by_relation ? num_relations_ : num_bases;
  const std::int64_t dd = in_dim_ * out_dim_;
  Tensor stacked = empty_device(DType::f32, {(channels_ + 1) * in_dim_, out_dim_}, "R-GCN weights");
  const cudaStream_t s = native(stream);
  const Tensor root_d = cuda::upload(root, stream), bases_d = cuda::upload(bases, stream);
  ECR_CUDA_CHECK(cudaMemcpyAsync(stacked.raw(), root_d.raw(), root_d.nbytes(), cudaMemcpyDeviceToDevice, s));
  float* channel_block = ptr<float>(stacked) + dd;
  std::vector<float> coeff(static_cast<std::size_t>(channels_ * num_relations_), 0.0f);
  const auto c = comp.matrix<float>();
  if (by_relation) {
    // W_r = sum_b comp[r, b] B_b for every r at once: (R x B) x (B x in*out).
    const Tensor comp_d = cuda::upload(comp, stream);
    detail::gemm(detail::blas(stream), false, false, num_relations_, dd, num_bases, 1.0f, comp_d.raw(), num_bases,
                 bases_d.raw(), dd, DType::f32, 0.0f, channel_block, dd, DType::f32, GemmMath::exact);
    for (std::int64_t r = 0; r < num_relations_; ++r) coeff[static_cast<std::size_t>(r * num_relations_ + r)] = 1.0f;
    stream.synchronize();  // comp_d is freed on return from this block
  } else {
    ECR_CUDA_CHECK(cudaMemcpyAsync(channel_block, bases_d.raw(), bases_d.nbytes(), cudaMemcpyDeviceToDevice, s));
    for (std::int64_t k = 0; k < channels_; ++k)
      for (std::int64_t r = 0; r < num_relations_; ++r)
        coeff[static_cast<std::size_t>(k * num_relations_ + r)] = c(r, k);
  }
  weights_ = convert(stacked, storage, stream);
  coeff_ = cuda::upload(Tensor::from_vector(coeff, {channels_, num_relations_}, "R-GCN coefficients"), stream);
  bias_ = cuda::upload(bias, stream);
  stream.synchronize();  // root_d, bases_d and (after conversion) stacked are freed on return
}

Tensor EntityEncoder::forward(const Tensor& x, const RelationGraph& graph, Stream& stream) const {
  detail::expect_matrix(x, "R-GCN");
  if (x.rank() != 2 || x.dtype() != storage_ || x.dim(1) != in_dim_)
    fail<ShapeError>("tensor '{}': R-GCN input must be {} (nodes, {}), found {} {}", x.name(), dtype_name(storage_),
                     in_dim_, dtype_name(x.dtype()), shape_string(x.shape()));
  const std::int64_t n = x.dim(0);
  if (graph.num_nodes != n || graph.num_relations != num_relations_)
    fail<InputError>("R-GCN: the graph has {} nodes and {} relations, the input {} nodes and the layer {} relations",
                     graph.num_nodes, graph.num_relations, n, num_relations_);
  const std::int64_t width = (channels_ + 1) * in_dim_;
  const Tensor z = empty_device(storage_, {n, width}, "R-GCN aggregates");
  Tensor out = empty_device(storage_, {n, out_dim_}, "R-GCN output");
  detail::dispatch(storage_, "R-GCN", [&](auto tag) {
    using T = decltype(tag);
    ECR_CUDA_CHECK(kernels::rgcn_aggregate(ptr<T>(x), n, detail::narrow(in_dim_, "R-GCN"), ptr<std::int64_t>(graph.indptr),
                                           ptr<std::int32_t>(graph.sources), detail::narrow(num_relations_, "R-GCN"),
                                           ptr<float>(coeff_), detail::narrow(channels_, "R-GCN"), ptr<T>(z),
                                           native(stream)));
    ECR_CUDA_CHECK(kernels::broadcast_row(ptr<float>(bias_), ptr<T>(out), n, detail::narrow(out_dim_, "R-GCN"),
                                          native(stream)));
  });
  detail::gemm(detail::blas(stream), false, false, n, out_dim_, width, 1.0f, z.raw(), width, weights_.raw(), out_dim_,
               storage_, 1.0f, out.raw(), out_dim_, storage_, math_);
  stream.synchronize();  // z is freed on return
  return out;
}

}  // namespace ecr::cuda
