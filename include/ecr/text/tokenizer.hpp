// The tokenizer interface: text to ids and back, whatever the model family (docs/math.md
// section 1; docs/architecture.md, "text layer"). The implementations are byte-level BPE
// (text/byte_level_bpe.hpp) and SentencePiece BPE (text/sentencepiece_bpe.hpp); make_tokenizer()
// picks the one a bundle's spec names, text::tokenizer_from_gguf() the one a GGUF file names.
//
// Control tokens (`<|endoftext|>`, `<pad>`, `<s>`, an added `<movie>`) are ids that stand for no
// text of their own. encode() maps text that spells one to its id unless asked to read all text
// as plain text (ControlText::as_text), which is what text from outside the program needs: a user
// who types "<|endoftext|>" must not end a turn.
//
// A Tokenizer is immutable after construction, and every method is safe to call from many
// threads at once; hold one by std::shared_ptr<const Tokenizer> or by reference.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace ecr {

// The ids of the roles a model gives tokens; a role the vocab has no token for is empty.
struct SpecialTokens {
  std::optional<std::int32_t> bos, eos, pad, unk;
  // Every control token (the roles above among them), ascending.
  std::vector<std::int32_t> control;
  // Whether a whole sequence starts with bos / ends with eos, as the model file says
  // (GGUF's tokenizer.ggml.add_bos_token, add_eos_token); encode_sequence() follows them.
  bool add_bos = false, add_eos = false;
};

// How encode() reads text that spells a control token.
enum class ControlText {
  as_tokens,  // "<|endoftext|>" is the control token: for text the program itself writes
  as_text,    // it is the characters '<', '|', ...: for text from outside
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Throws InputError naming the byte offset when `text` is not valid UTF-8.
  virtual std::vector<std::int32_t> encode(std::string_view text,
                                           ControlText control = ControlText::as_tokens) const = 0;
  // encode(), with bos before and eos after where special_tokens() says a sequence has them: the
  // ids of a whole prompt as the model was trained on them. encode() itself never adds either.
  std::vector<std::int32_t> encode_sequence(std::string_view text, ControlText control = ControlText::as_tokens) const;
  // The tokens' text concatenated (control tokens as their own text); bytes that do not form
  // UTF-8 (ids that split a character, a sequence cut short) become U+FFFD. InputError on an
  // unknown id. The same text, in pieces, as a DecodeStream given the same ids.
  std::string decode(std::span<const std::int32_t> ids) const;
  // The bytes token `id` adds to a decoding, which may be part of a character; InputError on an
  // unknown id.
  virtual void append_bytes(std::int32_t id, std::string& out) const = 0;
  // The same for the first token of a decoding: SentencePiece takes away the space that encode()
  // put before the text (llama.cpp's detokenizer does the same).
  virtual void append_first_bytes(std::int32_t id, std::string& out) const { append_bytes(id, out); }

  // Token strings are in the vocab's own form (byte-level BPE: "Ġthe" for " the").
  virtual std::optional<std::int32_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(std::int32_t id) const = 0;  // InputError on an unknown id
  // Max id + 1: every id encode() can give is below it.
  virtual std::int32_t vocab_size() const = 0;
  virtual const SpecialTokens& special_tokens() const = 0;
  bool is_control(std::int32_t id) const;

  // The spec make_tokenizer() reads back to an equal tokenizer (the form bundles carry).
  virtual nlohmann::json to_json() const = 0;

 protected:
  Tokenizer() = default;
  // Copies only as a whole implementation, never sliced to the interface.
  Tokenizer(const Tokenizer&) = default;
  Tokenizer& operator=(const Tokenizer&) = default;
};

// Decodes ids one at a time, as a generator produces them: each push() gives the text that is
// complete so far, holding back the first bytes of a character split across tokens, so every
// piece is whole UTF-8. The pieces with finish() are decode() of all the ids, byte for byte.
class DecodeStream {
 public:
  // `tokenizer` must outlive the stream.
  explicit DecodeStream(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  // InputError on an unknown id (the stream is then as before the call).
  std::string push(std::int32_t id);
  // What is held back, a character cut short as U+FFFD; the stream starts over empty.
  std::string finish();

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;  // bytes of a character not yet complete
  bool started_ = false;  // a token was pushed since the start or the last finish()
};

// The tokenizer a spec describes, by its "kind" (docs/format.md, "tokenizers"): "byte_bpe" is
// ByteLevelBpe, with its pre-tokenizer named by "pre" ("gpt2" when absent); "spm_bpe" is
// SentencePieceBpe. ConfigError for a
// kind or pre-tokenizer this build does not have, FormatError for a malformed spec.
std::shared_ptr<const Tokenizer> make_tokenizer(const nlohmann::json& spec);

}  // namespace ecr
