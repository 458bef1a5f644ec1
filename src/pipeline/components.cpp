#include "components.hpp"

#include "ecr/dialog.hpp"

namespace ecr::pipeline {

std::shared_ptr<const Tokenizer> component_tokenizer(const Component& component) {
  std::shared_ptr<const Tokenizer> tokenizer = make_tokenizer(component.tokenizer_spec());
  // Every id the tokenizer can give needs a row of the model's embeddings: a mismatch is the
  // bundle's fault, found here at load rather than as a bad id in the middle of a request.
  const std::int64_t vocab = component.config.integer_or("vocab_size", tokenizer->vocab_size(), 1);
  if (tokenizer->vocab_size() > vocab)
    fail<ConfigError>("bundle '{}': component '{}': tokenizer '{}' has ids up to {}, beyond its vocab_size {}",
                      component.bundle->label(), component.name, *component.tokenizer, tokenizer->vocab_size() - 1,
                      vocab);
  return tokenizer;
}

std::int32_t special_token(const Tokenizer& tokenizer, std::string_view token, const std::string& component) {
  const auto id = tokenizer.token_to_id(token);
  if (!id) fail<ConfigError>("component '{}': its tokenizer has no '{}' token (docs/math.md section 1)", component, token);
  return *id;
}

void check_engine_options(const Engine& engine, const EngineOptions& view, std::string_view who) {
  if (view == EngineOptions{} || view == engine.options()) return;
  fail<ConfigError>("{}: components, threads, verify_checksums and device are the engine's options; a view of a "
                    "loaded engine cannot change them (give them to Engine::load)",
                    who);
}

void check_classifier_head(const std::string& component, bool has_head, std::int64_t num_labels) {
  if (!has_head || num_labels != static_cast<std::int64_t>(kEmotionLabels.size()))
    fail<ConfigError>("component '{}': an emotion classifier needs a score head over the {} ECR labels, found {}",
                      component, kEmotionLabels.size(), num_labels);
}

void check_prompt_fits(const PromptConfig& p, PromptKind kind, const std::string& name, const Gpt2Config& g,
                       const RobertaConfig& t, const ComponentNames& names) {
  if (p.kind != kind) {
    if (kind == PromptKind::rec)
      fail<ConfigError>("component '{}' is a conv prompt; the recommender needs a kgprompt_rec", name);
    fail<ConfigError>("component '{}' is a rec prompt; the responder needs a kgprompt_conv", name);
  }
  if (p.hidden_size != g.n_embd || p.n_layer != g.n_layer || p.n_head != g.n_head)
    fail<ConfigError>("component '{}' (H {}, {} layers, {} heads) does not fit backbone '{}' (H {}, {} layers, {} heads)",
                      name, p.hidden_size, p.n_layer, p.n_head, names.backbone, g.n_embd, g.n_layer, g.n_head);
  if (p.token_hidden_size != t.hidden_size)
    fail<ConfigError>("component '{}' reads {}-wide token states, text encoder '{}' gives {}", name,
                      p.token_hidden_size, names.text_encoder, t.hidden_size);
}

void keep_newest(std::vector<std::int32_t>& ids, std::size_t limit) {
  if (ids.size() > limit) ids.erase(ids.begin(), ids.end() - static_cast<std::ptrdiff_t>(limit));
}

}  // namespace ecr::pipeline
