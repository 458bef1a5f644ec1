// PromptEncoder: KGPrompt, the knowledge-graph prompt that becomes GPT-2's per-layer prefix
// keys and values (docs/math.md section 4). Two variants share it: ECR's rec prompt (entities
// attended by the dialog's tokens, global entities from co-occurrence, emotion fusion) and
// UniCRS's conv prompt (tokens attended to entities).
//
// The tables that depend on the bundle alone are built once at load: the entity table
// E = proj2(proj1(g) + g) with g = RGCN(node_embeds) + node_embeds, the emotion table M, the
// global entity table G = C E and the projected prefix rows. After load the object is
// immutable; any number of threads may ask it for prompts at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ecr/core/tensor.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/io/component.hpp"
#include "ecr/kg/cooccurrence.hpp"
#include "ecr/models/entity_encoder.hpp"

namespace ecr {

enum class PromptKind { rec, conv };

// The component's "config" object in the bundle metadata (written by tools/ecr_prompt.py).
struct PromptConfig {
  PromptKind kind = PromptKind::rec;
  std::int64_t hidden_size = 0;          // H, GPT-2's width
  std::int64_t token_hidden_size = 0;    // T, the text encoder's width
  std::int64_t entity_hidden_size = 0;   // d = H / 2
  std::int64_t emotion_hidden_size = 0;  // h = H / 16 (rec only)
  std::int64_t n_emotion = 0;            // emotion labels (rec only); the table adds the padding emotion
  std::int64_t n_head = 0;
  std::int64_t n_layer = 0;
  std::int64_t n_block = 2;  // key and value
  std::int64_t n_entity = 0;
  std::int64_t num_relations = 0;
  std::int64_t num_bases = 0;
  std::int64_t n_prefix = 0;  // learned prefix rows (rec_prefix / conv_prefix)

  // Throws ConfigError naming the component and the field that is missing or invalid.
  static PromptConfig from_component(const Component& component);
  // Columns of a prompt: n_layer * n_block * H.
  std::int64_t prefix_width() const { return n_layer * n_block * hidden_size; }
};

// One dialog's inputs to the rec prompt. The spans must stay valid during the call.
struct RecPromptInput {
  Tensor token_states;                        // (n, T) f32: the text encoder's last hidden states
  std::span<const std::int32_t> entities;     // e_1 .. e_L, in mention order
  // (L, K) emotion ids and probabilities per entity, row-major (K = 3 in ECR, padded with the
  // padding emotion and probability 0). Empty means the request has no emotions: then, as in
  // KGPrompt called without emotion_ids, there is no emotion fusion and no global part.
  std::span<const std::int32_t> emotion_ids;
  std::span<const float> emotion_probs;
  bool global_entities = true;  // append G[e] (ECR's nei_mer)
};

class PromptEncoder {
 public:
  // Loads component `name` (metadata components[name], tensors "name/<checkpoint key>") and
  // builds the static tables. `edges` is the KG (its node and relation counts must match the
  // component); `cooccurrence` (N x N) is needed for the rec prompt's global entities. Throws
  // ConfigError (metadata), ShapeError (a tensor, named), InputError (graph or matrix content).
  static PromptEncoder load(const Component& component, const RelationCsr& edges,
                            const CooccurrenceMatrix* cooccurrence = nullptr,
                            std::shared_ptr<ThreadPool> pool = nullptr);
  static PromptEncoder load(const Bundle& bundle, std::string_view name, const RelationCsr& edges,
                            const CooccurrenceMatrix* cooccurrence = nullptr,
                            std::shared_ptr<ThreadPool> pool = nullptr);

  const PromptConfig& config() const;
  const Tensor& entity_table() const;         // E: (N, H)
  const Tensor& emotion_table() const;        // M: (n_emotion + 1, h); rec only
  const Tensor& global_entity_table() const;  // G: (N, H); rec loaded with a co-occurrence matrix

  // The rec prefix: (n_prefix + L, or n_prefix + 2L with global entities, n_layer * 2 * H), each
  // row read as (layer, key|value, head, head_dim). ConfigError on a conv component.
  Tensor rec_prompt(const RecPromptInput& input) const;
  // The conv prefix: (n_prefix + n, n_layer * 2 * H). ConfigError on a rec component.
  Tensor conv_prompt(const Tensor& token_states, std::span<const std::int32_t> entities) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ecr
