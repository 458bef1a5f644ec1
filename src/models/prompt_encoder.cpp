#include "ecr/models/prompt_encoder.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "ecr/nn/linear.hpp"
#include "ecr/nn/ops.hpp"
#include "ecr/nn/weights.hpp"
#include "prompt_weights.hpp"

namespace ecr {

namespace {

using nn::Linear;
using prompt::Mlp;

Tensor new_matrix(std::int64_t rows, std::int64_t cols, const char* name) {
  return Tensor::empty(DType::f32, {rows, cols}, name);
}

Tensor apply(const Tensor& x, const Linear& layer, ThreadPool& pool, const char* name) {
  Tensor y = new_matrix(x.dim(0), layer.out(), name);
  nn::linear(x.matrix<float>(), layer, y.matrix<float>(), pool);
  return y;
}

// second(relu(first(x))), plus x when `residual` (all KGPrompt projections but emotion fusion).
Tensor apply(const Tensor& x, const Mlp& mlp, bool residual, ThreadPool& pool, const char* name) {
  Tensor hidden = apply(x, mlp.first, pool, "mlp hidden");
  hidden.vector<float>() = hidden.vector<float>().cwiseMax(0.0f);
  if (!residual) return apply(hidden, mlp.second, pool, name);
  Tensor y = x.clone();
  y.set_name(name);
  nn::linear(hidden.matrix<float>(), mlp.second, y.matrix<float>(), pool, nn::Activation::none, true);
  return y;
}

}  // namespace

PromptConfig PromptConfig::from_component(const Component& component) {
  component.expect_type({"kgprompt_rec", "kgprompt_conv"});
  PromptConfig c;
  c.kind = component.type == "kgprompt_rec" ? PromptKind::rec : PromptKind::conv;
  const Fields& config = component.config;
  c.hidden_size = config.integer("hidden_size", 1);
  c.token_hidden_size = config.integer("token_hidden_size", 1);
  c.entity_hidden_size = config.integer("entity_hidden_size", 1);
  c.n_head = config.integer("n_head", 1);
  c.n_layer = config.integer("n_layer", 1);
  c.n_block = config.integer("n_block", 1);
  c.n_entity = config.integer("n_entity", 1);
  c.num_relations = config.integer("num_relations", 1);
  c.num_bases = config.integer("num_bases", 1);
  c.n_prefix = config.integer("n_prefix", 0);
  if (c.kind == PromptKind::rec) {
    c.emotion_hidden_size = config.integer("emotion_hidden_size", 1);
    c.n_emotion = config.integer("n_emotion", 1);
  }
  if (c.hidden_size % c.n_head != 0)
    fail<ConfigError>("{}: hidden_size {} is not a multiple of n_head {}", config.where(), c.hidden_size, c.n_head);
  if (c.n_block != 2) fail<ConfigError>("{}: n_block is {}, expected 2 (key, value)", config.where(), c.n_block);
  return c;
}

struct PromptEncoder::Impl {
  std::string name;
  PromptConfig config;
  std::shared_ptr<ThreadPool> pool;

  Tensor entities;     // E
  Tensor emotions;     // M
  Tensor global;       // G
  Tensor prefix_rows;  // the learned prefix after prompt_proj: (n_prefix, width)

  Mlp token_proj1;
  Linear token_proj2;
  Linear cross_attn;
  Mlp emo_fuse_proj1;
  Linear emo_fuse_proj2;
  Mlp prompt_proj1;
  Linear prompt_proj2;

  void check_kind(PromptKind wanted) const;
  std::vector<std::int32_t> checked_entities(std::span<const std::int32_t> ids) const;
  Tensor token_features(const Tensor& token_states) const;
  // A = cross_attn(Tk) Ek^T / H: (n, L).
  Tensor attention(const Tensor& tokens, const Tensor& entities) const;
  // mu_l = sum_k prob[l, k] M[emo[l, k]]: (L, h).
  Tensor mix_emotions(std::span<const std::int32_t> ids, std::span<const float> probs, std::int64_t count) const;
  // fuse2(fuse1([P | m])): (rows, H).
  Tensor fuse_emotions(const Tensor& p, const Tensor& m) const;
  // The prefix rows followed by prompt_proj2(prompt_proj1(P) + P).
  Tensor finish(const Tensor& p) const;
};

PromptEncoder PromptEncoder::load(const Bundle& bundle, std::string_view name, const RelationCsr& edges,
                                  const CooccurrenceMatrix* cooccurrence, std::shared_ptr<ThreadPool> pool) {
  return load(read_component(bundle, name), edges, cooccurrence, std::move(pool));
}

namespace prompt {

PromptWeights PromptWeights::load(const Component& component, const RelationCsr& edges, bool global,
                                  nn::MatrixType matrices) {
  const Bundle& bundle = *component.bundle;
  PromptWeights w;
  w.name = component.name;
  w.config = PromptConfig::from_component(component);
  const PromptConfig& c = w.config;
  const std::int64_t H = c.hidden_size, T = c.token_hidden_size, d = c.entity_hidden_size;

  const std::string prefix = w.name + "/";
  auto weight = [&](const std::string& key, const Shape& shape) { return nn::load_weight(bundle, prefix + key, shape); };
  // The layers a request runs keep `matrices`; those that only build static tables are f32.
  auto linear = [&](const std::string& key, std::int64_t in, std::int64_t out, nn::MatrixType type = DType::f32) {
    return nn::load_linear(bundle, prefix + key, in, out, type);
  };
  auto mlp = [&](const std::string& key, std::int64_t dim, nn::MatrixType type = DType::f32) {
    return Mlp{linear(key + ".0", dim, dim / 2, type), linear(key + ".2", dim / 2, dim, type)};
  };

  // Stored static tables are mapped and shape-checked instead of computed, and the weights only
  // they read (R-GCN, node embeddings, entity, emotion and prefix projections) are never loaded.
  const auto stored = [&](const std::string& key, const Shape& shape) {
    const std::string table = "static/" + key;
    return bundle.contains(prefix + table) ? weight(table, shape) : Tensor();
  };
  const std::int64_t h = c.kind == PromptKind::rec ? c.emotion_hidden_size : 0;
  w.entities = stored("entity_table", {c.n_entity, H});
  w.prefix_rows = stored("prefix_rows", {c.n_prefix, c.prefix_width()});
  if (c.kind == PromptKind::rec) {
    w.emotions = stored("emotion_table", {c.n_emotion + 1, h});
    if (global) w.global = stored("global_entity_table", {c.n_entity, H});
  }

  w.token_proj1 = mlp("token_proj1", T, matrices);
  w.token_proj2 = linear("token_proj2", T, H, matrices);
  w.cross_attn = nn::load_matrix(bundle, prefix + "cross_attn.weight", {H, H}, matrices);
  w.prompt_proj1 = mlp("prompt_proj1", H, matrices);
  w.prompt_proj2 = linear("prompt_proj2", H, c.prefix_width(), matrices);
  if (c.kind == PromptKind::rec) {
    w.emo_fuse_proj1 = {linear("emo_fuse_proj1.0", H + h, H, matrices), linear("emo_fuse_proj1.2", H, H + h, matrices)};
    w.emo_fuse_proj2 = linear("emo_fuse_proj2", H + h, H, matrices);
  }
  if (!w.entities.defined())
    w.entity_source.emplace(EntitySource{weight("kg_encoder.weight", {c.num_bases, d, d}),
                                         weight("kg_encoder.comp", {c.num_relations, c.num_bases}),
                                         weight("kg_encoder.root", {d, d}), weight("kg_encoder.bias", {d}),
                                         weight("node_embeds", {c.n_entity, d}), mlp("entity_proj1", d),
                                         linear("entity_proj2", d, H)});
  const std::string prefix_key = c.kind == PromptKind::rec ? "rec_prefix" : "conv_prefix";
  if (!w.prefix_rows.defined()) {
    w.prefix_embeds = weight(prefix_key + "_embeds", {c.n_prefix, H});
    w.prefix_proj = mlp(prefix_key + "_proj", H);
  }
  if (c.kind == PromptKind::rec && !w.emotions.defined()) {
    // KGPrompt feeds emo_embeds (declared with H columns) to emo_proj1, a T-sized MLP, so the
    // checkpoints that run have T columns here (H = T = 768 in the published setup).
    w.emo_embeds = weight("emo_embeds", {c.n_emotion + 1, T});
    w.emo_proj1 = mlp("emo_proj1", T);
    w.emo_proj2 = linear("emo_proj2", T, h);
  }
  if (edges.num_nodes != c.n_entity || edges.num_relations != c.num_relations)
    fail<ShapeError>("bundle '{}': component '{}' has {} entities and {} relations, the knowledge graph {} and {}",
                     bundle.label(), w.name, c.n_entity, c.num_relations, edges.num_nodes, edges.num_relations);
  return w;
}

}  // namespace prompt

PromptEncoder PromptEncoder::load(const Component& component, const RelationCsr& edges,
                                  const CooccurrenceMatrix* cooccurrence, std::shared_ptr<ThreadPool> pool) {
  // Every weight is checked before the static tables cost any time.
  const prompt::PromptWeights w =
      prompt::PromptWeights::load(component, edges, cooccurrence != nullptr, nn::kAsStored);
  auto impl = std::make_shared<Impl>();
  impl->name = w.name;
  impl->config = w.config;
  impl->pool = pool ? std::move(pool) : ThreadPool::shared_default();
  const PromptConfig& c = impl->config;
  ThreadPool& threads = *impl->pool;
  impl->entities = w.entities;
  impl->emotions = w.emotions;
  impl->global = w.global;
  impl->prefix_rows = w.prefix_rows;
  impl->token_proj1 = w.token_proj1;
  impl->token_proj2 = w.token_proj2;
  impl->cross_attn = w.cross_attn;
  impl->emo_fuse_proj1 = w.emo_fuse_proj1;
  impl->emo_fuse_proj2 = w.emo_fuse_proj2;
  impl->prompt_proj1 = w.prompt_proj1;
  impl->prompt_proj2 = w.prompt_proj2;

  // E = proj2(proj1(g) + g), g = RGCN(node_embeds) + node_embeds.
  if (w.entity_source) {
    const prompt::EntitySource& e = *w.entity_source;
    const EntityEncoder rgcn(e.bases, e.comp, e.root, e.bias);
    Tensor g = rgcn.forward(e.node_embeds, edges, threads);
    g.matrix<float>() += e.node_embeds.matrix<float>();
    impl->entities = apply(apply(g, e.proj1, true, threads, "entity hidden"), e.proj2, threads, "entity table");
  }
  if (c.kind == PromptKind::rec) {
    if (!impl->emotions.defined())
      impl->emotions = apply(apply(w.emo_embeds, w.emo_proj1, true, threads, "emotion hidden"), w.emo_proj2, threads,
                             "emotion table");
    if (cooccurrence && !impl->global.defined()) impl->global = cooccurrence->multiply(impl->entities, &threads);
  }
  // The learned prefix does not depend on the dialog, so its prompt_proj rows are static too.
  if (!impl->prefix_rows.defined()) {
    const Tensor q = apply(w.prefix_embeds, w.prefix_proj, true, threads, "prefix");
    impl->prefix_rows = apply(apply(q, impl->prompt_proj1, true, threads, "prefix hidden"), impl->prompt_proj2,
                              threads, "prefix rows");
  }

  PromptEncoder encoder;
  encoder.impl_ = std::move(impl);
  return encoder;
}

const PromptConfig& PromptEncoder::config() const { return impl_->config; }
const Tensor& PromptEncoder::entity_table() const { return impl_->entities; }
const Tensor& PromptEncoder::emotion_table() const { return impl_->emotions; }
const Tensor& PromptEncoder::global_entity_table() const { return impl_->global; }

void PromptEncoder::Impl::check_kind(PromptKind wanted) const {
  if (config.kind != wanted)
    fail<ConfigError>("component '{}' is a {} prompt, not a {} prompt", name,
                      config.kind == PromptKind::rec ? "rec" : "conv", wanted == PromptKind::rec ? "rec" : "conv");
}

std::vector<std::int32_t> PromptEncoder::Impl::checked_entities(std::span<const std::int32_t> ids) const {
  for (std::int32_t id : ids)
    if (id < 0 || id >= config.n_entity)
      fail<InputError>("prompt '{}': entity id {} is outside [0, {})", name, id, config.n_entity);
  return {ids.begin(), ids.end()};
}

Tensor PromptEncoder::Impl::token_features(const Tensor& token_states) const {
  if (!token_states.defined()) fail<InputError>("prompt '{}': no token states", name);
  if (token_states.dtype() != DType::f32 || token_states.rank() != 2 ||
      token_states.dim(1) != config.token_hidden_size)
    fail<ShapeError>("prompt '{}': token states must be f32 (n, {}), found {} {}", name, config.token_hidden_size,
                     dtype_name(token_states.dtype()), shape_string(token_states.shape()));
  // Tk = token_proj2(token_proj1(T) + T).
  return apply(apply(token_states, token_proj1, true, *pool, "token hidden"), token_proj2, *pool, "token features");
}

Tensor PromptEncoder::Impl::attention(const Tensor& tokens, const Tensor& entity_rows) const {
  const Tensor query = apply(tokens, cross_attn, *pool, "cross attention");
  Tensor a = new_matrix(tokens.dim(0), entity_rows.dim(0), "attention");
  a.matrix<float>().noalias() = query.matrix<float>() * entity_rows.matrix<float>().transpose();
  a.matrix<float>() /= static_cast<float>(config.hidden_size);  // 1/H, not 1/sqrt(H), as KGPrompt scales
  return a;
}

Tensor PromptEncoder::Impl::mix_emotions(std::span<const std::int32_t> ids, std::span<const float> probs,
                                         std::int64_t count) const {
  if (ids.size() != probs.size() || ids.empty() || ids.size() % static_cast<std::size_t>(count) != 0)
    fail<InputError>("prompt '{}': {} emotion ids and {} probabilities do not form {} rows of equal length", name,
                     ids.size(), probs.size(), count);
  const std::size_t slots = ids.size() / static_cast<std::size_t>(count);
  const auto table = emotions.matrix<float>();
  Tensor mu = Tensor::zeros(DType::f32, {count, config.emotion_hidden_size}, "emotion mix");
  auto m = mu.matrix<float>();
  for (std::int64_t l = 0; l < count; ++l)
    for (std::size_t k = 0; k < slots; ++k) {
      const std::size_t at = static_cast<std::size_t>(l) * slots + k;
      if (ids[at] < 0 || ids[at] >= table.rows())
        fail<InputError>("prompt '{}': emotion id {} is outside [0, {})", name, ids[at], table.rows());
      m.row(l).noalias() += probs[at] * table.row(ids[at]);
    }
  return mu;
}

Tensor PromptEncoder::Impl::fuse_emotions(const Tensor& p, const Tensor& m) const {
  const std::int64_t H = config.hidden_size;
  Tensor joined = new_matrix(p.dim(0), H + config.emotion_hidden_size, "entities with emotions");
  joined.matrix<float>().leftCols(H) = p.matrix<float>();
  joined.matrix<float>().rightCols(config.emotion_hidden_size) = m.matrix<float>();
  // No residual here: ECR's fusion replaces the entity rows.
  return apply(apply(joined, emo_fuse_proj1, false, *pool, "fusion hidden"), emo_fuse_proj2, *pool, "fused entities");
}

Tensor PromptEncoder::Impl::finish(const Tensor& p) const {
  const std::int64_t fixed = prefix_rows.dim(0), width = config.prefix_width();
  Tensor out = new_matrix(fixed + p.dim(0), width, "prompt");
  out.matrix<float>().topRows(fixed) = prefix_rows.matrix<float>();
  if (p.dim(0) > 0) {
    const Tensor hidden = apply(p, prompt_proj1, true, *pool, "prompt hidden");
    nn::linear(hidden.matrix<float>(), prompt_proj2,
               MatrixMap<float>(out.data<float>() + fixed * width, p.dim(0), width), *pool);
  }
  return out;
}

Tensor PromptEncoder::rec_prompt(const RecPromptInput& input) const {
  const Impl& m = *impl_;
  m.check_kind(PromptKind::rec);
  const std::vector<std::int32_t> ids = m.checked_entities(input.entities);
  const bool with_emotions = !input.emotion_ids.empty() || !input.emotion_probs.empty();
  if (with_emotions && input.global_entities && !m.global.defined())
    fail<ConfigError>("prompt '{}': global entities need the co-occurrence matrix at load", m.name);
  const Tensor tokens = m.token_features(input.token_states);
  const auto count = static_cast<std::int64_t>(ids.size());
  if (count == 0) return m.finish(new_matrix(0, m.config.hidden_size, "prompt rows"));

  // Local entities: each entity attends over the dialog's tokens, P = softmax_tokens(A)^T Tk + Ek.
  Tensor ek = new_matrix(count, m.config.hidden_size, "entities");
  nn::gather_rows(m.entities.matrix<float>(), ids, ek.matrix<float>(), "entity id");
  Tensor weights = new_matrix(count, tokens.dim(0), "token weights");
  weights.matrix<float>() = m.attention(tokens, ek).matrix<float>().transpose();
  nn::softmax_rows(weights.matrix<float>());
  Tensor p = ek.clone();
  p.matrix<float>().noalias() += weights.matrix<float>() * tokens.matrix<float>();

  if (with_emotions) {
    Tensor mu = m.mix_emotions(input.emotion_ids, input.emotion_probs, count);
    if (input.global_entities) {
      // Global entities G[e] follow the local ones and carry the same emotions.
      Tensor both = new_matrix(2 * count, m.config.hidden_size, "local and global entities");
      both.matrix<float>().topRows(count) = p.matrix<float>();
      nn::gather_rows(m.global.matrix<float>(), ids,
                      MatrixMap<float>(both.data<float>() + count * m.config.hidden_size, count, m.config.hidden_size),
                      "entity id");
      Tensor mu2 = new_matrix(2 * count, m.config.emotion_hidden_size, "emotion mix");
      mu2.matrix<float>().topRows(count) = mu.matrix<float>();
      mu2.matrix<float>().bottomRows(count) = mu.matrix<float>();
      p = std::move(both);
      mu = std::move(mu2);
    }
    p = m.fuse_emotions(p, mu);
  }
  return m.finish(p);
}

Tensor PromptEncoder::conv_prompt(const Tensor& token_states, std::span<const std::int32_t> entities) const {
  const Impl& m = *impl_;
  m.check_kind(PromptKind::conv);
  const std::vector<std::int32_t> ids = m.checked_entities(entities);
  Tensor p = m.token_features(token_states);
  if (!ids.empty()) {
    // Each token attends over the dialog's entities: P = softmax_entities(A) Ek + Tk.
    Tensor ek = new_matrix(static_cast<std::int64_t>(ids.size()), m.config.hidden_size, "entities");
    nn::gather_rows(m.entities.matrix<float>(), ids, ek.matrix<float>(), "entity id");
    Tensor weights = m.attention(p, ek);
    nn::softmax_rows(weights.matrix<float>());
    p.matrix<float>().noalias() += weights.matrix<float>() * ek.matrix<float>();
  }
  return m.finish(p);
}

}  // namespace ecr
