// A chat LLM as the judge of recommendation replies, as in the paper's evaluation of ECR's
// responses (there GPT-4-turbo): each reply is scored 0 to 9 on five criteria, one prompt per
// reply and criterion. The score is read by constrained decoding: after the prompt, the digit
// whose token ("0".."9") has the largest logit; nothing is parsed from free text, so every
// score is in range and the same model and prompt always give the same one.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ecr/core/thread_pool.hpp"
#include "ecr/models/llama.hpp"
#include "ecr/text/chat_template.hpp"
#include "ecr/text/tokenizer.hpp"

namespace ecr::judge {

struct Criterion {
  std::string_view name;        // "emotional_intensity"
  std::string_view definition;  // what the judge is asked to rate
};

// The paper's five criteria, in its table's order: emotional intensity, emotional
// persuasiveness, logic, informativeness, lifelikeness.
std::span<const Criterion> criteria();

// The judge's messages for one reply and criterion: a system turn that asks for a single digit,
// then a user turn with the criterion, the dialog ("User: ...", "Recommender: ..." lines; roles
// "user" and "assistant") and the reply.
std::vector<text::ChatMessage> judge_messages(const Criterion& criterion, std::span<const text::ChatMessage> dialog,
                                              std::string_view reply);

// The ids of "0".."9": each digit's own token, else its text's single-token encoding.
// FormatError naming the digit when neither exists (the judge could not answer it in one token).
std::array<std::int32_t, 10> digit_tokens(const Tokenizer& tokenizer);

// The digit whose token has the largest logit (the smaller digit on a tie).
int best_digit(std::span<const float> logits, const std::array<std::int32_t, 10>& digits);

// A GGUF chat model, loaded once; score() is const and thread-safe (each call has its own state).
class Judge {
 public:
  static Judge load(const std::filesystem::path& gguf, std::optional<std::string_view> chat_template = {},
                    std::shared_ptr<ThreadPool> pool = nullptr);

  // The prompt's ids for one reply and criterion (the chat template's generation prompt last).
  std::vector<std::int32_t> prompt_ids(const Criterion& criterion, std::span<const text::ChatMessage> dialog,
                                       std::string_view reply) const;
  // The scores of one reply, one per criteria() entry.
  std::vector<int> score(std::span<const text::ChatMessage> dialog, std::string_view reply) const;

  const std::array<std::int32_t, 10>& digits() const { return digits_; }

 private:
  Judge(LlamaModel model, std::shared_ptr<const Tokenizer> tokenizer, text::ChatTemplate chat);
  LlamaModel model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  text::ChatTemplate chat_;
  std::array<std::int32_t, 10> digits_{};
};

}  // namespace ecr::judge
