#include "components.hpp"

namespace ecr::pipeline {

bool has_component(const Bundle& bundle, const std::string& name) {
  const auto& meta = bundle.metadata();
  const auto components = meta.find("components");
  return !name.empty() && components != meta.end() && components->is_object() && components->contains(name);
}

const nlohmann::json& component_entry(const Bundle& bundle, const std::string& name, std::string_view user,
                                      std::string_view role) {
  if (!has_component(bundle, name))
    fail<ConfigError>("bundle '{}': no component '{}' (the {}'s {})", bundle.label(), name, user, role);
  return bundle.metadata()["components"][name];
}

Tokenizer component_tokenizer(const Bundle& bundle, const std::string& name, std::string_view user,
                              std::string_view role) {
  const auto& entry = component_entry(bundle, name, user, role);
  const auto key = entry.find("tokenizer");
  if (key == entry.end() || !key->is_string())
    fail<ConfigError>("bundle '{}': component '{}' names no tokenizer", bundle.label(), name);
  const auto& meta = bundle.metadata();
  const auto tokenizers = meta.find("tokenizers");
  if (tokenizers == meta.end() || !tokenizers->is_object() || !tokenizers->contains(key->get<std::string>()))
    fail<ConfigError>("bundle '{}': component '{}' uses tokenizer '{}', which the bundle lacks", bundle.label(), name,
                      key->get<std::string>());
  Tokenizer tokenizer = Tokenizer::from_json((*tokenizers)[key->get<std::string>()]);
  // Every id the tokenizer can give needs a row of the model's embeddings: a mismatch is the
  // bundle's fault, found here at load rather than as a bad id in the middle of a request.
  const auto config = entry.find("config");
  if (config != entry.end() && config->is_object()) {
    const auto vocab = config->find("vocab_size");
    if (vocab != config->end() && vocab->is_number_integer() && tokenizer.vocab_size() > vocab->get<std::int64_t>())
      fail<ConfigError>("bundle '{}': component '{}': tokenizer '{}' has ids up to {}, beyond its vocab_size {}",
                        bundle.label(), name, key->get<std::string>(), tokenizer.vocab_size() - 1,
                        vocab->get<std::int64_t>());
  }
  return tokenizer;
}

std::int32_t special_token(const Tokenizer& tokenizer, std::string_view token, const std::string& component) {
  const auto id = tokenizer.token_to_id(token);
  if (!id) fail<ConfigError>("component '{}': its tokenizer has no '{}' token (ECR_SPEC 1)", component, token);
  return *id;
}

void keep_newest(std::vector<std::int32_t>& ids, std::size_t limit) {
  if (ids.size() > limit) ids.erase(ids.begin(), ids.end() - static_cast<std::ptrdiff_t>(limit));
}

}  // namespace ecr::pipeline
