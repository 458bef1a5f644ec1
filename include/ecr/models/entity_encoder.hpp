// EntityEncoder: the R-GCN layer of KGPrompt (basis decomposition, mean aggregation per
// relation, root weight, bias), with PyG RGCNConv's semantics:
//   out_i = x_i R + bias + sum_r mean_{j in N_r(i)} x_j W_r,   W_r = sum_b comp[r,b] B_b.
// It runs once at load to build the entity table, so it is written for throughput: neighbours
// are averaged first, then each relation (or basis) costs one GEMM, never a matrix per edge.
// Threads take fixed blocks of target nodes, so the result does not depend on their number.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ecr/core/tensor.hpp"
#include "ecr/core/thread_pool.hpp"

namespace ecr {

class KnowledgeGraph;

// A graph's edges grouped by relation and target: the sources j of the edges j -> i with
// relation r are sources[indptr[r * num_nodes + i] .. indptr[r * num_nodes + i + 1]).
struct RelationCsr {
  std::int64_t num_nodes = 0;
  std::int64_t num_relations = 0;
  std::vector<std::int64_t> indptr;  // num_relations * num_nodes + 1 offsets
  std::vector<std::int32_t> sources;

  // Groups (source, target, relation) triples. Duplicates are kept and each counts in the
  // mean, as in PyG; removing them is the graph builder's job. Throws InputError on an id out
  // of range or arrays of different lengths.
  static RelationCsr from_edges(std::int64_t num_nodes, std::int64_t num_relations,
                                std::span<const std::int64_t> source, std::span<const std::int64_t> target,
                                std::span<const std::int64_t> relation);

  // The knowledge graph's R-GCN edges (docs/math.md section 3): the graph keeps them in this very
  // layout (already validated), so this is one copy of its two arrays.
  static RelationCsr from_graph(const KnowledgeGraph& kg);

  std::int64_t num_edges() const { return static_cast<std::int64_t>(sources.size()); }
  // Throws InputError unless the offsets are monotone, complete and every source is a node.
  void validate() const;
};

class EntityEncoder {
 public:
  EntityEncoder() = default;
  // PyG RGCNConv parameters: bases `weight` (num_bases, in, out), `comp` (num_relations,
  // num_bases), `root` (in, out), `bias` (out). f16/bf16 are widened to f32. Throws ShapeError
  // naming the tensor when the shapes disagree.
  EntityEncoder(const Tensor& bases, const Tensor& comp, const Tensor& root, const Tensor& bias);

  std::int64_t in_dim() const { return in_dim_; }
  std::int64_t out_dim() const { return out_dim_; }
  std::int64_t num_relations() const { return num_relations_; }
  std::int64_t num_bases() const { return num_bases_; }

  // x: (num_nodes, in) f32 -> (num_nodes, out) f32. Throws ShapeError / InputError when x or
  // the edges do not fit the layer.
  Tensor forward(const Tensor& x, const RelationCsr& edges, ThreadPool& pool) const;

 private:
  std::int64_t in_dim_ = 0, out_dim_ = 0, num_relations_ = 0, num_bases_ = 0;
  // The GEMM operands: `channels_` matrices (in, out) stacked, and coeff_(k, r), the weight of
  // relation r's neighbour mean in channel k. With R <= B the channels are the W_r themselves
  // (identity coefficients); otherwise they are the bases, weighted by comp.
  Tensor channels_;  // (K, in, out)
  RowMatrix<float> coeff_;  // (K, R)
  Tensor root_;      // (in, out)
  Tensor bias_;      // (out)
};

}  // namespace ecr
