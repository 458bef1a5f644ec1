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

inline RecommenderFixture recommender_fixture() {
  const fs::path kg = shared_data() / "redial";
  std::string recipe = "recommender tiny redial seed 3";
  for (const char* tool : {"make_random_bundle.py", "make_random_kgprompt.py", "ecr_prompt.py", "ecr_kg.py"})
    recipe += file_text(tools_dir() / tool);
  const fs::path dir = cached_fixture(recipe, [&](const fs::path& out) {
    return run_python(fmt::format("make_random_bundle --out {0}/tiny.ecr --size tiny --kg-dir {1} --dialogs "
                                  "{1}/dialogs.jsonl --keep-checkpoints {0}/checkpoints --seed 3",
                                  out.string(), kg.string())) == 0;
  });
  REQUIRE_MESSAGE(!dir.empty(), "could not make the tiny recommender bundle");
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

}  // namespace ecr::test
