// The Recommender with its bundle stored f16, bf16 and int8 against the same weights stored f32
// (tools.convert --dtype; the tiny random bundle on the ReDial KG, 6,576 items): the parity
// dialogs of test_recommender.cpp and the first ReDial dialogs, ranked by each, top 50.
//
// 16-bit storage rounds every weight (GPT-2, RoBERTa, the prompts); int8 quantizes GPT-2's
// matrices only. Random weights pack the scores densely: the top 50 of a case span 0.1 to 0.2,
// so most neighbours lie closer than the 1e-3 to 3e-2 that rounding the weights moves a score,
// and no dtype keeps the exact order of f32's top 50 (measured: f16 3 of 30 cases, bf16 none).
// So the rounding is checked as what it is: the same top 10, nearly the same top 50, and items
// ranked the other way only where their f32 scores were that close. That the engine adds nothing
// to the rounding is checked exactly: an f16 bundle ranks as its own weights widened to f32.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/engine.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/recommender.hpp"
#include "recommender_fixture.hpp"

using namespace ecr;
using namespace ecr::test;

namespace {

constexpr std::size_t kTop = 50;
constexpr std::size_t kParityCases = 6;
constexpr std::size_t kRedialDialogs = 24;

struct RankCase {
  Dialog dialog;
  enum View { full, local, no_emotions } view;  // the Recommender of rank() that ranks it
};

// The parity cases of test_recommender.cpp (with emotions turned off where it leaves the
// classifier out: the same inputs, and one Engine serves every view), then whole ReDial dialogs
// with their annotations.
std::vector<RankCase> rank_cases(const KnowledgeGraph& kg) {
  std::vector<RankCase> cases = {{labelled_dialog(kg), RankCase::full},  {labelled_dialog(kg), RankCase::local},
                                 {plain_dialog(), RankCase::full},       {plain_dialog(), RankCase::no_emotions},
                                 {no_entity_dialog(), RankCase::full},   {long_dialog(kg), RankCase::full}};
  std::ifstream in(shared_data() / "redial" / "dialogs.jsonl");
  std::string line;
  for (std::size_t i = 0; i < kRedialDialogs && std::getline(in, line); ++i)
    cases.push_back({Dialog::from_redial(nlohmann::json::parse(line), &kg), RankCase::full});
  REQUIRE(cases.size() == kParityCases + kRedialDialogs);
  return cases;
}

struct Ranked {
  std::vector<std::int64_t> top;  // the first kTop items, best first
  std::vector<float> scores;      // every entity
};

// Every case ranked by `bundle`.
std::vector<Ranked> rank(const Bundle& bundle) {
  const Engine engine = Engine::load(bundle);
  REQUIRE(engine.graph().items().size() >= kTop);
  RecommenderOptions local, no_emotions;
  local.global_entities = false;
  no_emotions.emotions = false;
  const Recommender views[] = {Recommender::load(engine), Recommender::load(engine, local),
                               Recommender::load(engine, no_emotions)};
  RecommendRequest request;
  request.top_k = kTop;
  request.all_scores = true;
  request.exclude_mentioned = false;  // the model's own ranking
  request.feedback_strength = 0;
  std::vector<Ranked> out;
  for (const RankCase& c : rank_cases(engine.graph())) {
    const Recommendation r = views[c.view].recommend(c.dialog, request);
    Ranked ranked{{}, *r.all_scores};
    for (const RecommendedItem& item : r.items) ranked.top.push_back(item.id);
    out.push_back(std::move(ranked));
  }
  return out;
}

std::vector<Ranked> rank(const std::string& dtype) { return rank(Bundle::open(recommender_fixture(dtype).bundle)); }

// The bundle with every f16 / bf16 tensor widened to f32: the same values, computed in f32.
Bundle widened(const Bundle& bundle) {
  nlohmann::json metadata = bundle.metadata();
  for (auto& [name, component] : metadata["components"].items()) component.erase("dtype");
  BundleWriter writer(metadata);
  for (const TensorInfo& info : bundle.tensors()) {
    const Tensor t = bundle.tensor(info.name);
    writer.add(info.name, info.dtype == DType::f16 || info.dtype == DType::bf16 ? t.to_f32() : t);
  }
  return Bundle::from_bytes(writer.bytes(), "widened.ecr");
}

std::size_t overlap(std::span<const std::int64_t> a, std::span<const std::int64_t> b) {
  return static_cast<std::size_t>(
      std::count_if(a.begin(), a.end(), [&](std::int64_t id) { return std::find(b.begin(), b.end(), id) != b.end(); }));
}

struct Agreement {
  std::size_t cases = 0, same_order = 0, same_set = 0;
  double recall10 = 0, recall50 = 0;  // means over the cases, against the reference's top 10 / top 50
  float max_score_error = 0;
  // The largest reference score gap between two items (either top 50) that are ranked the other
  // way: how near a tie has to be for the ranking to swap it.
  float widest_swap = 0;
};

Agreement compare(const std::vector<Ranked>& reference, const std::vector<Ranked>& ranked) {
  REQUIRE(ranked.size() == reference.size());
  Agreement a;
  a.cases = ranked.size();
  for (std::size_t i = 0; i < ranked.size(); ++i) {
    const auto& want = reference[i].top;
    const auto& got = ranked[i].top;
    REQUIRE(want.size() == kTop);
    REQUIRE(got.size() == kTop);
    a.same_order += got == want;
    a.same_set += overlap(got, want) == kTop;
    a.recall10 += static_cast<double>(overlap(std::span(got).first(10), std::span(want).first(10))) / 10;
    a.recall50 += static_cast<double>(overlap(got, want)) / kTop;
    const auto& s = reference[i].scores;
    const auto& t = ranked[i].scores;
    REQUIRE(s.size() == t.size());
    for (std::size_t e = 0; e < s.size(); ++e) a.max_score_error = std::max(a.max_score_error, std::abs(s[e] - t[e]));
    std::vector<std::int64_t> either = want;
    for (std::int64_t id : got)
      if (std::find(want.begin(), want.end(), id) == want.end()) either.push_back(id);
    for (std::int64_t x : either)
      for (std::int64_t y : either) {
        const auto ux = static_cast<std::size_t>(x), uy = static_cast<std::size_t>(y);
        if (s[ux] > s[uy] && t[ux] < t[uy]) a.widest_swap = std::max(a.widest_swap, s[ux] - s[uy]);
      }
  }
  a.recall10 /= static_cast<double>(a.cases);
  a.recall50 /= static_cast<double>(a.cases);
  return a;
}

void report(const std::string& what, const Agreement& a) {
  MESSAGE(fmt::format("{} (kernels {}), {} cases ({} parity + {} ReDial dialogs): top-{} in the same order {}/{}, as "
                      "a set {}/{}; top-10 recall {:.4f}, top-50 recall {:.4f}; max |score error| {:.3g}; widest "
                      "swapped f32 gap {:.3g}",
                      what, nn::linear_kernel_level(), a.cases, kParityCases, kRedialDialogs, kTop, a.same_order, a.cases, a.same_set, a.cases,
                      a.recall10, a.recall50, a.max_score_error, a.widest_swap));
}

// The bundle stored as `dtype` holds its matrices so (nothing below compares f32 with f32).
void check_stored(const std::string& dtype) {
  const Bundle bundle = Bundle::open(recommender_fixture(dtype).bundle);
  const DType matrices = dtype == "int8" ? DType::i8 : *dtype_from_name(dtype);
  CHECK(bundle.info("backbone/transformer.h.0.mlp.c_fc.weight").dtype == matrices);
  CHECK(bundle.info("emotion_classifier/transformer.h.0.mlp.c_fc.weight").dtype == matrices);
  CHECK(bundle.info("text_encoder/encoder.layer.0.attention.self.query.weight").dtype ==
        (dtype == "int8" ? DType::f32 : matrices));
}

struct Bounds {
  double recall10, recall50;
  float score_error;  // items whose f32 scores differ by more than twice this keep their order
};

// Bounds from the measured agreement (reported) with headroom.
void dtype_case(const std::string& dtype, const Bounds& bounds) {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  check_stored(dtype);
  const Agreement a = compare(rank("f32"), rank(dtype));
  report(fmt::format("Recommender, bundle stored {} vs f32", dtype), a);
  CHECK(a.max_score_error > 0.0f);  // the weights did change
  CHECK(a.max_score_error < bounds.score_error);
  CHECK(a.widest_swap < 2 * bounds.score_error);
  CHECK(a.recall10 >= bounds.recall10);
  CHECK(a.recall50 >= bounds.recall50);
}

}  // namespace

TEST_CASE("dtype recommender: f16 storage keeps f32's top 10 and its top 50 but for near ties") {
  dtype_case("f16", {.recall10 = 0.98, .recall50 = 0.99, .score_error = 0.005f});
}

TEST_CASE("dtype recommender: bf16 storage keeps f32's top 10 and its top 50 but for near ties") {
  dtype_case("bf16", {.recall10 = 0.95, .recall50 = 0.97, .score_error = 0.04f});
}

TEST_CASE("dtype recommender: int8 GPT-2 keeps a top-10 recall of 0.9 against f32") {
  dtype_case("int8", {.recall10 = 0.9, .recall50 = 0.95, .score_error = 0.07f});
}

// The f16 bundle against its own weights widened to f32: the backbone, the classifier and the
// text encoder read their inputs as prefill, which widens f16 exactly and runs the f32 GEMM, and
// the prompt layers do too, or, on one row, run the dot kernels, which sum f16 and f32 weights in
// the same order: the same scores, bit for bit. (Not bf16: where the
// CPU has a bf16 dot product, nn::linear rounds the activations of a bf16 prefill to bf16 too.)
TEST_CASE("dtype recommender: an f16 bundle ranks exactly as its weights widened to f32") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle stored = Bundle::open(recommender_fixture("f16").bundle);
  const Agreement a = compare(rank(widened(stored)), rank(stored));
  report("Recommender, bundle stored f16 vs the same weights widened to f32", a);
  CHECK(a.same_order == a.cases);
  CHECK(a.max_score_error == 0.0f);
}
