// Byte-level BPE, as GPT-2 and RoBERTa use it (docs/math.md section 1), behind the Tokenizer
// interface.
//
// encode(): control tokens are split out of the text first and map to their ids; each stretch
// between them is cut into pieces by the pre-tokenizer (GPT-2's pattern unless the spec names
// another), every piece's UTF-8 bytes become their byte-level symbols, and merges apply lowest
// rank first.
//
// Control tokens are every added token plus the vocab entries that HuggingFace registers as
// special for GPT-2 and RoBERTa: `<|...|>` forms (`<|endoftext|>`) and `<s>`, `</s>`, `<pad>`,
// `<unk>`, `<mask>`. Where two overlap at one position the longest wins. No lstrip/rstrip:
// the space before RoBERTa's `<mask>` stays a token of its own. Their roles follow the names:
// bos `<s>` (else `<|endoftext|>`), eos `</s>` (else `<|endoftext|>`), pad `<pad>`, unk `<unk>`.
// A vocab from a listing (a GGUF file's, from_listing) names its control tokens and their roles
// by id instead, and may lack byte tokens its training text never had.
//
// Copies share the tables.
#pragma once

#include <filesystem>
#include <map>

#include "ecr/text/pre_tokenizer.hpp"
#include "ecr/text/tokenizer.hpp"

namespace ecr::text {

class ByteLevelBpe final : public Tokenizer {
 public:
  // vocab.json / encoder.json (token -> id) and merges.txt / vocab.bpe (one "a b" merge a line,
  // best first; a leading "#version" line is skipped), with GPT-2's pre-tokenizer. `added_tokens`
  // maps extra tokens to ids (`<pad>` = 50257, `<movie>` = 50258 for ECR's GPT-2). Throws
  // IoError / FormatError.
  static ByteLevelBpe from_files(const std::filesystem::path& vocab, const std::filesystem::path& merges,
                                 std::map<std::string, std::int32_t> added_tokens = {});
  // The form bundles carry: {"kind": "byte_bpe", "vocab": {token: id}, "merges": "<merges file
  // text>", "added_tokens": {token: id}, "pre": "gpt2"} (added_tokens and pre optional).
  // Throws FormatError / ConfigError.
  static ByteLevelBpe from_json(const nlohmann::json& spec);
  // A vocab listed by id, as GGUF holds one: token i is tokens[i], merges are "left right" best
  // first, `control` the ids matched in text only as control tokens (GGUF's control and
  // user-defined types), `roles` the file's bos/eos/pad/unk ids and add_bos/add_eos. With
  // `ignore_merges` a piece that is a (non-control) token as a whole is that token, merges or
  // not, as Llama 3 reads its vocab. `label` names the source in errors ("gguf 'x.gguf'").
  // Throws FormatError, or ConfigError for an unknown pre-tokenizer.
  struct Listing {
    std::vector<std::string> tokens;
    std::vector<std::string> merges;
    std::vector<std::int32_t> control;
    SpecialTokens roles;
    std::string pre = "gpt2";
    bool ignore_merges = false;
  };
  static ByteLevelBpe from_listing(const Listing& listing, std::string_view label);
  // A listing's spec has "tokens" (an array, by id) instead of "vocab", and "control", "roles"
  // ({"bos": id or null, "eos", "pad", "unk", "add_bos": bool, "add_eos": bool}) and
  // "ignore_merges".
  nlohmann::json to_json() const override;

  std::vector<std::int32_t> encode(std::string_view text,
                                   ControlText control = ControlText::as_tokens) const override;
  void append_bytes(std::int32_t id, std::string& out) const override;
  std::optional<std::int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(std::int32_t id) const override;
  std::int32_t vocab_size() const override;  // over the vocab and the added tokens
  const SpecialTokens& special_tokens() const override;

 private:
  struct Impl;
  explicit ByteLevelBpe(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ecr::text
