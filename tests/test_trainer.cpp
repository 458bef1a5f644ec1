// The trainer (tools/train, `python3 -m tools.train`) in its smoke mode: tiny models, a few dialogs, a few steps of every
// stage. It must see every stage's loss fall and write, through the real converter, a bundle the
// engine loads and runs end to end, so the path that made the shipped model cannot rot.
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/recommender.hpp"
#include "ecr/responder.hpp"
#include "support.hpp"

using namespace ecr;
namespace fs = std::filesystem;

TEST_CASE("the trainer's smoke run: every loss falls, and its bundle recommends and replies") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const fs::path dir = test::temp_dir("trainer_smoke");
  std::string out;
  const int rc = test::run_command(
      test::python_module_command(fmt::format("train --smoke --threads 1 --data {} --ecr {} --out {}",
                                              test::shared_data().string(), test::cli_path().string(), dir.string())) +
          " 2>&1",
      &out);
  INFO(out.substr(out.size() > 4000 ? out.size() - 4000 : 0));
  REQUIRE(rc == 0);
  CHECK(out.find("smoke: every stage's loss fell") != std::string::npos);
  // The classifier's top-1 accuracy on the hand-labelled utterances is a reported figure of every run.
  const auto log = nlohmann::json::parse(std::ifstream(dir / "train_log.json"));
  for (const char* key : {"dev_top1", "eval_top1"}) {
    INFO(key);
    REQUIRE(log["emotion_classifier"].contains(key));
    const double top1 = log["emotion_classifier"][key].get<double>();
    CHECK((top1 >= 0.0 && top1 <= 1.0));
  }

  const Bundle bundle = Bundle::open(dir / "ecr.ecr");
  const Recommender recommender = Recommender::load(bundle);
  const Responder responder = Responder::load(bundle, ecr::test::gpt2_responder());
  RecommendRequest request;
  request.top_k = 3;
  const auto turn = Responder::converse(
      recommender, responder,
      Dialog::parse(R"J({"turns": [{"role": "user", "text": "I loved The Shining (1980). Anything as scary?"}]})J"),
      request);
  CHECK(turn.recommendation.items.size() == 3);
  CHECK(turn.recommendation.emotion_fusion);  // the bundle's classifier labelled the turn
  CHECK_FALSE(turn.response.reply_ids.empty());
}

// The weak labeler the classifier learns from (tools/train/data.py weak_emotions), on the
// hand-labelled utterances of tools/train/emotion_{dev,eval}.jsonl: it must read negation ("I did
// not like it"), sadness, thanks, surprise, nostalgia and question forms for what they are. The
// cue lists that read only whole cue words (no negation, "?" never matched after a word) got
// 0.70 and 0.63 here.
TEST_CASE("the weak emotion labeler gets the top label right on the hand-labelled utterances") {
  std::string out;
  const fs::path sets = test::source_dir() / "tools" / "train";
  const int rc = test::run_command(
      test::python_module_command(fmt::format("train.check_emotions --eval {} --eval {}",
                                              (sets / "emotion_dev.jsonl").string(),
                                              (sets / "emotion_eval.jsonl").string())) +
          " 2>&1",
      &out);
  INFO(out);
  REQUIRE(rc == 0);
  for (const char* set : {"emotion_dev.jsonl", "emotion_eval.jsonl"}) {
    const auto at = out.find(fmt::format("{} (", set));
    REQUIRE(at != std::string::npos);
    const std::string key = "weak labeler  top-1 accuracy ";
    const auto line = out.find(key, at);
    REQUIRE(line != std::string::npos);
    CHECK(std::stod(out.substr(line + key.size(), 5)) >= 0.9);
  }
}
