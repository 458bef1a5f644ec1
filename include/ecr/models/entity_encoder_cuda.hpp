// The R-GCN entity encoder on the device (CPU twin: ecr::EntityEncoder, same PyG RGCNConv
// semantics): out_i = x_i R + bias + sum_r mean_{j in N_r(i)} x_j W_r, W_r = sum_b comp[r,b] B_b.
//
// A sparse kernel (kernels/rgcn.cu) averages each node's neighbours per relation and weights
// them into K channels next to the node's own row, z_i = [x_i | agg_i,1 | ... | agg_i,K]; then
// ONE cuBLAS GEMM multiplies z by the stacked [R; C_1; ...; C_K] into an output pre-filled with
// the bias, so root, bias and every channel are a single (N x (K+1) in) x ((K+1) in x out) GEMM.
// Channels are chosen as on the CPU: the W_r themselves when R <= B (combined once, by a GEMM,
// at construction), else the bases weighted by comp.
//
// Needs a build with ECR_WITH_CUDA=ON (the classes exist only there).
#pragma once

#ifndef ECR_WITH_CUDA
#error "ecr/models/entity_encoder_cuda.hpp needs a build of ecr with ECR_WITH_CUDA=ON"
#endif

#include <cstdint>

#include "ecr/core/tensor.hpp"
#include "ecr/device/cuda.hpp"
#include "ecr/models/entity_encoder.hpp"
#include "ecr/nn/linear_cuda.hpp"

namespace ecr::cuda {

// A RelationCsr in device memory (validated on upload: InputError for a malformed graph).
struct RelationGraph {
  std::int64_t num_nodes = 0;
  std::int64_t num_relations = 0;
  Tensor indptr;   // i64 (num_relations * num_nodes + 1)
  Tensor sources;  // i32 (edges)
  static RelationGraph upload(const RelationCsr& csr, Stream& stream);
};

class EntityEncoder {
 public:
  // The PyG parameters as ecr::EntityEncoder takes them (CPU tensors, f32/f16/bf16): bases
  // (B, in, out), comp (R, B), root (in, out), bias (out). Weights are stored on the device as
  // `storage`; the GEMM runs with `math`. ShapeError naming the tensor on a mismatch.
  EntityEncoder(const Tensor& bases, const Tensor& comp, const Tensor& root, const Tensor& bias, Stream& stream,
                DType storage = DType::f32, GemmMath math = GemmMath::exact);

  std::int64_t in_dim() const { return in_dim_; }
  std::int64_t out_dim() const { return out_dim_; }
  std::int64_t num_relations() const { return num_relations_; }
  std::int64_t channels() const { return channels_; }
  DType storage() const { return storage_; }

  // x: (num_nodes, in) device tensor in the storage dtype -> (num_nodes, out), same dtype.
  Tensor forward(const Tensor& x, const RelationGraph& graph, Stream& stream) const;

 private:
  std::int64_t in_dim_ = 0, out_dim_ = 0, num_relations_ = 0, channels_ = 0;
  DType storage_ = DType::f32;
  GemmMath math_ = GemmMath::exact;
  Tensor weights_;  // ((channels + 1) * in, out): root, then each channel's matrix
  Tensor coeff_;    // (channels, relations) f32: the weight of relation r's mean in channel k
  Tensor bias_;     // (out) f32
};

}  // namespace ecr::cuda
