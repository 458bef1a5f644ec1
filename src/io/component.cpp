#include "ecr/io/component.hpp"

#include <algorithm>
#include <cmath>

#include "ecr/core/error.hpp"

namespace ecr {

namespace {

const nlohmann::json& empty_object() {
  static const nlohmann::json empty = nlohmann::json::object();
  return empty;
}

std::string bundle_prefix(const Bundle& bundle, std::string_view name) {
  return fmt::format("bundle '{}': component '{}'", bundle.label(), name);
}

}  // namespace

// --- Fields ------------------------------------------------------------------------------------

Fields::Fields(const nlohmann::json& object, std::string where, std::string key_prefix)
    : object_(&object), where_(std::move(where)), key_prefix_(key_prefix.empty() ? where_ + ": " : std::move(key_prefix)) {
  if (!object.is_object()) fail<ConfigError>("{} must be a JSON object, found {}", where_, object.type_name());
}

const nlohmann::json* Fields::find(std::string_view key) const {
  const auto it = object_->find(key);
  return it == object_->end() || it->is_null() ? nullptr : &*it;
}

void Fields::wrong(std::string_view key, std::string_view expected) const {
  const nlohmann::json* value = find(key);
  std::string found = value ? value->dump() : "absent";
  if (found.size() > 64) found = found.substr(0, 61) + "...";
  fail<ConfigError>("{}{} is {}, expected {}", key_prefix_, key, found, expected);
}

bool Fields::has(std::string_view key) const { return find(key) != nullptr; }

std::int64_t Fields::integer(std::string_view key, std::int64_t min, std::int64_t max) const {
  const nlohmann::json* value = find(key);
  // Unsigned JSON integers above INT64_MAX, floats and strings are all refused here.
  const auto range = [&] { wrong(key, fmt::format("an integer in {} .. {}", min, max)); };
  if (!value || !value->is_number_integer()) range();
  if (value->is_number_unsigned() && value->get<std::uint64_t>() > static_cast<std::uint64_t>(max)) range();
  const auto v = value->get<std::int64_t>();
  if (v < min || v > max) range();
  return v;
}

std::int64_t Fields::integer_or(std::string_view key, std::int64_t fallback, std::int64_t min,
                                std::int64_t max) const {
  return has(key) ? integer(key, min, max) : fallback;
}

float Fields::positive_number_or(std::string_view key, float fallback) const {
  const nlohmann::json* value = find(key);
  if (!value) return fallback;
  // Negative, zero or not finite, an epsilon turns every hidden state into NaN.
  if (!value->is_number() || !(value->get<double>() > 0.0) || !std::isfinite(value->get<float>()))
    wrong(key, "a small positive number");
  return value->get<float>();
}

std::string Fields::string_or(std::string_view key, std::string_view fallback) const {
  const nlohmann::json* value = find(key);
  if (!value) return std::string(fallback);
  if (!value->is_string()) wrong(key, "a string");
  return value->get<std::string>();
}

bool Fields::boolean_or(std::string_view key, bool fallback) const {
  const nlohmann::json* value = find(key);
  if (!value) return fallback;
  if (!value->is_boolean()) wrong(key, "true or false");
  return value->get<bool>();
}

std::optional<std::vector<std::string>> Fields::strings(std::string_view key) const {
  const nlohmann::json* value = find(key);
  if (!value) return std::nullopt;
  if (!value->is_array() || !std::all_of(value->begin(), value->end(), [](const auto& s) { return s.is_string(); }))
    wrong(key, "a list of strings");
  return value->get<std::vector<std::string>>();
}

Fields Fields::object(std::string_view key) const {
  const nlohmann::json* value = find(key);
  if (value && !value->is_object()) wrong(key, "a JSON object");
  return Fields(value ? *value : empty_object(), key_prefix_ + std::string(key), key_prefix_ + std::string(key) + ".");
}

std::size_t Fields::object_size(std::string_view key) const { return object(key).json().size(); }

// --- Component ---------------------------------------------------------------------------------

void Component::expect_type(std::initializer_list<std::string_view> types) const {
  if (std::find(types.begin(), types.end(), type) != types.end()) return;
  fail<ConfigError>("{} has type '{}', expected {}", bundle_prefix(*bundle, name), type, fmt::join(types, " or "));
}

void Component::expect_layers(std::string_view key, std::int64_t layers, std::string_view last_tensor) const {
  const auto tensors = static_cast<std::int64_t>(bundle->tensors().size());
  if (layers > tensors)
    fail<ConfigError>("{}: config.{} is {}, but the bundle holds {} tensors (each layer has its own)",
                      bundle_prefix(*bundle, name), key, layers, tensors);
  if (!bundle->contains(last_tensor))
    fail<FormatError>("{}: config.{} is {}, but the bundle has no tensor '{}' for the last layer",
                      bundle_prefix(*bundle, name), key, layers, last_tensor);
}

const nlohmann::json& Component::tokenizer_spec() const {
  if (!tokenizer) fail<ConfigError>("{} names no tokenizer", bundle_prefix(*bundle, name));
  if (!has_tokenizer(*bundle, *tokenizer))
    fail<ConfigError>("{} uses tokenizer '{}', which the bundle lacks", bundle_prefix(*bundle, name), *tokenizer);
  return ecr::tokenizer_spec(*bundle, *tokenizer);
}

bool has_tokenizer(const Bundle& bundle, std::string_view key) {
  const auto& meta = bundle.metadata();
  const auto tokenizers = meta.find("tokenizers");
  return tokenizers != meta.end() && tokenizers->is_object() && tokenizers->contains(key);
}

const nlohmann::json& tokenizer_spec(const Bundle& bundle, std::string_view key) {
  if (!has_tokenizer(bundle, key)) {
    std::vector<std::string> known;
    const auto& meta = bundle.metadata();
    if (const auto t = meta.find("tokenizers"); t != meta.end() && t->is_object())
      for (const auto& [k, v] : t->items()) known.push_back(k);
    fail<ConfigError>("bundle '{}': no tokenizer '{}' (it has: {})", bundle.label(), key,
                      known.empty() ? "none" : fmt::format("{}", fmt::join(known, ", ")));
  }
  return bundle.metadata()["tokenizers"][std::string(key)];
}

bool has_component(const Bundle& bundle, std::string_view name) {
  const auto& meta = bundle.metadata();
  const auto components = meta.find("components");
  return !name.empty() && components != meta.end() && components->is_object() && components->contains(name);
}

Component read_component(const Bundle& bundle, std::string_view name, std::string_view role) {
  if (!has_component(bundle, name)) {
    if (role.empty()) fail<ConfigError>("bundle '{}': no component '{}'", bundle.label(), name);
    fail<ConfigError>("bundle '{}': no component '{}' ({})", bundle.label(), name, role);
  }
  const nlohmann::json& json = bundle.metadata()["components"][std::string(name)];
  const std::string where = bundle_prefix(bundle, name);
  Fields entry(json, where);
  Component c{&bundle, std::string(name), entry.string_or("type", ""), entry, entry.object("config"), std::nullopt};
  if (entry.has("tokenizer")) c.tokenizer = entry.string_or("tokenizer", "");
  return c;
}

}  // namespace ecr
