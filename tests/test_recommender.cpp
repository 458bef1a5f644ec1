// The Recommender end to end on a tiny random bundle over the real ReDial KG: scores of every
// entity against an independent torch composition (tools/reference/recommender.py), the emotion
// classifier against the torch GPT-2 reference, batches and threads against single calls, the
// CLI, and the input errors a host can provoke.
#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/io/bundle.hpp"
#include "ecr/kg/cooccurrence.hpp"
#include "ecr/kg/knowledge_graph.hpp"
#include "ecr/models/entity_encoder.hpp"
#include "ecr/models/prompt_encoder.hpp"
#include "ecr/recommender.hpp"
#include "ecr/text/tokenizer.hpp"
#include "recommender_fixture.hpp"

using namespace ecr;
using nlohmann::json;
using ecr::test::emotions;
using ecr::test::entity;
using ecr::test::labelled_dialog;
using ecr::test::long_dialog;
using ecr::test::no_entity_dialog;
using ecr::test::plain_dialog;
using ecr::test::turn;
namespace fs = std::filesystem;

namespace {

RecommenderOptions without_classifier() {
  RecommenderOptions o;
  o.components.emotion_classifier = "";
  return o;
}

// Items ranked by `scores` (higher first, then lower id), the first k.
std::vector<std::int64_t> top_items(const std::vector<float>& scores, std::span<const std::int32_t> items, std::size_t k) {
  std::vector<std::int64_t> ids(items.begin(), items.end());
  std::sort(ids.begin(), ids.end(), [&](std::int64_t a, std::int64_t b) {
    const float sa = scores[static_cast<std::size_t>(a)], sb = scores[static_cast<std::size_t>(b)];
    return sa != sb ? sa > sb : a < b;
  });
  ids.resize(std::min(k, ids.size()));
  return ids;
}

std::vector<std::int64_t> ids_of(const std::vector<RecommendedItem>& items) {
  std::vector<std::int64_t> ids;
  for (const auto& i : items) ids.push_back(i.id);
  return ids;
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  float worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

json reference_case(const std::string& name, const Recommendation& r, bool global) {
  json entities = json::array(), ids = json::array(), probs = json::array();
  for (const auto& e : r.prompt_entities) {
    entities.push_back(e.id);
    ids.push_back(e.emotions.ids);
    probs.push_back(e.emotions.probs);
  }
  json c = {{"name", name}, {"context_ids", r.context_ids}, {"prompt_ids", r.prompt_ids}, {"entities", entities},
            {"global", global}};
  c["emotion_ids"] = r.emotion_fusion ? ids : json(nullptr);
  c["emotion_probs"] = r.emotion_fusion ? probs : json(nullptr);
  return c;
}

}  // namespace

TEST_CASE("Recommender scores every entity as the torch composition does (tiny bundle, ReDial KG)") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto fx = ecr::test::recommender_fixture();
  const Recommender full = Recommender::load(fx.bundle);
  RecommenderOptions local_only = without_classifier();
  local_only.global_entities = false;
  const Recommender no_global = Recommender::load(fx.bundle, local_only);
  const Recommender no_classifier = Recommender::load(fx.bundle, without_classifier());
  const KnowledgeGraph& kg = full.graph();
  REQUIRE(kg.num_entities() == 24631);

  RecommendRequest request;
  request.top_k = 50;
  request.all_scores = true;
  request.exclude_mentioned = false;  // the model's own ranking, as the reference ranks
  request.feedback_strength = 0;
  struct Case {
    std::string name;
    Recommendation r;
    bool global;
  };
  std::vector<Case> cases;
  cases.push_back({"entities_emotions_global", full.recommend(labelled_dialog(kg), request), true});
  cases.push_back({"entities_emotions_local", no_global.recommend(labelled_dialog(kg), request), false});
  cases.push_back({"linked_classifier_emotions", full.recommend(plain_dialog(), request), true});
  cases.push_back({"linked_no_emotions", no_classifier.recommend(plain_dialog(), request), true});
  cases.push_back({"no_entities", full.recommend(no_entity_dialog(), request), true});
  cases.push_back({"long_context", full.recommend(long_dialog(kg), request), true});

  // What each case exercises.
  CHECK(cases[0].r.emotion_fusion);
  CHECK(cases[0].r.prompt_entities.size() == 4);
  CHECK(cases[0].r.prompt_entities[2].emotions.ids[0] == *emotion_id("negative"));  // system entity: next user turn
  CHECK(cases[2].r.turns[0].emotions_from_classifier);
  CHECK(cases[2].r.prompt_entities.size() >= 2);
  CHECK_FALSE(cases[3].r.emotion_fusion);
  CHECK(cases[3].r.prompt_entities.size() == cases[2].r.prompt_entities.size());
  // The global entities and the emotions change the scores (so the parity below covers them).
  CHECK(max_diff(*cases[0].r.all_scores, *cases[1].r.all_scores) > 1e-3f);
  CHECK(max_diff(*cases[2].r.all_scores, *cases[3].r.all_scores) > 1e-3f);
  CHECK(cases[4].r.prompt_entities.empty());
  CHECK(cases[4].r.emotion_fusion);
  // docs/math.md section 2: the newest 200 GPT-2 tokens; <s> and the newest 199 RoBERTa tokens.
  const Recommendation& long_r = cases[5].r;
  CHECK(long_r.context_ids.size() == 200);
  CHECK(long_r.prompt_ids.size() == 200);
  CHECK(long_r.prompt_ids.front() == 0);
  const auto gpt2 = make_tokenizer(full.bundle().metadata()["tokenizers"]["gpt2"]);
  const auto all_ids = gpt2->encode(context_text(long_dialog(kg), "<|endoftext|>"));
  CHECK(std::equal(long_r.context_ids.begin(), long_r.context_ids.end(), all_ids.end() - 200));
  CHECK(long_r.prompt_entities.size() == 8);  // 40 turns, an item every 5th

  const fs::path dir = ecr::test::temp_dir("recommender_parity");
  json spec = {{"cases", json::array()}};
  for (const auto& c : cases) spec["cases"].push_back(reference_case(c.name, c.r, c.global));
  std::ofstream(dir / "cases.json") << spec.dump();
  REQUIRE(ecr::test::run_python(fmt::format("reference.recommender --checkpoints {} --kg-dir {} --bundle {} --cases {} "
                                            "--out-dir {}",
                                            fx.checkpoints.string(), fx.kg_dir.string(), fx.bundle.string(),
                                            (dir / "cases.json").string(), (dir / "scores").string()),
                                dir / "reference.log") == 0);
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const Tensor expected = ecr::test::read_npy(dir / "scores" / (c.name + ".npy"));
    REQUIRE(expected.numel() == kg.num_entities());
    const std::vector<float> want(expected.data<float>(), expected.data<float>() + expected.numel());
    const float err = max_diff(*c.r.all_scores, want);
    MESSAGE(c.name << ": max abs error over " << want.size() << " entity scores " << err);
    CHECK(err <= 1e-4f);
    CHECK(ids_of(c.r.items) == top_items(want, kg.items(), 50));
    for (const auto& item : c.r.items) CHECK(item.score == (*c.r.all_scores)[static_cast<std::size_t>(item.id)]);
  }
}

TEST_CASE("Recommender: the emotion classifier's probabilities match the torch GPT-2 classifier") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto fx = ecr::test::recommender_fixture();
  const Recommender recommender = Recommender::load(fx.bundle);
  Dialog d = plain_dialog();
  d.turns[2].emotions = emotions({{"grateful", 0.9f}});  // a host label wins over the classifier
  const Recommendation r = recommender.recommend(d);
  REQUIRE(r.turns.size() == 3);
  CHECK_FALSE(r.turns[1].emotions);  // system turns are not classified
  CHECK_FALSE(r.turns[2].emotions_from_classifier);
  CHECK(r.turns[2].selected.ids[0] == *emotion_id("grateful"));
  CHECK(r.user_emotions == r.turns[2].selected);
  REQUIRE(r.turns[0].emotions_from_classifier);

  const auto& meta = recommender.bundle().metadata();
  const auto tokenizer =
      make_tokenizer(meta["tokenizers"][meta["components"]["emotion_classifier"]["tokenizer"].get<std::string>()]);
  const auto ids = tokenizer->encode(d.turns[0].text + "<|endoftext|>");
  const fs::path dir = ecr::test::temp_dir("recommender_classifier");
  REQUIRE(ecr::test::run_python(fmt::format("reference gpt2 --checkpoint {} --ids {} --out {}",
                                            (fx.checkpoints / "emotion_classifier").string(), ecr::test::join_ids(ids),
                                            (dir / "scores.npy").string())) == 0);
  const Tensor scores = ecr::test::read_npy(dir / "scores.npy");
  REQUIRE(scores.numel() == 9);
  const float* s = scores.data<float>();
  const float top = *std::max_element(s, s + 9);
  double sum = 0;
  for (int l = 0; l < 9; ++l) sum += std::exp(static_cast<double>(s[l] - top));
  float worst = 0;
  for (int l = 0; l < 9; ++l)
    worst = std::max(worst, std::abs((*r.turns[0].emotions)[static_cast<std::size_t>(l)] -
                                     static_cast<float>(std::exp(static_cast<double>(s[l] - top)) / sum)));
  MESSAGE("classifier probabilities: max abs error " << worst);
  CHECK(worst < 1e-5f);
  CHECK(r.turns[0].selected == select_emotions(r.turns[0].emotions));
}

TEST_CASE("Recommender: a batch, and four threads at once, give the single-call results") {
  ECR_REQUIRE_SHARED_DATA();
  const auto fx = ecr::test::recommender_fixture();
  const Recommender recommender = Recommender::load(fx.bundle);
  const KnowledgeGraph& kg = recommender.graph();
  const std::vector<Dialog> dialogs = {labelled_dialog(kg), plain_dialog(), no_entity_dialog(), long_dialog(kg)};
  RecommendRequest request;
  request.top_k = 20;
  request.all_scores = true;

  std::vector<Recommendation> single;
  for (const auto& d : dialogs) single.push_back(recommender.recommend(d, request));
  const auto batch = recommender.recommend_batch(dialogs, request);
  REQUIRE(batch.size() == dialogs.size());
  for (std::size_t b = 0; b < dialogs.size(); ++b) {
    CAPTURE(b);
    CHECK(max_diff(*batch[b].all_scores, *single[b].all_scores) < 1e-5f);
    CHECK(ids_of(batch[b].items) == ids_of(single[b].items));
    CHECK(batch[b].context_ids == single[b].context_ids);
    CHECK(batch[b].prompt_ids == single[b].prompt_ids);
    CHECK(batch[b].turns.size() == single[b].turns.size());
  }
  CHECK(recommender.recommend_batch({}, request).empty());

  std::vector<std::vector<Recommendation>> seen(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < seen.size(); ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 2; ++rep)
        for (const auto& d : dialogs) seen[t].push_back(recommender.recommend(d, request));
    });
  for (auto& t : threads) t.join();
  for (const auto& results : seen) {
    REQUIRE(results.size() == 2 * dialogs.size());
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& want = single[i % dialogs.size()];
      CHECK(*results[i].all_scores == *want.all_scores);  // the same bits: chunking never depends on timing
      CHECK(ids_of(results[i].items) == ids_of(want.items));
    }
  }
}

TEST_CASE("Recommender: rankings, context entities and options") {
  ECR_REQUIRE_SHARED_DATA();
  const auto fx = ecr::test::recommender_fixture();
  const Recommender recommender = Recommender::load(fx.bundle);
  const KnowledgeGraph& kg = recommender.graph();
  RecommendRequest request;
  request.top_k = 7;
  request.all_scores = true;
  request.exclude_mentioned = false;
  request.feedback_strength = 0;
  const Dialog d = labelled_dialog(kg);
  const Recommendation r = recommender.recommend(d, request);
  REQUIRE(r.items.size() == 7);
  const auto& scores = *r.all_scores;
  CHECK(ids_of(r.items) == top_items(scores, kg.items(), 7));
  for (const auto& item : r.items) {
    CHECK(kg.is_item(item.id));
    CHECK(item.name == kg.entity_name(item.id));
  }
  // Context entities: each once, by z . E[e].
  REQUIRE(r.context_entities.size() == 4);
  for (std::size_t i = 0; i < r.context_entities.size(); ++i) {
    CHECK(r.context_entities[i].score == scores[static_cast<std::size_t>(r.context_entities[i].id)]);
    if (i) CHECK(r.context_entities[i - 1].score >= r.context_entities[i].score);
  }
  // Host ids are reported as such; the last user turn's labels are the user's emotions.
  CHECK(r.turns[0].entities.size() == 2);
  CHECK(r.turns[0].entities[0].source == LinkedEntity::Source::host);
  CHECK(r.user_emotions.ids[0] == *emotion_id("negative"));
  CHECK(r.user_emotions.ids[1] == *emotion_id("curious"));
  CHECK(r.user_emotions.ids[2] == kPadEmotion);  // neutral 0.05 is under the threshold

  // exclude_mentioned, the default: the mentioned movies leave the ranking, nothing else changes.
  // Left to the options, a request excludes; a request or the options may say otherwise.
  RecommenderOptions keep;
  keep.exclude_mentioned = false;
  const Recommender keeping = Recommender::load(fx.bundle, keep);
  request.top_k = kg.items().size() + 10;  // more than there are: all items
  const Recommendation all = recommender.recommend(d, request);
  RecommendRequest by_options = request;
  by_options.exclude_mentioned.reset();
  const Recommendation rest = recommender.recommend(d, by_options);
  CHECK(keeping.recommend(d, by_options).items.size() == kg.items().size());
  CHECK(all.items.size() == kg.items().size());
  CHECK(rest.items.size() == kg.items().size() - 2);  // The Shining and What Lies Beneath
  for (const auto& item : rest.items) {
    CHECK(item.id != entity(kg, "The Shining (1980)"));
    CHECK(item.id != entity(kg, "What Lies Beneath (2000)"));
  }
  CHECK(*rest.all_scores == *all.all_scores);

  // Linking off: a turn without ids contributes no entities.
  RecommenderOptions ids_only;
  ids_only.link_text = false;
  const Recommendation unlinked = Recommender::load(fx.bundle, ids_only).recommend(plain_dialog());
  CHECK(unlinked.prompt_entities.empty());
  // Consecutive turns of one role are one turn.
  Dialog split;
  split.turns = {turn(Role::user, "I like"), turn(Role::user, "The Shining (1980)"), turn(Role::system, "Ok.")};
  const Recommendation merged = recommender.recommend(split);
  REQUIRE(merged.turns.size() == 2);
  CHECK(merged.turns[0].text == "I like The Shining (1980)");
}

TEST_CASE("Recommender: bad requests and bundles are typed errors naming the problem") {
  ECR_REQUIRE_SHARED_DATA();
  const auto fx = ecr::test::recommender_fixture();
  const Recommender recommender = Recommender::load(fx.bundle);
  const KnowledgeGraph& kg = recommender.graph();

  CHECK_THROWS_WITH_AS(recommender.recommend(Dialog{}), doctest::Contains("no turns"), InputError);
  Dialog unknown = labelled_dialog(kg);
  unknown.turns[1].entities.push_back(kg.num_entities() + 5);
  CHECK_THROWS_WITH_AS(recommender.recommend(unknown), doctest::Contains("turn 1"), InputError);
  CHECK_THROWS_WITH_AS(recommender.recommend(unknown), doctest::Contains(std::to_string(kg.num_entities() + 5).c_str()),
                       InputError);
  Dialog padding = labelled_dialog(kg);
  padding.turns[0].entities = {kg.pad_entity()};
  CHECK_THROWS_AS(recommender.recommend(padding), InputError);
  Dialog silent;
  silent.turns = {turn(Role::user, "")};
  CHECK_THROWS_WITH_AS(recommender.recommend(silent), doctest::Contains("text"), InputError);
  RecommendRequest zero;
  zero.top_k = 0;
  CHECK_THROWS_AS(recommender.recommend(labelled_dialog(kg), zero), InputError);
  Dialog bad_utf8;
  bad_utf8.turns = {turn(Role::user, std::string("caf\xC3", 4))};
  CHECK_THROWS_AS(recommender.recommend(bad_utf8), InputError);

  for (auto member : {&ComponentNames::backbone, &ComponentNames::text_encoder, &ComponentNames::rec_prompt}) {
    RecommenderOptions o;
    o.components.*member = "missing_part";
    CHECK_THROWS_WITH_AS(Recommender::load(fx.bundle, o), doctest::Contains("missing_part"), ConfigError);
  }
  RecommenderOptions conv;
  conv.components.rec_prompt = "conv_prompt";
  CHECK_THROWS_WITH_AS(Recommender::load(fx.bundle, conv), doctest::Contains("conv_prompt"), ConfigError);
  RecommenderOptions wrong_classifier;
  wrong_classifier.components.emotion_classifier = "generator";  // a GPT-2 without a score head
  CHECK_THROWS_WITH_AS(Recommender::load(fx.bundle, wrong_classifier), doctest::Contains("generator"), ConfigError);
  RecommenderOptions too_long;
  too_long.context_tokens = 100000;
  CHECK_THROWS_AS(Recommender::load(fx.bundle, too_long), ConfigError);
  CHECK_THROWS_AS(Recommender::load(fx.bundle.parent_path() / "absent.ecr"), IoError);
}

TEST_CASE("ecr recommend prints the ranking, and all of it as JSON") {
  ECR_REQUIRE_SHARED_DATA();
  const auto fx = ecr::test::recommender_fixture();
  const fs::path dir = ecr::test::temp_dir("recommend_cli");
  std::ofstream(dir / "dialog.json") << plain_dialog().to_json().dump();
  const std::string cli = ecr::test::cli_path().string();

  std::string out;
  REQUIRE(ecr::test::run_command(fmt::format("{} recommend --bundle {} --dialog {} --top-k 3 --json --all-scores", cli,
                                             fx.bundle.string(), (dir / "dialog.json").string()),
                                 &out) == 0);
  const json j = json::parse(out);
  CHECK(j["items"].size() == 3);
  CHECK(j["all_scores"].size() == 24631);
  CHECK(j["turns"].size() == 3);
  CHECK(j["turns"][0]["emotions_from"] == "classifier");
  CHECK(j["turns"][1]["entities"][0]["source"] == "mention");
  CHECK(j["context_ids"].size() > 10);
  CHECK(j["untrained"] == true);  // tools.make_random_bundle marks its bundles

  // The same through stdin, as a table; the library's own ranking comes out.
  REQUIRE(ecr::test::run_command(fmt::format("{} recommend --bundle {} --dialog - --top-k 3 < {}", cli,
                                             fx.bundle.string(), (dir / "dialog.json").string()),
                                 &out) == 0);
  CHECK(out.find(j["items"][0]["name"].get<std::string>()) != std::string::npos);
  CHECK(out.find("What Lies Beneath (2000)") != std::string::npos);

  std::ofstream(dir / "empty.json") << R"({"turns": []})";
  REQUIRE(ecr::test::run_command(fmt::format("{} recommend --bundle {} --dialog {}", cli, fx.bundle.string(),
                                             (dir / "empty.json").string()),
                                 &out) == 1);
  CHECK(out.find("no turns") != std::string::npos);
  REQUIRE(ecr::test::run_command(fmt::format("{} recommend --bundle {} --dialog {} --top-k 0", cli, fx.bundle.string(),
                                             (dir / "dialog.json").string()),
                                 &out) == 1);
}

TEST_CASE("static tables stored by the converter equal the ones computed at load, and rank alike") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto fx = test::recommender_fixture();
  // The fixture's weights again (same seed), with tools.convert --static-tables.
  const Bundle computed_bundle = Bundle::open(fx.bundle);
  const Bundle stored_bundle = Bundle::open(test::static_tables_fixture());
  for (const char* table : {"entity_table", "emotion_table", "global_entity_table", "prefix_rows"})
    CHECK_MESSAGE(stored_bundle.contains(std::string("rec_prompt/static/") + table), table);
  CHECK(stored_bundle.contains("conv_prompt/static/entity_table"));
  CHECK_FALSE(computed_bundle.contains("rec_prompt/static/entity_table"));

  // Stored (torch, at convert time) = computed (the engine, at load), table by table.
  const KnowledgeGraph kg = KnowledgeGraph::load(computed_bundle);
  const RelationCsr edges = RelationCsr::from_graph(kg);
  const CooccurrenceMatrix cooccurrence = CooccurrenceMatrix::load(computed_bundle, kg.num_entities());
  const PromptEncoder computed = PromptEncoder::load(computed_bundle, "rec_prompt", edges, &cooccurrence);
  const PromptEncoder stored = PromptEncoder::load(stored_bundle, "rec_prompt", edges, &cooccurrence);
  CHECK(test::max_abs_diff(stored.entity_table(), computed.entity_table()) < 1e-4f);
  CHECK(test::max_abs_diff(stored.emotion_table(), computed.emotion_table()) < 1e-4f);
  CHECK(test::max_abs_diff(stored.global_entity_table(), computed.global_entity_table()) < 1e-4f);
  // The loader took the stored tables as they are.
  CHECK(test::max_abs_diff(stored_bundle.tensor("rec_prompt/static/entity_table"), stored.entity_table()) == 0.0f);
  CHECK(test::max_abs_diff(stored_bundle.tensor("rec_prompt/static/global_entity_table"),
                           stored.global_entity_table()) == 0.0f);

  // The same prefixes for a request, so the same ranking.
  RecPromptInput input;
  Tensor tokens = Tensor::empty(DType::f32, {5, stored.config().token_hidden_size});
  for (std::int64_t i = 0; i < tokens.numel(); ++i) tokens.data<float>()[i] = 0.01f * static_cast<float>(i % 37) - 0.2f;
  input.token_states = tokens;
  const std::vector<std::int32_t> ids = {static_cast<std::int32_t>(entity(kg, "The Shining (1980)")),
                                         static_cast<std::int32_t>(entity(kg, "What Lies Beneath (2000)"))};
  input.entities = ids;
  const std::vector<std::int32_t> emotion_ids = {0, 1, 2, 0, 1, 2};
  const std::vector<float> probs = {0.7f, 0.2f, 0.1f, 0.5f, 0.3f, 0.2f};
  input.emotion_ids = emotion_ids;
  input.emotion_probs = probs;
  CHECK(test::max_abs_diff(stored.rec_prompt(input), computed.rec_prompt(input)) < 1e-4f);

  const Recommender a = Recommender::load(fx.bundle);
  const Recommender b = Recommender::load(test::static_tables_fixture());
  Dialog d;
  d.add_turn(turn(Role::user, "I love horror movies like The Shining (1980) and What Lies Beneath (2000)."));
  RecommendRequest request;
  request.top_k = 50;
  const Recommendation ra = a.recommend(d, request), rb = b.recommend(d, request);
  REQUIRE(ra.items.size() == rb.items.size());
  for (std::size_t i = 0; i < ra.items.size(); ++i) CHECK(ra.items[i].id == rb.items[i].id);
}
