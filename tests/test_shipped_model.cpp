// The shipped model (models/, trained by tools/train): it loads and verifies, and it does its
// job where random weights do not: on ReDial test dialogs it ranks the movies the recommender
// went on to name better than the popularity baseline does (Recall@50), and the tiny random
// bundle of the same KG does worse than that baseline, so the check tells training from noise.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "ecr/default_bundle.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/recommender.hpp"
#include "ecr/responder.hpp"
#include "recommender_fixture.hpp"

using namespace ecr;
namespace fs = std::filesystem;

namespace {

// Recall@50 of `ecr eval` over the first 200 dialogs of the ReDial test split (its other options
// passed in `extra`), read from its --json report.
double recall_at_50(const std::string& extra, const fs::path& out) {
  const fs::path test = test::shared_data() / "redial" / "test_dialogs.jsonl";
  std::string log;
  const int rc = test::run_command(fmt::format("{} eval --dialogs {} --limit 200 --json {} {} 2>&1",
                                               test::cli_path().string(), test.string(), out.string(), extra),
                                   &log);
  INFO(log);
  REQUIRE(rc == 0);
  return nlohmann::json::parse(test::file_text(out))["metrics"]["recall@50"].get<double>();
}

// The reply to one user line, and whether it reads as English that names the movie it recommends:
// at least three words, nearly all of them letters (an apostrophe or hyphen inside, punctuation
// around), and the title of the reply's item without its "(year)".
struct ReplyCheck {
  std::string reply, title;
  bool english = false, names_title = false;
};

ReplyCheck reply_to(const Recommender& recommender, const Responder& responder, const std::string& line) {
  Dialog dialog;
  dialog.add_turn({Role::user, line, {}, {}});
  const Responder::Turn turn = Responder::converse(recommender, responder, dialog);
  ReplyCheck check{turn.response.text, turn.response.items.empty() ? "" : turn.response.items.front().name};
  if (const auto paren = check.title.rfind(" ("); paren != std::string::npos) check.title.resize(paren);
  check.names_title = !check.title.empty() && check.reply.find(check.title) != std::string::npos;
  std::istringstream words(check.reply);
  std::size_t total = 0, letters = 0;
  for (std::string w; words >> w;) {
    ++total;
    const auto is_punct = [](unsigned char c) { return std::ispunct(c) != 0; };
    while (!w.empty() && is_punct(static_cast<unsigned char>(w.back()))) w.pop_back();
    while (!w.empty() && is_punct(static_cast<unsigned char>(w.front()))) w.erase(w.begin());
    bool word = !w.empty();
    for (const unsigned char c : w) word = word && (std::isalnum(c) || c == '\'' || c == '-');
    letters += word;
  }
  check.english = total >= 3 && letters * 10 >= total * 9;
  return check;
}

const char* const kUserLines[] = {
    "Hi! I love horror movies like The Shining. Any suggestions?",
    "My kids loved Toy Story, can you suggest something animated?",
    "I am in the mood for a funny comedy this weekend.",
};

}  // namespace

TEST_CASE("the shipped model is found, verifies, is trained and fits the size budget") {
  const fs::path path = default_bundle_path();
  CHECK(path.filename() == std::string(kDefaultBundleName));
  CHECK(fs::file_size(path) <= 30u * 1000u * 1000u);
  const Bundle bundle = Bundle::open(path);
  bundle.verify();
  const auto& meta = bundle.metadata();
  CHECK_FALSE(meta.contains("untrained"));
  for (const char* component : {"backbone", "text_encoder", "rec_prompt", "conv_prompt", "emotion_classifier", "generator"})
    CHECK_MESSAGE(meta["components"].contains(component), component);
  CHECK(meta.contains("kg"));
  CHECK(meta.contains("cooccurrence"));
}

TEST_CASE("ECR_BUNDLE overrides the shipped model, and a missing one is a clear ConfigError") {
  ::setenv("ECR_BUNDLE", "/nonexistent/ecr.ecr", 1);
  CHECK_THROWS_AS(default_bundle_path(), ConfigError);
  try {
    default_bundle_path();
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("/nonexistent/ecr.ecr") != std::string::npos);
  }
  ::unsetenv("ECR_BUNDLE");
  CHECK(fs::is_regular_file(default_bundle_path()));
}

TEST_CASE("the shipped model is looked for in a host's package prefix, then beside the running binary") {
  // A host built against an installed ecr passes its find_package prefix's share/ecr: it wins.
  const fs::path prefix = test::temp_dir("default_bundle_prefix");
  fs::create_directories(prefix / "share" / "ecr");
  const fs::path installed = prefix / "share" / "ecr" / kDefaultBundleName;
  fs::create_symlink(fs::absolute(default_bundle_path()), installed);
  CHECK(default_bundle_path(prefix / "share" / "ecr") == installed);
  // Beside the binary: <dir>/../share/ecr (bin/ or lib/ of a prefix) and <dir>/share/ecr (the
  // Python package), before the configured prefix and the source tree.
  const auto candidates = default_bundle_candidates();
  const fs::path dir = fs::read_symlink("/proc/self/exe").parent_path();
  const auto at = [&](const fs::path& p) {
    return std::find(candidates.begin(), candidates.end(), p.lexically_normal()) - candidates.begin();
  };
  const auto up = at(dir.parent_path() / "share" / "ecr" / kDefaultBundleName);
  const auto beside = at(dir / "share" / "ecr" / kDefaultBundleName);
  const auto source = at(fs::path(ECR_SOURCE_DIR) / "models" / kDefaultBundleName);
  CHECK(up < beside);
  CHECK(beside < source);
  CHECK(source < static_cast<std::ptrdiff_t>(candidates.size()));
  CHECK(candidates.back() == (fs::path(ECR_SOURCE_DIR) / "models" / kDefaultBundleName).lexically_normal());
}

TEST_CASE("the default LLM is looked for where the bundle is, ECR_LLM first, and is optional") {
  const auto candidates = default_llm_candidates();
  REQUIRE(candidates.size() == default_bundle_candidates().size());
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    CHECK(candidates[i].filename() == std::string(kDefaultLlmName));
    CHECK(candidates[i].parent_path() == default_bundle_candidates()[i].parent_path());
  }
  // Found in a host's package prefix when it is there; absent everywhere is no error.
  const fs::path prefix = test::temp_dir("default_llm_prefix");
  const fs::path installed = prefix / kDefaultLlmName;
  std::ofstream(installed) << "GGUF";
  CHECK(default_llm_path(prefix) == installed);
  ::setenv("ECR_LLM", installed.c_str(), 1);
  CHECK(default_llm_candidates() == std::vector<fs::path>{installed});
  CHECK(default_llm_path() == installed);
  ::setenv("ECR_LLM", "/nonexistent/llm.gguf", 1);
  CHECK_THROWS_WITH_AS(default_llm_path(), doctest::Contains("/nonexistent/llm.gguf"), ConfigError);
  ::unsetenv("ECR_LLM");
  const auto found = default_llm_path();
  if (found) CHECK(fs::is_regular_file(*found));
}

TEST_CASE("the shipped model ranks ReDial test movies better than popularity at 50, and random weights do worse") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const fs::path dir = test::temp_dir("shipped_model_recall");
  const fs::path redial = test::shared_data() / "redial";
  const double popularity = recall_at_50(fmt::format("--baseline popularity --popularity-from {0}/dialogs.jsonl,{0}/train_dialogs.jsonl",
                                                     redial.string()),
                                         dir / "popularity.json");
  const double trained = recall_at_50("", dir / "shipped.json");
  const double random = recall_at_50("--bundle " + test::recommender_fixture().bundle.string(), dir / "random.json");
  MESSAGE(fmt::format("R@50 over 200 test dialogs: shipped {:.4f}, popularity {:.4f}, random weights {:.4f}", trained,
                      popularity, random));
  CHECK(trained > popularity);
  CHECK(random < popularity);
}

TEST_CASE("the shipped model's replies are English that names the recommended movie, and random weights' are not") {
  const Recommender recommender = Recommender::load(default_bundle_path());
  const Responder responder = Responder::load(default_bundle_path(), ecr::test::gpt2_responder());
  for (const char* line : kUserLines) {
    const ReplyCheck c = reply_to(recommender, responder, line);
    INFO("user: " << line << "\nreply: " << c.reply << "\ntitle: " << c.title);
    CHECK(c.english);
    CHECK(c.names_title);
  }
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const fs::path random_bundle = test::recommender_fixture().bundle;
  const Recommender random_recommender = Recommender::load(random_bundle);
  const Responder random_responder = Responder::load(random_bundle, ecr::test::gpt2_responder());
  for (const char* line : kUserLines) {
    const ReplyCheck c = reply_to(random_recommender, random_responder, line);
    INFO("user: " << line << "\nrandom reply: " << c.reply);
    CHECK_FALSE((c.english && c.names_title));
  }
}
