// KGPrompt on the device (CPU twin: ecr::PromptEncoder, docs/math.md section 4): the whole prompt
// (cuda::PromptDevice) and its per-request steps, the token-entity cross-attention and ECR's
// emotion fusion.
//
// Needs a build with ECR_WITH_CUDA=ON (the classes exist only there).
#pragma once

#ifndef ECR_WITH_CUDA
#error "ecr/models/prompt_encoder_cuda.hpp needs a build of ecr with ECR_WITH_CUDA=ON"
#endif

#include <cstdint>
#include <memory>
#include <span>

#include "ecr/core/tensor.hpp"
#include "ecr/device/cuda.hpp"
#include "ecr/io/component.hpp"
#include "ecr/kg/cooccurrence.hpp"
#include "ecr/models/prompt_encoder.hpp"
#include "ecr/nn/linear_cuda.hpp"

namespace ecr::cuda {

// Steps 2-3 of the prompt: A = cross_attn(Tk) Ek^T / H (cross_attn a bias-free Linear(H, H)), then
//   rec:  P = softmax_over_tokens(A)^T Tk + Ek   (L, H)
//   conv: P = softmax_over_entities(A) Ek + Tk   (n, H)
// tokens Tk (n, H) and entities Ek (L, H) are device tensors in the layer's storage dtype.
Tensor token_entity_attention(Stream& stream, PromptKind kind, const Tensor& tokens, const Tensor& entities,
                              const Linear& cross_attn, GemmMath math = GemmMath::exact);

// ECR's emotion fusion (steps 4-5): each entity row joined with its emotion mixture
// mu_l = sum_k prob[l, k] M[emo[l, k]], optionally followed by the global entity rows G[e]
// carrying the same emotions, then fuse2(relu-MLP fuse1(.)) with no residual.
class EmotionFusion {
 public:
  // emotion_table M (n_emotion + 1, h) and global_table G (N, H) (undefined: no global rows)
  // are CPU tensors, or device tensors (then ready: written on a synchronized stream); the layers are KGPrompt's emo_fuse_proj1.0 (H+h -> H), emo_fuse_proj1.2
  // (H -> H+h) and emo_fuse_proj2 (H+h -> H). All are stored on the device as `storage`.
  EmotionFusion(const Tensor& emotion_table, const Tensor& global_table, const nn::Linear& fuse1_first,
                const nn::Linear& fuse1_second, const nn::Linear& fuse2, Stream& stream, DType storage = DType::f32,
                GemmMath math = GemmMath::exact);

  std::int64_t hidden() const { return hidden_; }
  std::int64_t emotion_dim() const { return emotion_dim_; }

  // local: (L, H) device rows P of the entities `entities`; emotion ids / probabilities are
  // (L, K) row-major. Returns (L, H), or (2L, H) with `global_entities`. InputError for ids out
  // of range or inconsistent lengths.
  Tensor forward(Stream& stream, const Tensor& local, std::span<const std::int32_t> entities,
                 std::span<const std::int32_t> emotion_ids, std::span<const float> emotion_probs,
                 bool global_entities) const;

 private:
  std::int64_t hidden_ = 0, emotion_dim_ = 0;
  DType storage_ = DType::f32;
  GemmMath math_ = GemmMath::exact;
  Tensor emotions_;  // M
  Tensor global_;    // G
  Linear fuse1_first_, fuse1_second_, fuse2_;
};

struct PromptDeviceOptions {
  DType storage = DType::f32;       // f32, f16 or bf16
  GemmMath math = GemmMath::exact;  // tensor_cores: TF32 for f32, tensor-core f16 / bf16 GEMMs
};

// A rec or conv KGPrompt in device memory. The component is read by the CPU twin's loader (same
// checks, same errors); the static tables the bundle does not store are built on the device at
// load: E with cuda::EntityEncoder and the entity projections, M and the prefix rows with device
// GEMMs. G = C E multiplies the device-built E by the sparse co-occurrence matrix on the host
// (there is no sparse device kernel) and uploads the result. Immutable after load: threads may
// share it, each with its own Stream.
class PromptDevice {
 public:
  // As PromptEncoder::load; `cooccurrence` is needed for a rec prompt's global entities.
  static PromptDevice load(const Component& component, const RelationCsr& edges,
                           const CooccurrenceMatrix* cooccurrence = nullptr, PromptDeviceOptions options = {});

  const PromptConfig& config() const;
  DType storage() const;
  // The static tables, device tensors in the storage dtype: E (N, H), M (n_emotion + 1, h; rec),
  // G (N, H; rec loaded with a co-occurrence matrix, else undefined), the prefix rows
  // (n_prefix, n_layer * 2 * H).
  const Tensor& entity_table() const;
  const Tensor& emotion_table() const;
  const Tensor& global_entity_table() const;
  const Tensor& prefix_rows() const;

  // PromptEncoder::rec_prompt with input.token_states a device (n, T) tensor in the storage dtype
  // (RobertaDevice::forward's). Returns the prefix as a device (rows, n_layer * 2 * H) tensor in
  // the storage dtype, finished (the stream is synchronized), ready for Gpt2Device::start. The
  // same errors as the CPU twin.
  Tensor rec_prompt(Stream& stream, const RecPromptInput& input) const;
  // PromptEncoder::conv_prompt, the same way.
  Tensor conv_prompt(Stream& stream, const Tensor& token_states, std::span<const std::int32_t> entities) const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ecr::cuda
