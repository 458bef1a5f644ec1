// The shipped model (models/, trained by tools/ecr_train): it loads and verifies, and it does its
// job where random weights do not: on ReDial test dialogs it ranks the movies the recommender
// went on to name better than the popularity baseline does (Recall@50), and the tiny random
// bundle of the same KG does worse than that baseline, so the check tells training from noise.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/default_bundle.hpp"
#include "ecr/io/bundle.hpp"
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

TEST_CASE("the shipped model ranks ReDial test movies better than popularity at 50; random weights do worse") {
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
