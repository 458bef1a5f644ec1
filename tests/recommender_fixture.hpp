// The tiny random ECR bundle on the real ReDial KG (tools/make_random_bundle.py --size tiny):
// every component, the co-occurrence matrix of the shared dialogs, and the checkpoints beside it
// for the torch references. Made once per build tree (model_fixtures.hpp's cached_fixture).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "ecr/dialog.hpp"
#include "ecr/kg/knowledge_graph.hpp"
#include "model_fixtures.hpp"

namespace ecr::test {

struct RecommenderFixture {
  fs::path checkpoints;  // backbone/, text_encoder/, rec_prompt/model.pt, emotion_classifier/, ...
  fs::path bundle;
  fs::path kg_dir;  // the shared ReDial KG the bundle was built from
};

// `dtype` is tools.convert's --dtype: the same weights (seed 3) stored f32, f16, bf16 or int8.
inline RecommenderFixture recommender_fixture(const std::string& dtype = "f32") {
  const fs::path kg = shared_data() / "redial";
  std::string recipe = "recommender tiny redial seed 3";
  if (dtype != "f32") recipe += " dtype " + dtype;
  for (const char* tool : {"make_random_bundle.py", "make_random_kgprompt.py", "ecr_prompt.py", "ecr_kg.py"})
    recipe += file_text(tools_dir() / tool);
  const fs::path dir = cached_fixture(recipe, [&](const fs::path& out) {
    return run_python(fmt::format("make_random_bundle --out {0}/tiny.ecr --size tiny --kg-dir {1} --dialogs "
                                  "{1}/dialogs.jsonl --keep-checkpoints {0}/checkpoints --seed 3 --dtype {2}",
                                  out.string(), kg.string(), dtype)) == 0;
  });
  REQUIRE_MESSAGE(!dir.empty(), "could not make the tiny recommender bundle (" << dtype << ")");
  return {dir / "checkpoints", dir / "tiny.ecr", kg};
}

// The same weights (seed 3) with the static tables stored by tools.convert --static-tables.
inline fs::path static_tables_fixture() {
  const fs::path kg_dir = shared_data() / "redial";
  std::string recipe = "recommender tiny redial seed 3 static tables";
  for (const char* tool : {"make_random_bundle.py", "make_random_kgprompt.py", "ecr_prompt.py", "ecr_kg.py",
                           "reference/kgprompt.py", "reference/rgcn.py"})
    recipe += file_text(tools_dir() / tool);
  const fs::path dir = cached_fixture(recipe, [&](const fs::path& out) {
    return run_python(fmt::format("make_random_bundle --out {0}/tiny.ecr --size tiny --kg-dir {1} --dialogs "
                                  "{1}/dialogs.jsonl --seed 3 --static-tables",
                                  out.string(), kg_dir.string())) == 0;
  });
  REQUIRE_MESSAGE(!dir.empty(), "could not make the static-tables bundle");
  return dir / "tiny.ecr";
}

// Dialog-building helpers of the recommender tests (CPU and device).
inline EmotionProbs emotions(std::map<std::string, float> labelled) {
  EmotionProbs p{};
  for (const auto& [label, prob] : labelled) p[static_cast<std::size_t>(*emotion_id(label))] = prob;
  return p;
}

inline Turn turn(Role role, std::string text, std::vector<std::int64_t> entities = {},
          std::optional<EmotionProbs> e = std::nullopt) {
  return Turn{role, std::move(text), std::move(entities), e};
}

inline std::int64_t entity(const KnowledgeGraph& kg, std::string_view name) {
  const auto id = kg.entity_id(name);
  REQUIRE_MESSAGE(id, "the ReDial KG has no entity " << name);
  return *id;
}

// The dialogs of the recommender parity test (test_recommender.cpp), which other tests rank too.

// A dialog with host entity ids and host emotions on every user turn.
inline Dialog labelled_dialog(const KnowledgeGraph& kg) {
  Dialog d;
  d.add_turn(turn(Role::user, "Hi! I love horror movies, anything like The Shining?",
                  {entity(kg, "horror"), entity(kg, "The Shining (1980)")}, emotions({{"like", 0.7f}, {"curious", 0.2f}})));
  d.add_turn(turn(Role::system, "Have you seen What Lies Beneath? It stars Harrison Ford.",
                  {entity(kg, "What Lies Beneath (2000)"), entity(kg, "Harrison Ford")}));
  d.add_turn(turn(Role::user, "Yes, it was too slow for me. Anything else?", {},
                  emotions({{"negative", 0.6f}, {"curious", 0.3f}, {"neutral", 0.05f}})));
  return d;
}

// The same text without ids or emotions: the linker and the classifier fill them in.
inline Dialog plain_dialog() {
  Dialog d;
  d.add_turn(turn(Role::user, "Hi! I love horror movies, anything like The Shining (1980)?"));
  d.add_turn(turn(Role::system, "Have you seen @83192 ? It stars Harrison Ford."));
  d.add_turn(turn(Role::user, "Yes, it was too slow for me. Anything else?"));
  d.movie_mentions = {{"83192", "What Lies Beneath (2000)"}};
  return d;
}

// The system speaks first; no entities anywhere.
inline Dialog no_entity_dialog() {
  Dialog d;
  d.add_turn(turn(Role::system, "Hello there, what are you in the mood for tonight?"));
  d.add_turn(turn(Role::user, "Not sure, something fun to watch with friends.", {}, emotions({{"happy", 0.8f}})));
  return d;
}

// Longer than both context limits: 40 turns.
inline Dialog long_dialog(const KnowledgeGraph& kg) {
  Dialog d;
  for (int i = 0; i < 40; ++i) {
    const Role role = i % 2 ? Role::system : Role::user;
    d.add_turn(turn(role, fmt::format("Turn number {} talks about movies, actors and the weekend plans.", i),
                    i % 5 == 0 ? std::vector<std::int64_t>{kg.items()[static_cast<std::size_t>(i)]} : std::vector<std::int64_t>{},
                    role == Role::user ? std::optional(emotions({{"neutral", 0.5f}, {"like", 0.3f}})) : std::nullopt));
  }
  return d;
}

}  // namespace ecr::test
