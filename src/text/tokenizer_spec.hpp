// Reading a tokenizer spec (docs/format.md, "tokenizers"): shared by make_tokenizer(), which
// picks the implementation by kind, and the implementations' own from_json().
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

namespace ecr::text {

// The spec's "kind"; FormatError when `spec` is not an object with a string "kind".
std::string_view spec_kind(const nlohmann::json& spec);

}  // namespace ecr::text
