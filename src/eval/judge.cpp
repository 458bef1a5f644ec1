#include "ecr/eval/judge.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "ecr/core/error.hpp"
#include "ecr/io/gguf.hpp"
#include "ecr/text/gguf_tokenizer.hpp"

namespace ecr::judge {

namespace {

// The paper's criteria (ECR, RecSys 2024, section 5: LLM-based evaluation of the responses),
// worded for a judge that answers with one digit.
constexpr std::array<Criterion, 5> kCriteria = {{
    {"emotional_intensity",
     "Emotional intensity: how strongly the reply conveys emotions (0: no emotion at all, 9: very strong, vivid "
     "emotion)."},
    {"emotional_persuasiveness",
     "Emotional persuasiveness: how well the reply connects with the user's feelings to persuade them to watch the "
     "recommended movie (0: not at all, 9: very persuasive)."},
    {"logic",
     "Logic: how coherent the reply is, in itself and with the dialog so far (0: incoherent or contradictory, 9: "
     "fully logical)."},
    {"informativeness",
     "Informativeness: how much useful information the reply gives about the recommended movie (0: none, 9: a lot)."},
    {"lifelikeness",
     "Lifelikeness: how natural and human the reply sounds, as a friend who loves movies would talk (0: robotic or "
     "broken, 9: fully natural)."},
}};

}  // namespace

std::span<const Criterion> criteria() { return kCriteria; }

std::vector<text::ChatMessage> judge_messages(const Criterion& criterion, std::span<const text::ChatMessage> dialog,
                                              std::string_view reply) {
  std::string shown;
  for (const text::ChatMessage& m : dialog)
    shown += fmt::format("{}: {}\n", m.role == "user" ? "User" : "Recommender", m.content);
  return {{"system",
           "You rate the replies of a movie recommender. Answer with a single digit from 0 to 9 and nothing else."},
          {"user", fmt::format("Rate the recommender's reply on this criterion.\n{}\n\nDialog:\n{}\nReply to rate:\n"
                               "Recommender: {}\n\nScore (one digit, 0 to 9):",
                               criterion.definition, shown, reply)}};
}

std::array<std::int32_t, 10> digit_tokens(const Tokenizer& tokenizer) {
  std::array<std::int32_t, 10> ids{};
  for (int d = 0; d < 10; ++d) {
    const std::string digit(1, static_cast<char>('0' + d));
    if (const auto id = tokenizer.token_to_id(digit)) {
      ids[static_cast<std::size_t>(d)] = *id;
      continue;
    }
    const std::vector<std::int32_t> encoded = tokenizer.encode(digit);
    if (encoded.size() != 1)
      fail<FormatError>("judge: the tokenizer has no single token for the digit '{}' ({} tokens): the score is read "
                        "as one digit token",
                        digit, encoded.size());
    ids[static_cast<std::size_t>(d)] = encoded.front();
  }
  return ids;
}

int best_digit(std::span<const float> logits, const std::array<std::int32_t, 10>& digits) {
  int best = 0;
  for (int d = 0; d < 10; ++d) {
    const auto id = static_cast<std::size_t>(digits[static_cast<std::size_t>(d)]);
    if (id >= logits.size()) fail<InputError>("judge: digit token {} is outside the {} logits", id, logits.size());
    if (logits[id] > logits[static_cast<std::size_t>(digits[static_cast<std::size_t>(best)])]) best = d;
  }
  return best;
}

Judge::Judge(LlamaModel model, std::shared_ptr<const Tokenizer> tokenizer, text::ChatTemplate chat)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), chat_(std::move(chat)) {
  digits_ = digit_tokens(*tokenizer_);
  for (const std::int32_t id : digits_)
    if (id < 0 || id >= model_.vocab_size())
      fail<FormatError>("judge: digit token {} is outside the model's vocabulary of {}", id, model_.vocab_size());
}

Judge Judge::load(const std::filesystem::path& gguf, std::optional<std::string_view> chat_template,
                  std::shared_ptr<ThreadPool> pool) {
  const gguf::File file = gguf::File::open(gguf);
  if (!file.contains("tokenizer.ggml.model"))
    fail<ConfigError>("judge: gguf '{}' has no tokenizer (tokenizer.ggml.model): a judge reads text", file.label());
  auto tokenizer = text::tokenizer_from_gguf(file);
  auto chat = text::ChatTemplate::from_gguf(file, chat_template);
  return Judge(LlamaModel::load(file, std::move(pool)), std::move(tokenizer), std::move(chat));
}

std::vector<std::int32_t> Judge::prompt_ids(const Criterion& criterion, std::span<const text::ChatMessage> dialog,
                                            std::string_view reply) const {
  auto messages = judge_messages(criterion, dialog, reply);
  if (chat_.family() == text::ChatTemplate::Family::mistral) {  // no system turn: it opens the user's
    messages[1].content = messages[0].content + "\n\n" + messages[1].content;
    messages.erase(messages.begin());
  }
  return text::encode_chat(*tokenizer_, chat_, messages, true);
}

std::vector<int> Judge::score(std::span<const text::ChatMessage> dialog, std::string_view reply) const {
  std::vector<int> scores;
  for (const Criterion& criterion : criteria()) {
    const std::vector<std::int32_t> ids = prompt_ids(criterion, dialog, reply);
    LlamaState state = model_.start(1, static_cast<std::int64_t>(ids.size()));
    const std::span<const std::int32_t> feed(ids);
    const Tensor logits = model_.forward(state, std::span(&feed, 1), false);
    scores.push_back(best_digit(logits.span<float>(), digits_));
  }
  return scores;
}

}  // namespace ecr::judge
