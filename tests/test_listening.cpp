// What the recommender listens to (ecr/recommender.hpp, ecr/feedback.hpp), on the shipped model:
// movies the dialog named leave the ranking, feedback read from a turn (negation included) moves
// the neighbours of the movie it is about, the reasons name real KG links, the CLI's JSON carries
// both, and `ecr eval` reports the de-duplicated variant and the co-occurrence baseline.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/default_bundle.hpp"
#include "ecr/feedback.hpp"
#include "ecr/recommender.hpp"
#include "recommender_fixture.hpp"

using namespace ecr;
using ecr::test::entity;
using ecr::test::turn;
namespace fs = std::filesystem;

namespace {

const Recommender& shipped() {
  static const Recommender r = Recommender::load(default_bundle_path());
  return r;
}

// The feedback of a dialog whose turns carry the given entity ids.
std::vector<Feedback> feedback_of(const std::vector<Turn>& turns) {
  Dialog d;
  for (const Turn& t : turns) d.add_turn(t);
  return read_feedback(d, shipped().graph());
}

std::set<std::int64_t> ids_of(const std::vector<RecommendedItem>& items) {
  std::set<std::int64_t> ids;
  for (const auto& i : items) ids.insert(i.id);
  return ids;
}

// The dialog of the issue: two movies the user loved, one the system offered, which the user has
// seen and did not like.
Dialog sleepless_dialog() {
  Dialog d;
  d.add_turn(turn(Role::user, "I loved Notting Hill and Pretty Woman"));
  d.add_turn(turn(Role::system, "You might like Sleepless in Seattle (1993)"));
  d.add_turn(turn(Role::user, "I already saw that one and I did not like it. I feel sad today."));
  return d;
}

}  // namespace

TEST_CASE("feedback: liked, disliked, seen, negation, and turns that refer back") {
  const KnowledgeGraph& kg = shipped().graph();
  const std::int64_t titanic = entity(kg, "Titanic (1997)"), avatar = entity(kg, "Avatar (2009)");
  const std::int64_t sleepless = entity(kg, "Sleepless in Seattle (1993)");

  auto one = [&](const std::string& text) {
    const auto f = feedback_of({turn(Role::user, text, {titanic})});
    CAPTURE(text);
    REQUIRE(f.size() == 1);
    CHECK(f[0].id == titanic);
    CHECK(f[0].turn == 0);
    return f[0];
  };
  CHECK(one("I loved Titanic").polarity == Polarity::liked);
  CHECK(one("I loved Titanic").cue == "loved");
  CHECK(one("I really like Titanic (1997)").polarity == Polarity::liked);
  CHECK(one("I did not like Titanic").polarity == Polarity::disliked);
  CHECK(one("I did not like Titanic").cue == "not like");
  CHECK(one("I didn't really enjoy Titanic").polarity == Polarity::disliked);
  CHECK(one("Titanic? Not a fan.").polarity == Polarity::disliked);
  CHECK(one("Titanic was too scary for me").polarity == Polarity::disliked);
  CHECK(one("I have seen Titanic").polarity == Polarity::seen);
  CHECK(one("I saw Titanic and hated it").polarity == Polarity::disliked);
  // No feedback: a wish, a comparison, a mood.
  CHECK(feedback_of({turn(Role::user, "I would like something like Titanic", {titanic})}).empty());
  CHECK(feedback_of({turn(Role::user, "I feel sad today", {titanic})}).empty());
  CHECK(feedback_of({turn(Role::system, "I loved Titanic", {titanic})}).empty());  // the system's words

  // Clause by clause: each movie takes the cues of its own clause.
  const auto both = feedback_of({turn(Role::user, "I liked Titanic but Avatar was boring", {titanic, avatar})});
  REQUIRE(both.size() == 2);
  CHECK(both[0].polarity == Polarity::liked);
  CHECK(both[1].id == avatar);
  CHECK(both[1].polarity == Polarity::disliked);

  // "it": the movies of the system turn before; "I feel sad today" adds nothing.
  const auto back = feedback_of({turn(Role::user, "Hi", {}), turn(Role::system, "Try Sleepless in Seattle", {sleepless}),
                                 turn(Role::user, "I already saw that one and I did not like it. I feel sad today.")});
  REQUIRE(back.size() == 1);
  CHECK(back[0].id == sleepless);
  CHECK(back[0].polarity == Polarity::disliked);
  CHECK(back[0].cue == "not like");
  CHECK(back[0].turn == 2);
  CHECK(back[0].referred_back);
  CHECK(feedback_of({turn(Role::system, "Try Sleepless in Seattle", {sleepless}), turn(Role::user, "I feel sad today")})
            .empty());
}

TEST_CASE("dialog state: a movie either side named never returns in the top k, and does with exclusion off") {
  const Recommender& rec = shipped();
  const KnowledgeGraph& kg = rec.graph();
  const Dialog d = sleepless_dialog();
  RecommendRequest request;
  request.top_k = 50;
  const Recommendation r = rec.recommend(d, request);
  std::set<std::int64_t> named;
  for (const TurnAnalysis& t : r.turns)
    for (const LinkedEntity& e : t.entities) named.insert(e.id);
  CHECK(named.count(entity(kg, "Sleepless in Seattle (1993)")));
  CHECK(named.count(entity(kg, "Pretty Woman (1990)")));
  const auto top = ids_of(r.items);
  REQUIRE(top.size() == 50);
  for (std::int64_t id : named) CHECK_FALSE(top.count(id));

  // The paper's setting: the same model puts named movies back in its top 50.
  request.exclude_mentioned = false;
  request.feedback_strength = 0;
  const auto all = ids_of(rec.recommend(d, request).items);
  CHECK(std::any_of(named.begin(), named.end(), [&](std::int64_t id) { return all.count(id) > 0; }));

  // The feedback of the last turn is reported.
  REQUIRE(r.feedback.size() >= 1);
  CHECK(r.feedback.back().id == entity(kg, "Sleepless in Seattle (1993)"));
  CHECK(r.feedback.back().polarity == Polarity::disliked);
}

TEST_CASE("feedback: liking or disliking a movie flips the order of two of its neighbours") {
  const Recommender& rec = shipped();
  const KnowledgeGraph& kg = rec.graph();
  const std::int64_t f = entity(kg, "Titanic (1997)");
  // The item closest to Titanic in E, and one much further away.
  const auto table = rec.entity_table().to_f32();
  const auto e = table.matrix<float>();
  std::vector<std::pair<float, std::int64_t>> by_cos;
  for (std::int32_t id : kg.items())
    if (id != f) by_cos.emplace_back(e.row(id).dot(e.row(f)) / (e.row(id).norm() * e.row(f).norm()), id);
  std::sort(by_cos.rbegin(), by_cos.rend());
  const std::int64_t near = by_cos.front().second, far = by_cos[by_cos.size() / 4].second;
  REQUIRE(by_cos.front().first > by_cos[by_cos.size() / 4].first + 0.1f);

  RecommendRequest request;
  request.top_k = kg.items().size();
  request.feedback_strength = 50;  // strong enough to override the model's own order of the pair
  auto rank = [&](const std::string& text) {
    Dialog d;
    d.add_turn(turn(Role::user, text, {f}));
    const Recommendation r = rec.recommend(d, request);
    std::map<std::int64_t, std::size_t> at;
    for (std::size_t i = 0; i < r.items.size(); ++i) at[r.items[i].id] = i;
    REQUIRE(at.count(near));
    REQUIRE(at.count(far));
    return std::pair{at[near], at[far]};
  };
  const auto [liked_near, liked_far] = rank("I loved Titanic");
  const auto [disliked_near, disliked_far] = rank("I did not like Titanic");
  CHECK(liked_near < liked_far);
  CHECK(disliked_near > disliked_far);

  // Strength 0 reads the feedback but leaves the model's scores.
  request.feedback_strength = 0;
  Dialog d;
  d.add_turn(turn(Role::user, "I loved Titanic", {f}));
  request.all_scores = true;
  const Recommendation plain = rec.recommend(d, request);
  CHECK(plain.feedback.size() == 1);
  for (std::size_t i = 0; i < 20; ++i) {
    CHECK(plain.items[i].feedback == 0);
    CHECK(plain.items[i].score == (*plain.all_scores)[static_cast<std::size_t>(plain.items[i].id)]);
  }
  request.feedback_strength = -1;
  CHECK_THROWS_AS(rec.recommend(d, request), InputError);
}

TEST_CASE("explanations: each reason is a real KG link or co-occurrence with what the user liked") {
  const Recommender& rec = shipped();
  const KnowledgeGraph& kg = rec.graph();
  Dialog d;
  d.add_turn(turn(Role::user, "I loved Sleepless in Seattle (1993) and anything with Tom Hanks"));
  RecommendRequest request;
  request.top_k = 20;
  const Recommendation r = rec.recommend(d, request);
  const std::int64_t sleepless = entity(kg, "Sleepless in Seattle (1993)"), hanks = entity(kg, "Tom Hanks");
  std::size_t explained = 0, kg_links = 0;
  for (const RecommendedItem& item : r.items) {
    CAPTURE(item.name);
    CHECK(item.reasons.size() <= kMaxReasons);
    if (!item.reasons.empty()) {
      ++explained;
      // The strongest reason's source is named, in a sentence.
      const std::string why = explain(item);
      CHECK(why.find(item.reasons.front().source_name) != std::string::npos);
      CHECK(why.ends_with("."));
    }
    for (const Reason& reason : item.reasons) {
      CHECK((reason.source == sleepless || reason.source == hanks));
      if (reason.kind == Reason::Kind::cooccurrence) {
        CHECK(reason.weight > 0);
        continue;
      }
      const auto rel = kg.relation_id(reason.relation);
      REQUIRE(rel);
      const auto linked = kg.neighbours(item.id, *rel);
      CHECK(std::binary_search(linked.begin(), linked.end(), static_cast<std::int32_t>(reason.via)));
      if (reason.kind == Reason::Kind::shares) {
        const auto theirs = kg.neighbours(reason.source, *rel);
        CHECK(std::binary_search(theirs.begin(), theirs.end(), static_cast<std::int32_t>(reason.via)));
      } else {
        CHECK(reason.via == reason.source);
      }
      CHECK(reason.text().find(reason.via_name) != std::string::npos);
      ++kg_links;
    }
  }
  MESSAGE(explained << " of " << r.items.size() << " items explained, " << kg_links << " KG links");
  CHECK(explained > 0);
  CHECK(kg_links > 0);
  // Sleepless in Seattle is liked: a reason from it says so.
  for (const RecommendedItem& item : r.items)
    for (const Reason& reason : item.reasons)
      if (reason.source == sleepless) CHECK(reason.source_liked);

  // Built by hand: the sentence reads as a user would want it.
  RecommendedItem item{1, "You've Got Mail (1998)", 0, 0,
                       {{Reason::Kind::shares, sleepless, "Sleepless in Seattle (1993)", true, "star", hanks,
                         "Tom Hanks", 0}}};
  CHECK(explain(item) == "Like Sleepless in Seattle (1993), it stars Tom Hanks.");
  item.reasons.push_back({Reason::Kind::has, hanks, "Tom Hanks", false, "star", hanks, "Tom Hanks", 0});
  item.reasons.push_back({Reason::Kind::cooccurrence, sleepless, "Sleepless in Seattle (1993)", true, "", 0, "", 0.2f});
  // Tom Hanks is named once, and the co-occurrence joins the sentence of its source.
  CHECK(explain(item) ==
        "Like Sleepless in Seattle (1993), it stars Tom Hanks, and the two are often talked about together.");
  // Two genres shared with one movie read as one clause, not the movie named twice.
  const std::int64_t drama = entity(kg, "drama"), romance = entity(kg, "romance");
  item.reasons = {{Reason::Kind::shares, sleepless, "Sleepless in Seattle (1993)", true, "genre", romance, "romance", 0},
                  {Reason::Kind::shares, sleepless, "Sleepless in Seattle (1993)", true, "genre", drama, "drama", 0},
                  {Reason::Kind::has, hanks, "Tom Hanks", true, "star", hanks, "Tom Hanks", 0}};
  CHECK(explain(item) ==
        "Like Sleepless in Seattle (1993), it is a romance and drama film. It stars Tom Hanks, whom you like.");
  // Genres the user named read as one sentence, less those a movie's sentence already names.
  const std::int64_t comedy = entity(kg, "comedy");
  item.reasons = {{Reason::Kind::has, drama, "drama", true, "genre", drama, "drama", 0},
                  {Reason::Kind::has, comedy, "comedy", false, "genre", comedy, "comedy", 0},
                  {Reason::Kind::shares, sleepless, "Sleepless in Seattle (1993)", true, "genre", drama, "drama", 0}};
  CHECK(explain(item) == "It is a comedy film, the kind you mentioned. Like Sleepless in Seattle (1993), it is a drama film.");
}

TEST_CASE("ecr recommend --json carries the feedback read and each item's reasons") {
  const fs::path dir = test::temp_dir("listening_cli");
  std::ofstream(dir / "dialog.json") << sleepless_dialog().to_json().dump();
  std::string out;
  const int rc = test::run_command(
      fmt::format("{} recommend --json --dialog {}", test::cli_path().string(), (dir / "dialog.json").string()), &out);
  INFO(out);
  REQUIRE(rc == 0);
  const auto j = nlohmann::json::parse(out);
  REQUIRE(j["feedback"].is_array());
  REQUIRE(!j["feedback"].empty());
  const auto& last = j["feedback"].back();
  CHECK(last["name"] == "Sleepless in Seattle (1993)");
  CHECK(last["polarity"] == "disliked");
  CHECK(last["cue"] == "not like");
  CHECK(last["turn"] == 2);
  CHECK(last["referred_back"] == true);
  bool any_reason = false;
  for (const auto& item : j["items"]) {
    CHECK(item.contains("feedback"));
    REQUIRE(item["reasons"].is_array());
    CHECK(item["explanation"].is_string());
    CHECK(item["name"] != "Sleepless in Seattle (1993)");
    CHECK(item["name"] != "Pretty Woman (1990)");
    for (const auto& reason : item["reasons"]) {
      any_reason = true;
      CHECK(reason["text"].is_string());
      CHECK(reason["source_name"].is_string());
    }
  }
  CHECK(any_reason);
}

TEST_CASE("ecr eval: the de-duplicated variant and the co-occurrence baseline") {
  ECR_REQUIRE_SHARED_DATA();
  const fs::path dir = test::temp_dir("listening_eval");
  const fs::path data = test::shared_data() / "redial";
  auto run = [&](const std::string& extra, const std::string& name) {
    std::string log;
    const int rc = test::run_command(fmt::format("{} eval --dialogs {} --limit 40 --json {} {} 2>&1",
                                                 test::cli_path().string(), (data / "test_dialogs.jsonl").string(),
                                                 (dir / name).string(), extra),
                                     &log);
    INFO(log);
    REQUIRE(rc == 0);
    return nlohmann::json::parse(test::file_text(dir / name));
  };
  const auto model = run("", "model.json");
  const auto co = run(fmt::format("--baseline cooccurrence --cooccurrence-from {}",
                                  (data / "movie_sequences.jsonl").string()),
                      "co.json");
  for (const auto* j : {&model, &co}) {
    CHECK((*j)["dedup_samples"].get<std::size_t>() > 0);
    CHECK((*j)["dedup_samples"].get<std::size_t>() < (*j)["samples"].get<std::size_t>());
    // Left-out items can only move the gold item up.
    CHECK((*j)["dedup_metrics"]["recall@50"].get<double>() >= 0);
  }
  CHECK(model["samples"] == co["samples"]);
  // Counting co-occurrences over 9,730 conversations ranks far better than chance (50 / 6,576).
  CHECK(co["metrics"]["recall@50"].get<double>() > 0.1);

  std::string log;
  CHECK(test::run_command(fmt::format("{} eval --dialogs {} --limit 1 --baseline cooccurrence 2>&1",
                                      test::cli_path().string(), (data / "test_dialogs.jsonl").string()),
                          &log) != 0);
  CHECK(log.find("--cooccurrence-from") != std::string::npos);
}
