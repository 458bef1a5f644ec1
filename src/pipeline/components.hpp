// What the Recommender and the Responder share when they read a bundle: finding a component,
// its tokenizer and special tokens, and the context markers of ECR_SPEC 2.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ecr/io/bundle.hpp"
#include "ecr/text/tokenizer.hpp"

namespace ecr::pipeline {

// ECR_SPEC 2: the turn separators of the two contexts, and RoBERTa's leading token.
inline constexpr std::string_view kContextEos = "<|endoftext|>";
inline constexpr std::string_view kPromptSep = "</s>";
inline constexpr std::string_view kPromptCls = "<s>";

bool has_component(const Bundle& bundle, const std::string& name);
// metadata.components[name]; ConfigError "no component 'x' (the <user>'s <role>)" when absent.
const nlohmann::json& component_entry(const Bundle& bundle, const std::string& name, std::string_view user,
                                      std::string_view role);
// The tokenizer the component names (metadata.tokenizers[...]); ConfigError when it is missing
// or has ids at or beyond the component's config.vocab_size.
Tokenizer component_tokenizer(const Bundle& bundle, const std::string& name, std::string_view user,
                              std::string_view role);
// The id of a token the models rely on; ConfigError naming the component when absent.
std::int32_t special_token(const Tokenizer& tokenizer, std::string_view token, const std::string& component);
// Keeps the newest `limit` ids (ECR_SPEC 2's truncation of contexts).
void keep_newest(std::vector<std::int32_t>& ids, std::size_t limit);

}  // namespace ecr::pipeline
