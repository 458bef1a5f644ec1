// SentencePiece BPE, as Llama 2, TinyLlama and llama2.c's vocabularies use it, behind the
// Tokenizer interface; GGUF's tokenizer.ggml.model "llama" (text/gguf_tokenizer.hpp).
//
// encode(): control tokens are split out of the text first (ControlText::as_tokens only). Each
// stretch between them gets a leading space when the vocab adds one (add_space_prefix; at the
// start of the text and after a control token, where llama.cpp adds it), its spaces become
// U+2581 ("▁"), and its characters merge pairwise while the merged piece is a token: the pair
// whose piece has the highest score first, the leftmost among equals. A piece that is still no
// token is spelled by its bytes' <0xXX> tokens (byte fallback), or by unk where a byte has none.
// Only normal tokens (GGUF types normal, unused, undefined) come out of merging, so control,
// user-defined and byte tokens never come from plain text.
//
// Decoding reverses it: "▁" is a space, a byte token its byte, a control token its own text,
// and the first token of a decoding loses one leading space when the vocab adds one.
//
// Copies share the tables.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ecr/text/tokenizer.hpp"

namespace ecr::text {

// GGUF's token types (tokenizer.ggml.token_type), with llama.cpp's numbers.
enum class TokenType : std::int32_t {
  undefined = 0, normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6,
};
inline constexpr std::int32_t kMaxTokenType = 6;

class SentencePieceBpe final : public Tokenizer {
 public:
  // Token i is tokens[i] with scores[i] and types[i]. `roles` gives bos/eos/pad/unk and
  // add_bos/add_eos; its control list is ignored (the types say which tokens are control: the
  // unknown, control and user-defined ones). `label` names the source in errors. FormatError
  // for lengths that disagree, a score that is not finite, a byte token not spelled <0xXX>, a
  // role id outside the vocab.
  struct Listing {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<TokenType> types;
    SpecialTokens roles;
    bool add_space_prefix = true;
  };
  static SentencePieceBpe from_listing(const Listing& listing, std::string_view label);
  // The form to_json() writes: {"kind": "spm_bpe", "tokens": [...], "scores": [...], "types":
  // [...], "roles": {"bos": id or null, "eos", "pad", "unk", "add_bos": bool, "add_eos": bool},
  // "add_space_prefix": bool}.
  static SentencePieceBpe from_json(const nlohmann::json& spec);
  nlohmann::json to_json() const override;

  std::vector<std::int32_t> encode(std::string_view text,
                                   ControlText control = ControlText::as_tokens) const override;
  void append_bytes(std::int32_t id, std::string& out) const override;
  void append_first_bytes(std::int32_t id, std::string& out) const override;
  std::optional<std::int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(std::int32_t id) const override;
  std::int32_t vocab_size() const override;
  const SpecialTokens& special_tokens() const override;

 private:
  struct Impl;
  explicit SentencePieceBpe(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ecr::text
