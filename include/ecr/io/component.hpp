// The bundle's schema in one place. A bundle's metadata names its models under "components":
//
//   "components": { "<name>": { "type": "gpt2", "config": {...}, "tokenizer": "<key>", ... } },
//   "tokenizers": { "<key>": {...} }
//
// read_component() turns one entry into a typed Component, and Fields is the one checked reader
// of its JSON values: every integer, number, string and flag a model's load reads goes through
// it, so a missing field, a wrong type or a value out of range is one kind of ConfigError that
// names the bundle, the component and the field, whichever model reads it.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ecr/io/bundle.hpp"

namespace ecr {

// The largest integer a config may hold: every product the models form from config values
// (layers x 2 x width x positions, ...) then stays inside 64 bits.
inline constexpr std::int64_t kMaxConfigInteger = std::int64_t{1} << 30;

// Checked reads of one JSON object. `where` names the object and `key_prefix` (default
// "<where>: ") comes before a key in errors: the config of component 'lm' reports
// "bundle 'm.ecr': component 'lm': config.n_head is 0, expected an integer in 1 .. 1073741824".
// The object lives in the bundle's metadata: a Fields is valid while a copy of the bundle is.
class Fields {
 public:
  Fields(const nlohmann::json& object, std::string where, std::string key_prefix = {});

  // Present and not null.
  bool has(std::string_view key) const;
  // Required integer in [min, max].
  std::int64_t integer(std::string_view key, std::int64_t min, std::int64_t max = kMaxConfigInteger) const;
  // Optional integer in [min, max]; `fallback` when absent or null.
  std::int64_t integer_or(std::string_view key, std::int64_t fallback, std::int64_t min,
                          std::int64_t max = kMaxConfigInteger) const;
  // Optional positive, finite number (an epsilon); `fallback` when absent.
  float positive_number_or(std::string_view key, float fallback) const;
  std::string string_or(std::string_view key, std::string_view fallback) const;
  bool boolean_or(std::string_view key, bool fallback) const;
  // Optional list of strings; nullopt when absent.
  std::optional<std::vector<std::string>> strings(std::string_view key) const;
  // Optional nested object (empty when absent); ConfigError when present and not an object.
  Fields object(std::string_view key) const;
  // Entries of an optional object field; 0 when absent.
  std::size_t object_size(std::string_view key) const;

  const std::string& where() const { return where_; }
  const nlohmann::json& json() const { return *object_; }

 private:
  const nlohmann::json* find(std::string_view key) const;
  [[noreturn]] void wrong(std::string_view key, std::string_view expected) const;

  const nlohmann::json* object_;
  std::string where_, key_prefix_;
};

// One entry of metadata.components.
struct Component {
  const Bundle* bundle = nullptr;  // the bundle it came from; must outlive the component
  std::string name;
  std::string type;
  Fields entry;                           // the whole entry (input_template, tied_lm_head, ...)
  Fields config;                          // entry.config; empty when absent
  std::optional<std::string> tokenizer;   // the key of metadata.tokenizers it uses

  // ConfigError naming the component unless its type is one of `types`.
  void expect_type(std::initializer_list<std::string_view> types) const;
  // Before a model sizes per-layer state by config.<key> = `layers`: each layer has tensors of
  // its own, so a file can hold no more layers than tensors (ConfigError past that), and
  // `last_tensor`, one of the last layer's, must be there (FormatError naming it otherwise).
  void expect_layers(std::string_view key, std::int64_t layers, std::string_view last_tensor) const;
  // "<name>/<suffix>": the component's tensors are stored under its name.
  std::string tensor(std::string_view suffix) const { return name + "/" + std::string(suffix); }
  // metadata.tokenizers[tokenizer]; ConfigError when the component names none or it is absent.
  const nlohmann::json& tokenizer_spec() const;
};

bool has_component(const Bundle& bundle, std::string_view name);
bool has_tokenizer(const Bundle& bundle, std::string_view key);
// metadata.tokenizers[key]; ConfigError naming the bundle and the tokenizers it has when absent.
const nlohmann::json& tokenizer_spec(const Bundle& bundle, std::string_view key);
// The typed entry; ConfigError "bundle 'b': no component 'x' (<role>)" when absent or not an
// object (`role` says who needed it, e.g. "the recommender's backbone"; may be empty).
Component read_component(const Bundle& bundle, std::string_view name, std::string_view role = {});

}  // namespace ecr
