// RoBERTa on a CUDA device (CPU twin: ecr::RobertaModel, same HuggingFace semantics and the same
// loader, RobertaWeights::load, so one bundle gives the same weights; docs/math.md section 3).
//
// A forward pass over a batch packs the sequences back to back, as the CPU does: embeddings
// (word + position + token type 0, position ids from RobertaConfig::position_ids) and their
// LayerNorm, then per layer (post-LN): QKV GEMM + bias, bidirectional attention within each
// sequence, output GEMM + bias + residual + LayerNorm, intermediate GEMM + bias + GELU (erf or
// tanh as configured), output GEMM + bias + residual + LayerNorm. Per-sequence lengths play the
// role of a padding mask: no query sees another sequence's keys.
//
// The weights are loaded once and immutable; forward() allocates its own buffers, so threads may
// share one RobertaDevice, each with its own Stream. Storage f32 (default) matches the CPU engine
// to fp32 rounding; f16 / bf16 store weights and activations in half precision and accumulate in
// fp32 (LayerNorm parameters and biases stay f32).
//
// Needs a build with ECR_WITH_CUDA=ON (the class exists only there).
#pragma once

#ifndef ECR_WITH_CUDA
#error "ecr/models/roberta_cuda.hpp needs a build of ecr with ECR_WITH_CUDA=ON"
#endif

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ecr/core/tensor.hpp"
#include "ecr/device/cuda.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/models/roberta.hpp"
#include "ecr/nn/linear_cuda.hpp"

namespace ecr::cuda {

struct RobertaDeviceOptions {
  DType storage = DType::f32;       // f32, f16 or bf16
  GemmMath math = GemmMath::exact;  // tensor_cores: TF32 for f32, tensor-core f16 / bf16 GEMMs
};

class RobertaDevice {
 public:
  // Component `name` (type roberta) of `bundle`, read and checked exactly as RobertaModel::load
  // reads it (ConfigError / ShapeError naming the field or tensor), then copied to the current
  // device. ConfigError when head_dim exceeds what the device attention supports.
  static RobertaDevice load(const Component& component, RobertaDeviceOptions options = {});
  static RobertaDevice load(const Bundle& bundle, std::string_view name, RobertaDeviceOptions options = {});

  const RobertaConfig& config() const;
  const std::string& name() const;
  DType storage() const;

  // Last hidden states: one (T_b, hidden_size) device tensor per sequence in the storage dtype,
  // views of one packed buffer the result owns. Runs on `stream` and returns when the work is
  // done. InputError past config().max_tokens() or for an id outside the vocabulary, as
  // RobertaModel::encode; an empty sequence gives a (0, hidden_size) tensor.
  std::vector<Tensor> forward(Stream& stream, std::span<const std::vector<std::int32_t>> batch) const;

  // The same as CPU f32 tensors: RobertaModel::encode's result, computed on the device.
  std::vector<Tensor> encode(Stream& stream, std::span<const std::vector<std::int32_t>> batch) const;
  std::vector<Tensor> encode(std::span<const std::vector<std::int32_t>> batch) const;  // on a fresh stream

  struct Weights;  // the device tensors (defined in roberta_cuda.cpp)

 private:
  std::shared_ptr<const Weights> weights_;
};

}  // namespace ecr::cuda
