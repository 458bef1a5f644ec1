// A tiny, complete random bundle for the Responder and `ecr chat` tests: backbone and generator
// (GPT-2), text encoder (RoBERTa), rec and conv KGPrompts, a hand-written KG and reviews. The
// checkpoints stay beside the bundle for the torch references. Made once per build tree.
#pragma once

#include <fstream>
#include <string>

#include <fmt/format.h>

#include "model_fixtures.hpp"

namespace ecr::test {

// Ten entities, six relations (a DBpedia URI among them), two movies.
inline void write_tiny_kg(const fs::path& dir) {
  fs::create_directories(dir);
  std::ofstream(dir / "entity2id.json") << R"J({"The Matrix (1999)": 0, "Speed (1994)": 1, "Keanu Reeves": 2,
    "Lana Wachowski": 3, "Lilly Wachowski": 4, "Carrie-Anne Moss": 5, "Jan de Bont": 6,
    "Mark Mancina (composer)": 7, "action": 8, "<http://dbpedia.org/resource/Warner_Bros.>": 9})J";
  std::ofstream(dir / "relation2id.json") << R"J({"genre": 0, "star": 1, "director": 2, "writer": 3,
    "<http://dbpedia.org/ontology/productionCompany>": 4, "musicComposer": 5})J";
  std::ofstream(dir / "kg.json") << R"J({"0": [[1, 2], [1, 5], [2, 3], [2, 4], [3, 3], [0, 8], [4, 9]],
    "1": [[1, 2], [2, 6], [0, 8], [5, 7]]})J";
  std::ofstream(dir / "item_ids.json") << "[0, 1]";
}

inline constexpr int kTinyEntities = 11;  // max id + 2
inline constexpr int kTinyRelations = 6;

inline void write_tiny_reviews(const fs::path& path) {
  std::ofstream(path) << R"J([
    {"title": "a", "content": "b", "movie_name": "The Matrix (1999)",
     "e_review": ["<http://dbpedia.org/resource/Virtual_reality>", "<http://dbpedia.org/resource/Kung_fu>"]},
    {"title": "c", "content": "d", "movie_name": "The Matrix (1999)",
     "e_review": ["<http://dbpedia.org/resource/Virtual_reality>", "<http://dbpedia.org/resource/Philosophy>",
                  "Keanu Reeves"]},
    {"title": "e", "content": "f", "movie_name": "Speed (1994)", "e_review": ["<http://dbpedia.org/resource/Bus>"]}
  ])J";
}

struct ResponderFixture {
  fs::path dir;  // backbone/, generator/, text_encoder/ (checkpoints), conv.pt, rec.pt, kg/
  fs::path bundle;
};

inline ResponderFixture responder_fixture() {
  const std::string recipe = "responder 2x64 gpt2 320, roberta 2x64 256, kgprompt 11x6" +
                             file_text(tools_dir() / "make_random_kgprompt.py") +
                             file_text(tools_dir() / "ecr_reviews.py") + file_text(tools_dir() / "ecr_kg.py");
  const fs::path dir = cached_fixture(recipe, [](const fs::path& out) {
    const std::string o = out.string(), vocab = (shared_data() / "gpt2").string();
    write_tiny_kg(out / "kg");
    write_tiny_reviews(out / "reviews.json");
    const auto gpt2 = [&](const char* name, int seed) {
      return run_python(fmt::format("make_random_checkpoints gpt2 --out {}/{} --layers 2 --heads 2 --hidden 64 "
                                    "--positions 320 --vocab-dir {} --seed {}",
                                    o, name, vocab, seed)) == 0;
    };
    const auto prompt = [&](const char* kind, int seed) {
      return run_python(fmt::format("make_random_kgprompt {0} --out {1}/{0}.pt --n-entity {2} --num-relations {3} "
                                    "--hidden 64 --token-hidden 64 --layers 2 --seed {4}",
                                    kind, o, kTinyEntities, kTinyRelations, seed)) == 0;
    };
    return gpt2("backbone", 7) && gpt2("generator", 8) &&
           run_python(fmt::format("make_random_checkpoints roberta --out {}/text_encoder --layers 2 --heads 2 "
                                  "--hidden 64 --intermediate 128 --positions 256 --vocab-dir {} --seed 11",
                                  o, vocab)) == 0 &&
           prompt("conv", 3) && prompt("rec", 4) &&
           run_python(fmt::format("convert --out {0}/model.ecr --gpt2 backbone={0}/backbone "
                                  "--gpt2 generator={0}/generator --roberta text_encoder={0}/text_encoder "
                                  "--rec-prompt rec_prompt={0}/rec.pt --conv-prompt conv_prompt={0}/conv.pt "
                                  "--kg {0}/kg --reviews {0}/reviews.json --untrained",
                                  o)) == 0;
  });
  REQUIRE_MESSAGE(!dir.empty(), "could not make the responder fixture");
  return {dir, dir / "model.ecr"};
}

}  // namespace ecr::test
