// RoBERTa encoder (HuggingFace RobertaModel semantics, docs/math.md section 3): the text encoder
// whose last hidden states feed the KG prompt.
//
// Batches are packed back to back: each sequence attends to its own tokens only, which is what
// an attention mask over a right-padded batch computes, without the padding work.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ecr/core/tensor.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/io/component.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/nn/ops.hpp"
#include "ecr/nn/weights.hpp"

namespace ecr {

struct RobertaConfig {
  std::int64_t hidden_size = 0;
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t max_position_embeddings = 0;
  std::int64_t type_vocab_size = 0;
  std::int64_t vocab_size = 0;
  std::int64_t pad_token_id = 1;  // position ids start after it
  float layer_norm_eps = 1e-5f;
  nn::Activation activation = nn::Activation::gelu_erf;

  std::int64_t head_dim() const { return hidden_size / num_attention_heads; }
  // Longest input: positions run from pad_token_id + 1 to max_position_embeddings - 1.
  std::int64_t max_tokens() const { return max_position_embeddings - pad_token_id - 1; }
  // From a HuggingFace RobertaConfig JSON (a component's config); ConfigError naming the field.
  static RobertaConfig from_fields(const Fields& config);
  // HF's create_position_ids_from_input_ids: a padding id takes position pad_token_id, the
  // others count on from pad_token_id + 1. InputError (naming `component` and sequence
  // `index`) past max_tokens().
  std::vector<std::int32_t> position_ids(std::span<const std::int32_t> ids, std::string_view component,
                                         std::size_t index = 0) const;
};

// A RoBERTa component's weights as read from a bundle (CPU), each checked against the config:
// what RobertaModel runs (its matrices in the bundle's dtype, as GPT-2's) and what
// cuda::RobertaDevice copies to the device (all f32). Embeddings, biases and LayerNorms are f32.
struct RobertaWeights {
  struct Layer {
    nn::Linear qkv;  // query, key and value stacked: (3 * hidden, hidden)
    nn::Linear attention_output;
    nn::LayerNorm attention_norm;
    nn::Linear intermediate;
    nn::Linear output;
    nn::LayerNorm output_norm;
  };

  std::string name;
  RobertaConfig config;
  nn::Linear word_embeddings;  // (vocab, hidden), read by row: kept as `matrices` says, as the layers are
  Tensor position_embeddings, token_type_embeddings;
  nn::LayerNorm embeddings_norm;
  std::vector<Layer> layers;

  // Component `name` (type "roberta"), tensors named as in a bare RobertaModel
  // (`name/embeddings.word_embeddings.weight`, ...); ConfigError / ShapeError naming the field or tensor.
  // `matrices` says how the layers' matrices are kept (nn::MatrixType: f32 widens, kAsStored keeps
  // f16, bf16 or int8 with its scales).
  static RobertaWeights load(const Component& component, nn::MatrixType matrices = DType::f32);
};

class RobertaModel {
 public:
  // Loads component `name` (type "roberta"), tensors named as in a bare RobertaModel
  // (`name/embeddings.word_embeddings.weight`, ...), each checked against the config.
  // Its matrices compute in the bundle's dtype (f32, f16, bf16, int8); `matrices` casts them at
  // load instead (nn::cast_matrix).
  static RobertaModel load(const Component& component, std::shared_ptr<ThreadPool> pool = nullptr,
                           nn::MatrixType matrices = nn::kAsStored);
  static RobertaModel load(const Bundle& bundle, std::string_view name, std::shared_ptr<ThreadPool> pool = nullptr,
                           nn::MatrixType matrices = nn::kAsStored);

  const RobertaConfig& config() const { return w_.config; }
  const std::string& name() const { return w_.name; }

  // Last hidden state, (T, hidden_size). InputError past max_tokens() or on an unknown id.
  Tensor encode(std::span<const std::int32_t> ids) const;
  // One (T_b, hidden_size) tensor per sequence (views of one buffer).
  std::vector<Tensor> encode(std::span<const std::vector<std::int32_t>> batch) const;

 private:
  RobertaWeights w_;
  std::shared_ptr<ThreadPool> pool_;
};

}  // namespace ecr
