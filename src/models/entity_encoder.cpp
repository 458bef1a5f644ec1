#include "ecr/models/entity_encoder.hpp"

#include <algorithm>
#include <limits>

#include "ecr/kg/knowledge_graph.hpp"

namespace ecr {

namespace {

// Keeps num_relations * num_nodes (the offset count) far inside 64 bits.
constexpr std::int64_t kMaxRelations = 1 << 20;

// Target nodes per thread task: big enough for an efficient GEMM, small enough for the
// aggregation buffer to stay in cache.
constexpr std::int64_t kBlockRows = 256;

Tensor as_f32(const Tensor& t, const char* what) {
  if (!t.defined()) fail<ShapeError>("R-GCN: missing tensor '{}'", what);
  if (t.dtype() != DType::f32 && t.dtype() != DType::f16 && t.dtype() != DType::bf16)
    fail<ShapeError>("tensor '{}': expected a floating-point R-GCN {}, found {}", t.name(), what, dtype_name(t.dtype()));
  return t.dtype() == DType::f32 ? t : t.to_f32();
}

}  // namespace

RelationCsr RelationCsr::from_edges(std::int64_t num_nodes, std::int64_t num_relations,
                                    std::span<const std::int64_t> source, std::span<const std::int64_t> target,
                                    std::span<const std::int64_t> relation) {
  if (num_nodes < 0 || num_nodes > std::numeric_limits<std::int32_t>::max() || num_relations < 0 ||
      num_relations > kMaxRelations)
    fail<InputError>("relation graph: {} nodes and {} relations are out of range", num_nodes, num_relations);
  if (source.size() != target.size() || source.size() != relation.size())
    fail<InputError>("relation graph: {} sources, {} targets and {} relations differ in length", source.size(),
                     target.size(), relation.size());
  RelationCsr csr;
  csr.num_nodes = num_nodes;
  csr.num_relations = num_relations;
  csr.indptr.assign(static_cast<std::size_t>(num_relations * num_nodes + 1), 0);
  for (std::size_t e = 0; e < source.size(); ++e) {
    const std::int64_t j = source[e], i = target[e], r = relation[e];
    if (j < 0 || j >= num_nodes || i < 0 || i >= num_nodes || r < 0 || r >= num_relations)
      fail<InputError>("relation graph: edge {} ({} -> {}, relation {}) outside {} nodes and {} relations", e, j, i, r,
                       num_nodes, num_relations);
    ++csr.indptr[static_cast<std::size_t>(r * num_nodes + i + 1)];
  }
  for (std::size_t k = 1; k < csr.indptr.size(); ++k) csr.indptr[k] += csr.indptr[k - 1];
  // Counting sort keeps each row's sources in input order.
  std::vector<std::int64_t> cursor(csr.indptr.begin(), csr.indptr.end() - 1);
  csr.sources.resize(source.size());
  for (std::size_t e = 0; e < source.size(); ++e) {
    auto& at = cursor[static_cast<std::size_t>(relation[e] * num_nodes + target[e])];
    csr.sources[static_cast<std::size_t>(at++)] = static_cast<std::int32_t>(source[e]);
  }
  return csr;
}

RelationCsr RelationCsr::from_graph(const KnowledgeGraph& kg) {
  RelationCsr csr;
  csr.num_nodes = kg.num_entities();
  csr.num_relations = kg.num_relations();
  csr.indptr.assign(kg.edge_indptr().begin(), kg.edge_indptr().end());
  csr.sources.assign(kg.edge_sources().begin(), kg.edge_sources().end());
  return csr;
}

void RelationCsr::validate() const {
  if (num_nodes < 0 || num_nodes > std::numeric_limits<std::int32_t>::max() || num_relations < 0 ||
      num_relations > kMaxRelations ||
      indptr.size() != static_cast<std::size_t>(num_relations * num_nodes + 1) || indptr.front() != 0 ||
      indptr.back() != num_edges())
    fail<InputError>("relation graph: {} offsets for {} nodes x {} relations and {} edges are inconsistent",
                     indptr.size(), num_nodes, num_relations, sources.size());
  for (std::size_t k = 1; k < indptr.size(); ++k)
    if (indptr[k] < indptr[k - 1]) fail<InputError>("relation graph: offsets decrease at row {}", k - 1);
  for (std::int32_t j : sources)
    if (j < 0 || j >= num_nodes) fail<InputError>("relation graph: source {} outside {} nodes", j, num_nodes);
}


EntityEncoder::EntityEncoder(const Tensor& bases_in, const Tensor& comp_in, const Tensor& root_in,
                             const Tensor& bias_in) {
  const Tensor bases = as_f32(bases_in, "bases");
  const Tensor comp = as_f32(comp_in, "coefficients");
  bases.expect_rank(DType::f32, 3);
  num_bases_ = bases.dim(0);
  in_dim_ = bases.dim(1);
  out_dim_ = bases.dim(2);
  comp.expect_rank(DType::f32, 2);
  num_relations_ = comp.dim(0);
  comp.expect(DType::f32, {num_relations_, num_bases_});
  root_ = as_f32(root_in, "root");
  root_.expect(DType::f32, {in_dim_, out_dim_});
  bias_ = as_f32(bias_in, "bias");
  bias_.expect(DType::f32, {out_dim_});

  // The layer costs one (N x in) x (in x out) GEMM per channel, plus a sparse pass per
  // (channel, relation) pair with a non-zero coefficient. Relations as channels need R GEMMs
  // and one pass per relation; bases as channels need B GEMMs and B passes per relation. So
  // relations win whenever R <= B (the ReDial and DBpedia KGs), bases only for many relations.
  const std::int64_t dd = in_dim_ * out_dim_;
  const auto bases_flat = bases.reshape({num_bases_, dd}).matrix<float>();
  const auto c = comp.matrix<float>();
  if (num_relations_ <= num_bases_) {
    channels_ = Tensor::empty(DType::f32, {num_relations_, in_dim_, out_dim_}, "R-GCN relation weights");
    // W_r = sum_b comp[r, b] B_b, as PyG forms it.
    channels_.reshape({num_relations_, dd}).matrix<float>().noalias() = c * bases_flat;
    coeff_ = RowMatrix<float>::Identity(num_relations_, num_relations_);
  } else {
    channels_ = bases.clone();
    coeff_ = c.transpose();
  }
}

Tensor EntityEncoder::forward(const Tensor& x, const RelationCsr& edges, ThreadPool& pool) const {
  x.expect_rank(DType::f32, 2);
  const std::int64_t n = x.dim(0);
  if (x.dim(1) != in_dim_)
    fail<ShapeError>("tensor '{}': R-GCN input has {} features per node, the layer expects {}", x.name(), x.dim(1),
                     in_dim_);
  if (edges.num_nodes != n || edges.num_relations != num_relations_)
    fail<InputError>("R-GCN: the graph has {} nodes and {} relations, the input {} nodes and the layer {} relations",
                     edges.num_nodes, edges.num_relations, n, num_relations_);
  edges.validate();

  const auto xm = x.matrix<float>();
  const auto root = root_.matrix<float>();
  const auto bias = bias_.vector<float>().transpose();
  Tensor out = Tensor::empty(DType::f32, {n, out_dim_}, "R-GCN output");
  auto y = out.matrix<float>();
  const std::int64_t dd = in_dim_ * out_dim_;
  const std::int64_t blocks = (n + kBlockRows - 1) / kBlockRows;
  pool.parallel_for(static_cast<std::size_t>(blocks), [&](std::size_t b) {
    const std::int64_t first = static_cast<std::int64_t>(b) * kBlockRows;
    const std::int64_t rows = std::min(kBlockRows, n - first);
    auto yb = y.middleRows(first, rows);
    yb.noalias() = xm.middleRows(first, rows) * root;
    yb.rowwise() += bias;
    // Per channel: the coefficient-weighted neighbour means of these targets, then one GEMM.
    RowMatrix<float> agg(rows, in_dim_);
    for (std::int64_t k = 0; k < coeff_.rows(); ++k) {
      agg.setZero();
      bool any = false;
      for (std::int64_t r = 0; r < num_relations_; ++r) {
        const float w = coeff_(k, r);
        if (w == 0.0f) continue;
        const std::int64_t* ptr = edges.indptr.data() + r * n + first;
        for (std::int64_t i = 0; i < rows; ++i) {
          const std::int64_t begin = ptr[i], end = ptr[i + 1];
          if (begin == end) continue;
          auto row = agg.row(i);
          const float scale = w / static_cast<float>(end - begin);
          for (std::int64_t e = begin; e < end; ++e)
            row.noalias() += scale * xm.row(edges.sources[static_cast<std::size_t>(e)]);
          any = true;
        }
      }
      if (any) yb.noalias() += agg * MatrixMap<const float>(channels_.data<float>() + k * dd, in_dim_, out_dim_);
    }
  });
  return out;
}

}  // namespace ecr
