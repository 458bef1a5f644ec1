// KGPrompt's weights as the bundle holds them, read and checked once for both twins: the CPU
// PromptEncoder and the device cuda::PromptDevice build their static tables from this.
// Private to the library (src/models).
#pragma once

#include <optional>
#include <string>

#include "ecr/core/tensor.hpp"
#include "ecr/io/component.hpp"
#include "ecr/models/entity_encoder.hpp"
#include "ecr/models/prompt_encoder.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/nn/weights.hpp"

namespace ecr::prompt {

// Sequential(Linear(dim, dim / 2), ReLU, Linear(dim / 2, dim)), the shape of every *_proj1.
struct Mlp {
  nn::Linear first;
  nn::Linear second;
};

// What builds E when the bundle does not store it: E = proj2(proj1(g) + g),
// g = RGCN(node_embeds) + node_embeds, the R-GCN given as PyG's parameters.
struct EntitySource {
  Tensor bases, comp, root, bias;  // (B, d, d), (R, B), (d, d), (d)
  Tensor node_embeds;              // (N, d)
  Mlp proj1;
  nn::Linear proj2;
};

struct PromptWeights {
  std::string name;
  PromptConfig config;

  // The static tables the converter stored (tools/convert.py --static-tables); undefined when
  // absent, and then the sources below are loaded to build them.
  Tensor entities;     // E (N, H)
  Tensor emotions;     // M (n_emotion + 1, h), rec only
  Tensor global;       // G (N, H), rec with a co-occurrence matrix only
  Tensor prefix_rows;  // (n_prefix, width)

  Mlp token_proj1;
  nn::Linear token_proj2;
  nn::Linear cross_attn;
  Mlp emo_fuse_proj1;  // rec only, no residual
  nn::Linear emo_fuse_proj2;
  Mlp prompt_proj1;
  nn::Linear prompt_proj2;

  std::optional<EntitySource> entity_source;  // when E is not stored
  Tensor prefix_embeds;                        // with prefix_proj, when the prefix rows are not stored
  Mlp prefix_proj;
  Tensor emo_embeds;  // with emo_proj1 / emo_proj2, when M is not stored (rec)
  Mlp emo_proj1;
  nn::Linear emo_proj2;

  // Reads component `component` (ConfigError, ShapeError naming the tensor) and checks that the
  // KG `edges` fits it (ShapeError). `global`: the caller has the co-occurrence matrix, so a
  // stored G is read. `matrices`: how the layers a request runs (token, cross-attention,
  // emotion fusion, prompt projections) are kept; the static tables' builders are f32.
  static PromptWeights load(const Component& component, const RelationCsr& edges, bool global,
                            nn::MatrixType matrices = DType::f32);
};

}  // namespace ecr::prompt
