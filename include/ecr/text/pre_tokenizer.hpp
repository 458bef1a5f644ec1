// A BPE tokenizer's pre-tokenizer: how text is cut into pieces before merges apply. No merge
// crosses a piece's edge, so this choice is part of the model: GPT-2 and RoBERTa cut with GPT-2's
// pattern, Llama 3 and SmolLM2 with patterns of their own. Each pre-tokenizer has a name, the one
// model files give it (a bundle's "pre", GGUF's tokenizer.ggml.pre), and pre_tokenizer() finds it.
#pragma once

#include <cstddef>
#include <string_view>

namespace ecr::text {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual std::string_view name() const = 0;
  // End of the piece of `text` that starts at byte `pos` (< text.size()); greater than `pos`.
  // `text` is valid UTF-8 and holds no control token.
  virtual std::size_t piece_end(std::string_view text, std::size_t pos) const = 0;
};

// GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// with \s the Unicode White_Space property, as Python's `regex` and HuggingFace read it.
class Gpt2PreTokenizer final : public PreTokenizer {
 public:
  std::string_view name() const override { return "gpt2"; }
  std::size_t piece_end(std::string_view text, std::size_t pos) const override;
};

// SmolLM2's ("smollm" in GGUF): every \p{N} character a piece of its own, and the text between
// them cut by GPT-2's pattern, as that text alone (llama.cpp splits by "\p{N}" first, then by
// GPT-2's pattern inside each stretch).
class SmollmPreTokenizer final : public PreTokenizer {
 public:
  std::string_view name() const override { return "smollm"; }
  std::size_t piece_end(std::string_view text, std::size_t pos) const override;
};

// Llama 3's ("llama-bpe" in GGUF):
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//   \s*[\r\n]+|\s+(?!\S)|\s+
class Llama3PreTokenizer final : public PreTokenizer {
 public:
  std::string_view name() const override { return "llama-bpe"; }
  std::size_t piece_end(std::string_view text, std::size_t pos) const override;
};

// The pre-tokenizer called `name`; ConfigError naming the ones this build has.
const PreTokenizer& pre_tokenizer(std::string_view name);

}  // namespace ecr::text
