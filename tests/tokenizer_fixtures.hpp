// The tokenizers the tokenizer tests build from ../shared/data/gpt2 (callers skip without it).
#pragma once

#include <fstream>

#include <nlohmann/json.hpp>

#include "ecr/text/byte_level_bpe.hpp"
#include "support.hpp"

namespace ecr::test {

inline fs::path gpt2_dir() { return shared_data() / "gpt2"; }

// ECR's GPT-2 side, as a bundle stores it: eos 50256 in the vocab, <pad> and <movie> added.
inline text::ByteLevelBpe ecr_gpt2() {
  return text::ByteLevelBpe::from_files(gpt2_dir() / "encoder.json", gpt2_dir() / "vocab.bpe",
                                        {{"<pad>", 50257}, {"<movie>", 50258}});
}

// RoBERTa's vocab: GPT-2's with its special tokens in front (<s> 0, <pad> 1, </s> 2, <unk> 3),
// <|endoftext|> dropped, <mask> last (50264).
inline nlohmann::json roberta_style_vocab() {
  std::ifstream in(gpt2_dir() / "encoder.json");
  const auto gpt2_vocab = nlohmann::json::parse(in);
  nlohmann::json vocab = {{"<s>", 0}, {"<pad>", 1}, {"</s>", 2}, {"<unk>", 3}};
  for (const auto& [token, id] : gpt2_vocab.items())
    if (token != "<|endoftext|>") vocab[token] = id.get<int>() + 4;
  vocab["<mask>"] = 50264;
  return vocab;
}

}  // namespace ecr::test
