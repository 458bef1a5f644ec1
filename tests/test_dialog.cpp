// Dialogs: the JSON form and its errors, ReDial records, the merge of consecutive turns, and
// the model-free context building of docs/math.md section 2 on hand-made cases.
#include <fstream>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/core/error.hpp"
#include "ecr/dialog.hpp"
#include "support.hpp"

namespace {

using ecr::Dialog;
using ecr::Role;
using ecr::TurnEmotions;
using nlohmann::json;

void check_input_error(const std::string& text, const std::string& needle) {
  try {
    Dialog::parse(text);
    FAIL_CHECK("accepted: " << text);
  } catch (const ecr::InputError& e) {
    CHECK_MESSAGE(std::string(e.what()).find(needle) != std::string::npos, std::string(e.what()));
  }
}

ecr::EmotionProbs probs(std::initializer_list<std::pair<const char*, float>> values) {
  ecr::EmotionProbs p{};
  for (const auto& [label, prob] : values) p[static_cast<std::size_t>(*ecr::emotion_id(label))] = prob;
  return p;
}

TurnEmotions emotions(std::vector<std::int32_t> ids, std::vector<float> ps) {
  TurnEmotions t;
  for (std::size_t k = 0; k < ids.size(); ++k) t.ids[k] = ids[k], t.probs[k] = ps[k];
  return t;
}

}  // namespace

TEST_CASE("dialog: JSON in and out") {
  const Dialog d = Dialog::parse(R"j({"turns": [
      {"role": "system", "text": "Hi! What do you like?"},
      {"role": "user", "text": "Scary ones like @111", "entities": [3, 0], "emotions": {"like": 0.75, "curious": 0.25}}],
    "movieMentions": {"111": "The Shining (1980)", "222": null}})j");
  REQUIRE(d.turns.size() == 2);
  CHECK(d.turns[0].role == Role::system);
  CHECK_FALSE(d.turns[0].emotions);
  CHECK(d.turns[1].entities == std::vector<std::int64_t>{3, 0});
  REQUIRE(d.turns[1].emotions);
  CHECK((*d.turns[1].emotions)[0] == 0.75f);
  CHECK((*d.turns[1].emotions)[1] == 0.25f);
  CHECK((*d.turns[1].emotions)[2] == 0.f);
  CHECK(d.movie_mentions.size() == 1);  // a null title is dropped
  CHECK(d.movie_mentions.at("111") == "The Shining (1980)");

  const Dialog again = Dialog::from_json(d.to_json());
  CHECK(again.to_json() == d.to_json());
  CHECK(again.turns[1].text == "Scary ones like @111");
}

TEST_CASE("dialog: bad input is an InputError naming the field and turn") {
  check_input_error("[1, 2]", "expected a JSON object");
  check_input_error(R"({"turns": []})", "no turns");
  check_input_error(R"({"turn": []})", "'turns'");
  check_input_error(R"({"turns": [{"role": "user", "text": "a"}, {"role": "bot", "text": "b"}]})", "turn 1: 'role'");
  check_input_error(R"({"turns": [{"role": "user"}]})", "turn 0: 'text' is missing");
  check_input_error(R"({"turns": [{"role": "user", "text": 5}]})", "turn 0: 'text' must be a string");
  check_input_error(R"({"turns": [{"role": "user", "text": "a", "entities": [1, -2]}]})", "entities[1]");
  check_input_error(R"({"turns": [{"role": "user", "text": "a", "entities": [1.5]}]})", "entities[0]");
  check_input_error(R"({"turns": [{"role": "user", "text": "a", "emotions": {"angry": 0.5}}]})",
                    "turn 0: unknown emotion label 'angry'");
  check_input_error(R"({"turns": [{"role": "user", "text": "a", "emotions": {"like": 1.5}}]})", "outside [0, 1]");
  check_input_error(R"({"turns": [{"role": "user", "text": "a", "emotions": {"like": "x"}}]})", "must be a number");
  check_input_error(R"({"turns": [{"role": "user", "text": "a"}], "movieMentions": {"1": 2}})", "movieMentions '1'");
  check_input_error("{\"turns\": [{\"role\": \"user\", \"text\": \"bad \xFF\"}]}", "not valid JSON");
  check_input_error("{\"turns\": ", "not valid JSON");

  // A JSON value built in memory can still carry bytes that are not UTF-8.
  json j = {{"turns", {{{"role", "user"}, {"text", "ok"}}, {{"role", "system"}, {"text", std::string("bad \xC3")}}}}};
  try {
    Dialog::from_json(j);
    FAIL_CHECK("accepted invalid UTF-8");
  } catch (const ecr::InputError& e) {
    CHECK(std::string(e.what()).find("turn 1: 'text' is not valid UTF-8") != std::string::npos);
  }
}

TEST_CASE("dialog: entity ids are checked against a knowledge graph") {
  const auto dir = ecr::test::temp_dir("dialog_kg");
  std::ofstream(dir / "entity2id.json") << R"({"a": 0, "b": 1, "c": 2})";
  std::ofstream(dir / "kg.json") << R"({"0": [[0, 1]]})";
  std::ofstream(dir / "relation2id.json") << R"({"genre": 0})";
  std::ofstream(dir / "item_ids.json") << "[0]";
  const auto kg = ecr::KnowledgeGraph::from_files(dir);
  Dialog::parse(R"({"turns": [{"role": "user", "text": "a", "entities": [0, 2]}]})").validate(kg);
  for (int bad : {3, 4}) {  // 3 is the padding entity
    const Dialog d = Dialog::parse(fmt::format(
        R"({{"turns": [{{"role": "user", "text": "a"}}, {{"role": "system", "text": "b", "entities": [1, {}]}}]}})", bad));
    try {
      d.validate(kg);
      FAIL_CHECK("accepted entity " << bad);
    } catch (const ecr::InputError& e) {
      CHECK(std::string(e.what()).find(fmt::format("turn 1: entities[1] = {}", bad)) != std::string::npos);
    }
  }
}

TEST_CASE("dialog: consecutive turns of one role merge") {
  const Dialog d = Dialog::parse(R"({"turns": [
      {"role": "user", "text": "Hi", "entities": [1], "emotions": {"happy": 0.6, "like": 0.2}},
      {"role": "user", "text": "any comedies?", "entities": [2], "emotions": {"like": 0.5, "curious": 0.3}},
      {"role": "system", "text": "Sure"},
      {"role": "system", "text": "try this", "entities": [4]}]})");
  REQUIRE(d.turns.size() == 2);
  CHECK(d.turns[0].text == "Hi any comedies?");
  CHECK(d.turns[0].entities == std::vector<std::int64_t>{1, 2});
  CHECK(*d.turns[0].emotions == probs({{"happy", 0.6f}, {"like", 0.5f}, {"curious", 0.3f}}));
  CHECK(d.turns[1].text == "Sure try this");
  CHECK_FALSE(d.turns[1].emotions);
}

TEST_CASE("dialog: a ReDial record becomes alternating turns with titles, entities and emotions") {
  const auto dir = ecr::test::temp_dir("dialog_redial_kg");
  std::ofstream(dir / "entity2id.json") << R"j({"The Shining (1980)": 0, "horror": 1, "Jack Nicholson": 2})j";
  std::ofstream(dir / "kg.json") << R"({"0": [[0, 1], [1, 2]]})";
  std::ofstream(dir / "relation2id.json") << R"({"genre": 0, "star": 1})";
  std::ofstream(dir / "item_ids.json") << "[0]";
  const auto kg = ecr::KnowledgeGraph::from_files(dir);
  const json record = {
      {"conversationId", "9"}, {"initiatorWorkerId", 5}, {"respondentWorkerId", 6},
      {"movieMentions", {{"111", "The Shining  (1980)"}}},
      {"messages",
       {{{"senderWorkerId", 6}, {"text", "Hello!"}, {"item", json::array()}, {"entity", json::array()}},
        {{"senderWorkerId", 5}, {"text", "I  like   horror &amp; @111"}, {"item", {"The Shining (1980)"}},
         {"entity", {"horror", "Unknown Person"}}, {"emotions", {{"like", 0.9}}}},
        {{"senderWorkerId", 5}, {"text", "with Jack Nicholson @999"}, {"item", json::array()}, {"entity", {"Jack Nicholson"}},
         {"emotions", {{"happy", 0.4}, {"like", 0.5}}}},
        {{"senderWorkerId", 6}, {"text", "Great &#39;choice&#x21;"}, {"item", json::array()}, {"entity", json::array()}}}}};
  const Dialog d = Dialog::from_redial(record, &kg);
  REQUIRE(d.turns.size() == 3);
  CHECK(d.turns[0].role == Role::system);
  CHECK(d.turns[1].role == Role::user);
  CHECK(d.turns[1].text == "I like horror & The Shining (1980) with Jack Nicholson @999");
  CHECK(d.turns[1].entities == std::vector<std::int64_t>{0, 1, 2});  // movies first, per message
  CHECK(*d.turns[1].emotions == probs({{"like", 0.9f}, {"happy", 0.4f}}));
  CHECK(d.turns[2].text == "Great 'choice!");
  CHECK(d.movie_mentions.at("111") == "The Shining  (1980)");

  const Dialog no_kg = Dialog::from_redial(record);
  CHECK(no_kg.turns[1].entities.empty());

  CHECK_THROWS_AS(Dialog::from_redial(json{{"initiatorWorkerId", 1}, {"messages", json::array()}}), ecr::InputError);
  CHECK_THROWS_AS(Dialog::from_redial(json{{"messages", {{{"senderWorkerId", 1}, {"text", "a"}}}}}), ecr::InputError);
  CHECK_THROWS_AS(Dialog::from_redial(json{{"initiatorWorkerId", 1}, {"messages", {{{"senderWorkerId", 1}, {"text", 3}}}}}),
                  ecr::InputError);
}

TEST_CASE("dialog: context turns and strings") {
  const Dialog d = Dialog::parse(R"({"turns": [
      {"role": "system", "text": "Hi!"}, {"role": "user", "text": "Hello"}, {"role": "system", "text": ""},
      {"role": "user", "text": "Any horror?"}]})");
  const auto turns = ecr::context_turns(d);
  REQUIRE(turns.size() == 5);
  CHECK(turns[0].role == Role::user);
  CHECK(turns[0].text.empty());
  CHECK(turns[1].text == "Hi!");

  CHECK(ecr::context_strings(d, "<|endoftext|>") ==
        std::vector<std::string>{"System: Hi!<|endoftext|>", "User: Hello<|endoftext|>", "User: Any horror?<|endoftext|>"});
  CHECK(ecr::context_text(d, "</s>") == "System: Hi!</s>User: Hello</s>User: Any horror?</s>");
  const Dialog user_first = Dialog::parse(R"({"turns": [{"role": "user", "text": "a"}, {"role": "system", "text": "b"}]})");
  CHECK(ecr::context_turns(user_first).size() == 2);
  CHECK(ecr::context_text(user_first, "|") == "User: a|System: b|");
}

TEST_CASE("dialog: turn emotions: over 0.1, strongest first, 3 at most, padded") {
  using ecr::select_emotions;
  CHECK(select_emotions(std::nullopt) == TurnEmotions{});
  CHECK(select_emotions(probs({})) == TurnEmotions{});
  CHECK(select_emotions(probs({{"like", 0.1f}, {"neutral", 0.05f}})) == TurnEmotions{});  // 0.1 is not over 0.1
  CHECK(select_emotions(probs({{"curious", 0.3f}, {"like", 0.6f}})) == emotions({0, 1}, {0.6f, 0.3f}));
  CHECK(select_emotions(probs({{"surprise", 0.15f}, {"happy", 0.4f}, {"like", 0.2f}, {"grateful", 0.25f}})) ==
        emotions({2, 3, 0}, {0.4f, 0.25f, 0.2f}));
  // Ties keep label order.
  CHECK(select_emotions(probs({{"nostalgia", 0.3f}, {"happy", 0.3f}, {"negative", 0.3f}, {"like", 0.1f}})) ==
        emotions({2, 4, 6}, {0.3f, 0.3f, 0.3f}));
}

TEST_CASE("dialog: context entities carry the user's reaction, the last 32 kept") {
  const Dialog d = Dialog::parse(R"({"turns": [
      {"role": "system", "text": "try", "entities": [10, 11]},
      {"role": "user", "text": "loved it", "entities": [12], "emotions": {"like": 0.8, "happy": 0.2}},
      {"role": "system", "text": "and", "entities": [13]},
      {"role": "user", "text": "no labels yet", "entities": [14]},
      {"role": "system", "text": "last", "entities": [15]}]})");
  const auto entities = ecr::context_entities(d);
  REQUIRE(entities.size() == 6);
  const TurnEmotions liked = emotions({0, 2}, {0.8f, 0.2f});
  std::vector<std::int64_t> got_ids;
  for (const auto& e : entities) got_ids.push_back(e.id);
  CHECK(got_ids == std::vector<std::int64_t>{10, 11, 12, 13, 14, 15});
  CHECK(entities[0].emotions == liked);  // from a system turn: the next user turn's
  CHECK(entities[1].emotions == liked);
  CHECK(entities[2].emotions == liked);
  CHECK(entities[3].emotions == TurnEmotions{});  // the next user turn has no labels
  CHECK(entities[4].emotions == TurnEmotions{});
  CHECK(entities[5].emotions == TurnEmotions{});  // no user turn after it yet

  Dialog many;
  for (int t = 0; t < 10; ++t)
    many.add_turn({t % 2 ? Role::system : Role::user, "x", {4 * t, 4 * t + 1, 4 * t + 2, 4 * t + 3}, std::nullopt});
  const auto last = ecr::context_entities(many);
  REQUIRE(last.size() == 32);
  CHECK(last.front().id == 8);
  CHECK(last.back().id == 39);
  CHECK(ecr::context_entities(many, 3).front().id == 37);
}

TEST_CASE("dialog: every ReDial dialog converts, alternating, with its annotated entities") {
  ECR_REQUIRE_SHARED_DATA();
  const auto dir = ecr::test::shared_data() / "redial";
  const auto kg = ecr::KnowledgeGraph::from_files(dir);
  std::ifstream in(dir / "dialogs.jsonl");
  REQUIRE(in);
  int dialogs = 0, system_first = 0;
  std::size_t annotated = 0, converted = 0;
  for (std::string line; std::getline(in, line);) {
    const json record = json::parse(line);
    const Dialog d = Dialog::from_redial(record, &kg);
    d.validate(kg);
    ++dialogs;
    system_first += d.turns.front().role == Role::system;
    for (std::size_t t = 1; t < d.turns.size(); ++t) REQUIRE(d.turns[t].role != d.turns[t - 1].role);
    for (const auto& m : record["messages"]) annotated += m["item"].size() + m["entity"].size();
    for (const auto& t : d.turns) converted += t.entities.size();
    CHECK(Dialog::from_json(d.to_json()).turns.size() == d.turns.size());
  }
  CHECK(dialogs == 800);
  CHECK(system_first == 479);
  CHECK(converted == annotated);  // every annotated name is a KG entity
}
