// Byte-level BPE tokenizer, as GPT-2 and RoBERTa use it (docs/math.md section 1).
//
// encode(): special tokens are split out of the text first and map to their ids; each stretch
// between them is pre-split with GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (\s is Unicode White_Space, as in Python's `regex` and HuggingFace), every piece's UTF-8 bytes
// become their byte-level symbols, and merges apply lowest rank first.
//
// Special tokens are every added token plus the vocab entries that HuggingFace registers as
// special for GPT-2 and RoBERTa: `<|...|>` forms (`<|endoftext|>`) and `<s>`, `</s>`, `<pad>`,
// `<unk>`, `<mask>`. Where two overlap at one position the longest wins. No lstrip/rstrip:
// the space before RoBERTa's `<mask>` stays a token of its own.
//
// A Tokenizer is immutable after construction: copies share the tables, and every method is
// safe to call from many threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace ecr {

class Tokenizer {
 public:
  // vocab.json / encoder.json (token -> id) and merges.txt / vocab.bpe (one "a b" merge a line,
  // best first; a leading "#version" line is skipped). `added_tokens` maps extra tokens to ids
  // (`<pad>` = 50257, `<movie>` = 50258 for ECR's GPT-2). Throws IoError / FormatError.
  static Tokenizer from_files(const std::filesystem::path& vocab, const std::filesystem::path& merges,
                              std::map<std::string, std::int32_t> added_tokens = {});
  // The form bundles carry: {"kind": "byte_bpe", "vocab": {token: id}, "merges": "<merges file
  // text>", "added_tokens": {token: id}} (added_tokens optional). Throws FormatError / ConfigError.
  static Tokenizer from_json(const nlohmann::json& spec);
  nlohmann::json to_json() const;

  // Throws InputError naming the byte offset when `text` is not valid UTF-8.
  std::vector<std::int32_t> encode(std::string_view text) const;
  // The tokens' bytes concatenated (special tokens as their text); byte sequences that are not
  // valid UTF-8 (ids that split a character) become U+FFFD. InputError on an unknown id.
  std::string decode(std::span<const std::int32_t> ids) const;

  // Token strings are in the vocab's byte-level form ("Ġthe" for " the").
  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(std::int32_t id) const;  // InputError on an unknown id
  // Max id + 1 over the vocab and the added tokens.
  std::int32_t vocab_size() const;

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ecr
