// KGPrompt's per-request steps on the device (CPU twin: ecr::PromptEncoder, ECR_SPEC section 4):
// the token-entity cross-attention and ECR's emotion fusion.
//
// Needs a build with ECR_WITH_CUDA=ON (the classes exist only there).
#pragma once

#ifndef ECR_WITH_CUDA
#error "ecr/models/prompt_encoder_cuda.hpp needs a build of ecr with ECR_WITH_CUDA=ON"
#endif

#include <cstdint>
#include <span>

#include "ecr/core/tensor.hpp"
#include "ecr/device/cuda.hpp"
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
  // are CPU tensors; the layers are KGPrompt's emo_fuse_proj1.0 (H+h -> H), emo_fuse_proj1.2
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

}  // namespace ecr::cuda
