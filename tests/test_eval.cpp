// `ecr eval` over the shared ReDial dialogs with the tiny random bundle: the samples it builds
// (counted here independently from the raw records), the metrics' invariants, the JSON report
// and the errors. Random weights put every metric near chance; that is what they should show.
#include <algorithm>
#include <fstream>
#include <set>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/kg/knowledge_graph.hpp"
#include "recommender_fixture.hpp"

using nlohmann::json;
namespace fs = std::filesystem;

// The whole file takes about 10x longer under AddressSanitizer; that build runs a prefix of it.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

namespace {

// Samples of the first `limit` dialogs, from the raw records: one per distinct KG item named in
// the `item` list of a recommender turn (consecutive messages of one sender form a turn) that
// has a turn before it.
std::size_t expected_samples(const fs::path& file, const ecr::KnowledgeGraph& kg, std::size_t limit) {
  std::ifstream in(file);
  std::size_t samples = 0, dialogs = 0;
  for (std::string line; dialogs < limit && std::getline(in, line); ++dialogs) {
    const json record = json::parse(line);
    const auto& messages = record["messages"];
    std::size_t turn = 0;
    for (std::size_t i = 0; i < messages.size();) {
      const auto sender = messages[i]["senderWorkerId"];
      std::set<std::int64_t> items;
      for (; i < messages.size() && messages[i]["senderWorkerId"] == sender; ++i)
        for (const auto& name : messages[i]["item"])
          if (auto id = kg.entity_id(name.get<std::string>()); id && kg.is_item(*id)) items.insert(*id);
      if (turn++ > 0 && sender != record["initiatorWorkerId"]) samples += items.size();
    }
  }
  return samples;
}

json run_eval(const ecr::test::RecommenderFixture& fx, const fs::path& out, const std::string& extra) {
  std::string log;
  const int rc = ecr::test::run_command(fmt::format("{} eval --bundle {} --dialogs {} --json {} {}",
                                                    ecr::test::cli_path().string(), fx.bundle.string(),
                                                    (fx.kg_dir / "dialogs.jsonl").string(), out.string(), extra),
                                        &log);
  REQUIRE_MESSAGE(rc == 0, log);
  std::string table;  // the report without the progress lines
  for (std::size_t at = 0, end; at < log.size(); at = end + 1) {
    end = std::min(log.find('\n', at), log.size());
    if (log.compare(at, 5, "eval:") != 0) table += log.substr(at, end - at + 1);
  }
  MESSAGE(table);
  std::ifstream in(out);
  return json::parse(in);
}

void check_report(const json& j, const ecr::KnowledgeGraph& kg, const fs::path& dialogs, std::size_t limit) {
  CHECK(j["dialogs"] == limit);
  CHECK(j["samples"] == expected_samples(dialogs, kg, limit));
  CHECK(j["positives"].get<std::size_t>() + j["negatives"].get<std::size_t>() +
            j["unknown_feedback"].get<std::size_t>() ==
        j["samples"].get<std::size_t>());
  CHECK(j["positives"] > j["negatives"]);  // ReDial's seekers mostly liked what they were offered
  const auto& m = j["metrics"];
  for (const char* metric : {"recall", "mrr", "ndcg", "rt"}) {
    CAPTURE(metric);
    double previous = 0;
    for (int k : {1, 10, 50}) {
      const double v = m[fmt::format("{}@{}", metric, k)];
      CHECK(v >= previous);  // @K only grows with K
      CHECK(v <= 1.0);
      previous = v;
    }
  }
  CHECK(m["mrr@50"] <= m["recall@50"]);
  CHECK(m["ndcg@50"] <= m["recall@50"]);
  CHECK(m["recall@1"] == m["mrr@1"]);
  // Random weights: far from a trained model's recall@50 (~0.4), near chance (50 / 6576).
  CHECK(m["recall@50"] < 0.1);
  CHECK(m["auc"] >= 0.0);
  CHECK(m["auc"] <= 1.0);
}

}  // namespace

TEST_CASE("ecr eval reports ECR's metrics over ReDial dialogs (tiny bundle)") {
  ECR_REQUIRE_SHARED_DATA();
  const auto fx = ecr::test::recommender_fixture();
  const auto kg = ecr::KnowledgeGraph::from_files(fx.kg_dir);
  const fs::path dir = ecr::test::temp_dir("eval_limit");
  const json j = run_eval(fx, dir / "report.json", "--limit 60 --batch-size 16");
  check_report(j, kg, fx.kg_dir / "dialogs.jsonl", 60);
  CHECK(j["batch_size"] == 16);
}

TEST_CASE("ecr eval over all 800 shared dialogs (Release builds only)") {
  ECR_REQUIRE_SHARED_DATA();
  if (kSanitized) {
    MESSAGE("skipped under AddressSanitizer: the limited run above covers the same code");
    return;
  }
  const auto fx = ecr::test::recommender_fixture();
  const auto kg = ecr::KnowledgeGraph::from_files(fx.kg_dir);
  const fs::path dir = ecr::test::temp_dir("eval_full");
  const json j = run_eval(fx, dir / "report.json", "");
  check_report(j, kg, fx.kg_dir / "dialogs.jsonl", 800);
  CHECK(j["batch_size"] == 32);
}

TEST_CASE("ecr eval: bad arguments and files are errors") {
  ECR_REQUIRE_SHARED_DATA();
  const auto fx = ecr::test::recommender_fixture();
  const std::string cli = ecr::test::cli_path().string();
  const fs::path dir = ecr::test::temp_dir("eval_errors");
  std::string out;
  CHECK(ecr::test::run_command(fmt::format("{} eval --bundle {} --dialogs {}", cli, fx.bundle.string(),
                                           (dir / "absent.jsonl").string()),
                               &out) == 1);
  CHECK(out.find("absent.jsonl") != std::string::npos);
  std::ofstream(dir / "broken.jsonl") << "{\"messages\": [\n";
  CHECK(ecr::test::run_command(fmt::format("{} eval --bundle {} --dialogs {}", cli, fx.bundle.string(),
                                           (dir / "broken.jsonl").string()),
                               &out) == 1);
  CHECK(out.find("broken.jsonl:1") != std::string::npos);
  CHECK(ecr::test::run_command(fmt::format("{} eval --bundle {} --dialogs {} --batch-size 0", cli, fx.bundle.string(),
                                           (fx.kg_dir / "dialogs.jsonl").string()),
                               &out) == 1);
}
