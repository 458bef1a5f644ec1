// `ecr judge` and ecr::judge (ecr/eval/judge.hpp): the score is the digit whose token has the
// largest logit after the judge's prompt. On a random-weight chat fixture (tools/make_llama_fixture.py
// --chat) the scores are checked against the digit logits computed here from the model and the
// chat template directly; then SmolLM2 when it is installed.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "ecr/default_bundle.hpp"
#include "ecr/eval/judge.hpp"
#include "ecr/io/gguf.hpp"
#include "ecr/models/llama.hpp"
#include "ecr/text/gguf_tokenizer.hpp"
#include "gguf_support.hpp"
#include "support.hpp"

using namespace ecr;
using namespace ecr::test;

namespace {

fs::path chat_fixture() {
  const fs::path path = temp_dir("judge_chat") / "chat.gguf";
  run_tool(fmt::format("make_llama_fixture --out '{}' --chat --context 1024 --seed 7", path.string()));
  return path;
}

const std::vector<text::ChatMessage> kDialog = {
    {"user", "I loved Notting Hill (1999), and I feel sad today."},
    {"assistant", "Oh no. Do you like romantic comedies?"},
    {"user", "Yes, something warm please."}};
const char* kReplies[] = {
    "I think you would like Pretty Woman (1990), starring Julia Roberts. It is warm and funny, and it may lift "
    "your mood tonight.",
    "Pretty Woman."};

// The digit logits after `messages`, from the model itself: the prompt encoded by the chat
// template, one forward pass, the ten digits' logits read by their token ids.
struct Reference {
  explicit Reference(const fs::path& gguf)
      : file(gguf::File::open(gguf)),
        tokenizer(text::tokenizer_from_gguf(file)),
        chat(text::ChatTemplate::from_gguf(file)),
        model(LlamaModel::load(file, std::make_shared<ThreadPool>(2))) {}

  std::array<float, 10> digit_logits(const std::vector<text::ChatMessage>& messages) const {
    const auto ids = text::encode_chat(*tokenizer, chat, messages, true);
    LlamaState state = model.start(1, static_cast<std::int64_t>(ids.size()));
    const std::span<const std::int32_t> feed(ids);
    const Tensor logits = model.forward(state, std::span(&feed, 1), false);
    std::array<float, 10> out{};
    for (int d = 0; d < 10; ++d) {
      const auto id = tokenizer->token_to_id(std::string(1, static_cast<char>('0' + d)));
      REQUIRE(id.has_value());
      out[static_cast<std::size_t>(d)] = logits.span<float>()[static_cast<std::size_t>(*id)];
    }
    return out;
  }

  gguf::File file;
  std::shared_ptr<const Tokenizer> tokenizer;
  text::ChatTemplate chat;
  LlamaModel model;
};

}  // namespace

TEST_CASE("judge: the paper's five criteria, and the digit with the largest logit") {
  const auto c = judge::criteria();
  REQUIRE(c.size() == 5);
  CHECK(c[0].name == "emotional_intensity");
  CHECK(c[1].name == "emotional_persuasiveness");
  CHECK(c[2].name == "logic");
  CHECK(c[3].name == "informativeness");
  CHECK(c[4].name == "lifelikeness");
  const std::array<std::int32_t, 10> digits = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  std::vector<float> logits(20, 0.0f);
  logits[3] = 100.0f;  // not a digit: ignored
  logits[17] = 2.0f;
  logits[12] = 1.5f;
  CHECK(judge::best_digit(logits, digits) == 7);
  logits[12] = 2.0f;  // a tie: the smaller digit
  CHECK(judge::best_digit(logits, digits) == 2);
  std::vector<float> short_logits(15, 0.0f);
  check_refused<InputError>([&] { judge::best_digit(short_logits, digits); }, {"outside the 15 logits"});
  // The prompt holds the criterion, the dialog and the reply.
  const auto m = judge::judge_messages(c[2], kDialog, "A reply.");
  REQUIRE(m.size() == 2);
  CHECK(m[0].role == "system");
  CHECK(m[1].content.find("Logic:") != std::string::npos);
  CHECK(m[1].content.find("User: I loved Notting Hill") != std::string::npos);
  CHECK(m[1].content.find("Recommender: Oh no.") != std::string::npos);
  CHECK(m[1].content.find("Recommender: A reply.") != std::string::npos);
}

TEST_CASE("judge: a random chat model's scores are the argmax of its digit logits, in range, deterministic") {
  ECR_REQUIRE_GGUF_PACKAGE();
  const fs::path gguf = chat_fixture();
  const judge::Judge j = judge::Judge::load(gguf);
  const Reference reference(gguf);
  std::vector<int> all;
  for (const char* reply : kReplies) {
    const std::vector<int> scores = j.score(kDialog, reply);
    REQUIRE(scores.size() == 5);
    CHECK(j.score(kDialog, reply) == scores);
    for (std::size_t c = 0; c < scores.size(); ++c) {
      INFO("criterion " << judge::criteria()[c].name);
      const auto logits = reference.digit_logits(judge::judge_messages(judge::criteria()[c], kDialog, reply));
      const auto best = std::max_element(logits.begin(), logits.end()) - logits.begin();
      CHECK(scores[c] == best);
      CHECK(scores[c] >= 0);
      CHECK(scores[c] <= 9);
      all.push_back(scores[c]);
    }
  }

  // ecr judge --json gives the same scores and their means; text output has a row per reply.
  const fs::path dir = temp_dir("judge_cli");
  nlohmann::json file = {{"replies", nlohmann::json::array()}};
  for (const char* reply : kReplies) {
    nlohmann::json dialog = nlohmann::json::array();
    for (const auto& m : kDialog) dialog.push_back({{"role", m.role == "user" ? "user" : "system"}, {"text", m.content}});
    file["replies"].push_back({{"reply", reply}, {"dialog", dialog}});
  }
  file["replies"][0]["conversation"] = "c1";
  std::ofstream(dir / "replies.json") << file.dump();
  std::string out;
  REQUIRE(run_command(fmt::format("'{}' judge --gguf '{}' --replies '{}' --json --threads 2 2>&1", cli_path().string(),
                                  gguf.string(), (dir / "replies.json").string()),
                      &out) == 0);
  const auto result = nlohmann::json::parse(out);
  REQUIRE(result["replies"].size() == 2);
  CHECK(result["replies"][0]["id"] == "c1");
  CHECK(result["replies"][1]["id"] == "1");
  for (std::size_t c = 0; c < 5; ++c) {
    const std::string name(judge::criteria()[c].name);
    CHECK(result["replies"][0]["scores"][name] == all[c]);
    CHECK(result["replies"][1]["scores"][name] == all[5 + c]);
    CHECK(result["means"][name].get<double>() == doctest::Approx((all[c] + all[5 + c]) / 2.0));
  }
  REQUIRE(run_command(fmt::format("'{}' judge --gguf '{}' --replies '{}' 2>&1", cli_path().string(), gguf.string(),
                                  (dir / "replies.json").string()),
                      &out) == 0);
  CHECK(out.find("lifelikeness") != std::string::npos);
  CHECK(out.find("mean") != std::string::npos);

  // Bad input: a clear error naming the file and the field.
  std::ofstream(dir / "bad.json") << R"({"replies": [{"reply": "ok"}, {"text": "no reply"}]})";
  CHECK(run_command(fmt::format("'{}' judge --gguf '{}' --replies '{}' 2>&1", cli_path().string(), gguf.string(),
                                (dir / "bad.json").string()),
                    &out) != 0);
  CHECK(out.find("replies[1]") != std::string::npos);
  CHECK(out.find("'reply'") != std::string::npos);
  std::ofstream(dir / "role.json") << R"([{"reply": "ok", "dialog": [{"role": "bot", "text": "hi"}]}])";
  CHECK(run_command(fmt::format("'{}' judge --gguf '{}' --replies '{}' 2>&1", cli_path().string(), gguf.string(),
                                (dir / "role.json").string()),
                    &out) != 0);
  CHECK(out.find("dialog[0]") != std::string::npos);
  // A file without a tokenizer cannot judge text.
  const fs::path bare = temp_dir("judge_bare") / "bare.gguf";
  run_tool(fmt::format("make_llama_fixture --out '{}' --seed 2", bare.string()));
  check_refused<ConfigError>([&] { judge::Judge::load(bare); }, {"no tokenizer"});
}

TEST_CASE("judge: SmolLM2 scores a reply in range, the argmax of its digit logits") {
  const fs::path gguf = smollm2();
  if (!fs::exists(gguf)) {
    MESSAGE("skipped: no SmolLM2 at " << gguf << " (tools/fetch_llm.sh, or ECR_SMOLLM2_GGUF)");
    return;
  }
  // One reply (a prompt is ~300 tokens for each criterion): the scores, and the argmax of the
  // digit logits computed here.
  const judge::Judge j = judge::Judge::load(gguf, std::nullopt, std::make_shared<ThreadPool>(2));
  const Reference reference(gguf);
  const std::vector<int> scores = j.score(kDialog, kReplies[0]);
  REQUIRE(scores.size() == 5);
  for (std::size_t c = 0; c < scores.size(); ++c) {
    CHECK(scores[c] >= 0);
    CHECK(scores[c] <= 9);
    const auto logits = reference.digit_logits(judge::judge_messages(judge::criteria()[c], kDialog, kReplies[0]));
    CHECK(scores[c] == std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  MESSAGE(kReplies[0] << " -> " << scores[0] << scores[1] << scores[2] << scores[3] << scores[4]);
}
