// The tokenizer a GGUF file describes in its tokenizer.ggml.* metadata (docs/gguf.md,
// "Tokenizers"), read the way llama.cpp reads it:
//
//   tokenizer.ggml.model   "gpt2": ByteLevelBpe with tokenizer.ggml.merges and the pre-tokenizer
//                          tokenizer.ggml.pre names ("gpt2", "smollm", "llama-bpe" and its
//                          aliases "llama3", "llama-v3"); "llama": SentencePieceBpe with
//                          tokenizer.ggml.scores. Any other model is a ConfigError.
//   tokens, token_type     one string and one type per id (types absent: all normal); control,
//                          user-defined and unknown tokens are control tokens, matched in text
//                          only with ControlText::as_tokens.
//   bos/eos/unknown/padding_token_id   the roles (u32, each inside the vocab, or 0xFFFFFFFF,
//                          llama.cpp's "none"); absent, a SentencePiece vocab takes llama.cpp's
//                          1, 2 and 0 where they exist.
//   add_bos_token, add_eos_token       what encode_sequence() adds; absent, llama.cpp's default
//                          (bos for SentencePiece and Llama 3's pre-tokenizer, else nothing).
//   add_space_prefix       SentencePiece's leading space; absent, true.
//
// Each key is checked: a wrong type, lengths that disagree, an id outside the vocab, a token
// text listed twice are FormatErrors naming the file and the key.
#pragma once

#include <memory>

#include "ecr/io/gguf.hpp"
#include "ecr/text/tokenizer.hpp"

namespace ecr::text {

std::shared_ptr<const Tokenizer> tokenizer_from_gguf(const gguf::File& file);

}  // namespace ecr::text
