#include "ecr/models/roberta.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ecr/nn/attention.hpp"
#include "ecr/nn/weights.hpp"

namespace ecr {

namespace {

// Query, key and value weights stacked into one (3 * hidden, hidden) layer: one GEMM instead of
// three. The three keep their stored dtype (and int8 scales) when they share one; a mixed set is
// widened to f32.
nn::Linear load_qkv(const Bundle& bundle, const std::string& prefix, std::int64_t hidden, nn::MatrixType type) {
  const char* parts[] = {"query", "key", "value"};
  std::vector<nn::Linear> qkv;
  for (const char* part : parts) qkv.push_back(nn::load_linear(bundle, prefix + "." + part, hidden, hidden, type));
  const DType dtype = qkv[0].weight.dtype();
  const bool shared = std::all_of(qkv.begin(), qkv.end(), [&](const nn::Linear& l) { return l.weight.dtype() == dtype; });
  if (!shared)
    for (nn::Linear& l : qkv) l = nn::cast_matrix(l, DType::f32);
  const bool scaled = qkv[0].scale.defined();
  nn::Linear stacked{Tensor::empty(qkv[0].weight.dtype(), {3 * hidden, hidden}, prefix + ".{query,key,value}.weight"),
                     Tensor::empty(DType::f32, {3 * hidden}, prefix + ".{query,key,value}.bias"),
                     scaled ? Tensor::empty(DType::f32, {3 * hidden}, prefix + ".{query,key,value}.weight.scale")
                            : Tensor()};
  const auto stack = [](Tensor& into, const Tensor& part, std::size_t i) {
    std::memcpy(static_cast<std::byte*>(into.raw()) + i * part.nbytes(), part.raw(), part.nbytes());
  };
  for (std::size_t i = 0; i < qkv.size(); ++i) {
    stack(stacked.weight, qkv[i].weight, i);
    stack(stacked.bias, qkv[i].bias, i);
    if (scaled) stack(stacked.scale, qkv[i].scale, i);
  }
  return stacked;
}

}  // namespace

RobertaConfig RobertaConfig::from_fields(const Fields& config) {
  RobertaConfig c;
  c.hidden_size = config.integer("hidden_size", 1);
  c.num_hidden_layers = config.integer("num_hidden_layers", 1);
  c.num_attention_heads = config.integer("num_attention_heads", 1);
  c.intermediate_size = config.integer("intermediate_size", 1);
  c.max_position_embeddings = config.integer("max_position_embeddings", 1);
  c.type_vocab_size = config.integer("type_vocab_size", 1);
  c.vocab_size = config.integer("vocab_size", 1);
  c.pad_token_id = config.integer_or("pad_token_id", 1, 0);
  if (c.hidden_size % c.num_attention_heads != 0)
    fail<ConfigError>("{}: hidden_size {} is not a multiple of num_attention_heads {}", config.where(), c.hidden_size,
                      c.num_attention_heads);
  if (c.max_tokens() < 1)
    fail<ConfigError>("{}: max_position_embeddings {} leaves no position after pad_token_id {}", config.where(),
                      c.max_position_embeddings, c.pad_token_id);
  c.layer_norm_eps = config.positive_number_or("layer_norm_eps", c.layer_norm_eps);
  const std::string act = config.string_or("hidden_act", "gelu");
  if (act == "gelu")
    c.activation = nn::Activation::gelu_erf;
  else if (act == "gelu_new")
    c.activation = nn::Activation::gelu_tanh;
  else
    fail<ConfigError>("{}: hidden_act '{}' is not supported (gelu, gelu_new)", config.where(), act);
  if (config.string_or("position_embedding_type", "absolute") != "absolute")
    fail<ConfigError>("{}: only absolute position embeddings are supported", config.where());
  return c;
}

std::vector<std::int32_t> RobertaConfig::position_ids(std::span<const std::int32_t> ids, std::string_view component,
                                                      std::size_t index) const {
  const auto n = static_cast<std::int64_t>(ids.size());
  if (n > max_tokens())
    fail<InputError>("component '{}': sequence {} has {} tokens, the model takes at most {}", component, index, n,
                     max_tokens());
  std::vector<std::int32_t> positions(ids.size());
  auto position = static_cast<std::int32_t>(pad_token_id);
  for (std::size_t i = 0; i < ids.size(); ++i)
    positions[i] = ids[i] == pad_token_id ? static_cast<std::int32_t>(pad_token_id) : ++position;
  return positions;
}

RobertaWeights RobertaWeights::load(const Component& component, nn::MatrixType matrices) {
  component.expect_type({"roberta"});
  const Bundle& bundle = *component.bundle;
  RobertaWeights w;
  w.name = component.name;
  w.config = RobertaConfig::from_fields(component.config);
  const RobertaConfig& c = w.config;
  const std::int64_t h = c.hidden_size;
  const float eps = c.layer_norm_eps;
  const std::string e = w.name + "/embeddings.";
  w.word_embeddings = nn::load_matrix(bundle, e + "word_embeddings.weight", {c.vocab_size, h}, matrices);
  w.position_embeddings = nn::load_weight(bundle, e + "position_embeddings.weight", {c.max_position_embeddings, h});
  w.token_type_embeddings = nn::load_weight(bundle, e + "token_type_embeddings.weight", {c.type_vocab_size, h});
  w.embeddings_norm = nn::load_layer_norm(bundle, e + "LayerNorm", h, eps);
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = w.name + "/encoder.layer." + std::to_string(l) + ".";
    w.layers.push_back({
        load_qkv(bundle, p + "attention.self", h, matrices),
        nn::load_linear(bundle, p + "attention.output.dense", h, h, matrices),
        nn::load_layer_norm(bundle, p + "attention.output.LayerNorm", h, eps),
        nn::load_linear(bundle, p + "intermediate.dense", h, c.intermediate_size, matrices),
        nn::load_linear(bundle, p + "output.dense", c.intermediate_size, h, matrices),
        nn::load_layer_norm(bundle, p + "output.LayerNorm", h, eps),
    });
  }
  return w;
}

RobertaModel RobertaModel::load(const Bundle& bundle, std::string_view name, std::shared_ptr<ThreadPool> pool,
                                nn::MatrixType matrices) {
  return load(read_component(bundle, name), std::move(pool), matrices);
}

RobertaModel RobertaModel::load(const Component& component, std::shared_ptr<ThreadPool> pool,
                                nn::MatrixType matrices) {
  RobertaModel m;
  m.w_ = RobertaWeights::load(component, matrices);
  m.pool_ = pool ? std::move(pool) : ThreadPool::shared_default();
  return m;
}

Tensor RobertaModel::encode(std::span<const std::int32_t> ids) const {
  std::vector<std::vector<std::int32_t>> batch{{ids.begin(), ids.end()}};
  return encode(batch).front();
}

std::vector<Tensor> RobertaModel::encode(std::span<const std::vector<std::int32_t>> batch) const {
  const RobertaConfig& c = w_.config;
  const std::string& name = w_.name;
  const std::int64_t h = c.hidden_size, hd = c.head_dim(), heads = c.num_attention_heads;
  std::vector<std::int64_t> offsets(batch.size() + 1, 0);
  std::vector<std::vector<std::int32_t>> positions(batch.size());
  for (std::size_t b = 0; b < batch.size(); ++b) {
    positions[b] = c.position_ids(batch[b], name, b);
    offsets[b + 1] = offsets[b] + static_cast<std::int64_t>(batch[b].size());
  }
  const std::int64_t rows = offsets.back();
  Tensor hidden = Tensor::empty(DType::f32, {rows, h}, name + " last hidden state");
  Tensor qkv = Tensor::empty(DType::f32, {rows, 3 * h});
  Tensor attn = Tensor::empty(DType::f32, {rows, h});
  Tensor mlp = Tensor::empty(DType::f32, {rows, c.intermediate_size});
  nn::MutableMap x = nn::view(hidden);

  // Embeddings: word + position + token type 0.
  const nn::ConstMap position_table = nn::view(w_.position_embeddings), token_type = nn::view(w_.token_type_embeddings);
  for (std::size_t b = 0; b < batch.size(); ++b) {
    nn::gather_rows(w_.word_embeddings, batch[b], x.middleRows(offsets[b], offsets[b + 1] - offsets[b]),
                    "token id");
    for (std::int64_t i = offsets[b]; i < offsets[b + 1]; ++i)
      x.row(i) += position_table.row(positions[b][static_cast<std::size_t>(i - offsets[b])]) + token_type.row(0);
  }
  nn::layer_norm(x, w_.embeddings_norm, x);

  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float* q = qkv.data<float>();
  float* a = attn.data<float>();
  for (const RobertaWeights::Layer& layer : w_.layers) {
    nn::linear(x, layer.qkv, nn::view(qkv), *pool_);
    pool_->parallel_for(batch.size() * static_cast<std::size_t>(heads), [&](std::size_t task) {
      const std::size_t b = task / static_cast<std::size_t>(heads);
      const auto head = static_cast<std::int64_t>(task % static_cast<std::size_t>(heads));
      const std::int64_t first = offsets[b], n = offsets[b + 1] - first;
      if (n == 0) return;
      const Eigen::OuterStride<> stride(3 * h);
      const float* base = q + first * 3 * h + head * hd;
      nn::attend(nn::ConstMap(base, n, hd, stride), nn::ConstMap(base + h, n, hd, stride),
                 nn::ConstMap(base + 2 * h, n, hd, stride),
                 nn::MutableMap(a + first * h + head * hd, n, hd, Eigen::OuterStride<>(h)), scale, std::nullopt);
    });
    nn::linear(nn::view(attn), layer.attention_output, x, *pool_, nn::Activation::none, /*accumulate=*/true);
    nn::layer_norm(x, layer.attention_norm, x);
    nn::linear(x, layer.intermediate, nn::view(mlp), *pool_, c.activation);
    nn::linear(nn::view(mlp), layer.output, x, *pool_, nn::Activation::none, /*accumulate=*/true);
    nn::layer_norm(x, layer.output_norm, x);
  }

  std::vector<Tensor> out;
  for (std::size_t b = 0; b < batch.size(); ++b) out.push_back(hidden.rows(offsets[b], offsets[b + 1] - offsets[b]));
  return out;
}

}  // namespace ecr
