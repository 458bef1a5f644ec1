// Random-weight checkpoints and their bundles for the engine tests (GPT-2, RoBERTa, decoding).
//
// ctest runs every TEST_CASE in its own process, so a static cache alone would rebuild the
// checkpoints once per test case. They are made once per build tree instead, in a folder named
// by a hash of the recipe and of the tools that make them (a changed tool makes fresh ones), and
// published with an atomic rename so test processes running side by side never see half a fixture.
#pragma once

#include <unistd.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "ecr/models/gpt2.hpp"
#include "support.hpp"

namespace ecr::test {

inline std::string file_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The folder `build` filled for `recipe`, made at most once per build tree. Empty on failure.
inline fs::path cached_fixture(const std::string& recipe, const std::function<bool(const fs::path&)>& build) {
  const std::string key = recipe + file_text(tools_dir() / "make_random_checkpoints.py") +
                          file_text(tools_dir() / "convert.py");
  const char* env = std::getenv("ECR_TEST_TMP");
  const fs::path root = (env ? fs::path(env) : fs::temp_directory_path() / "ecr-tests") / "fixtures";
  const fs::path done = root / fmt::format("{:016x}", std::hash<std::string>{}(key));
  if (fs::exists(done / "ready")) return done;
  const fs::path work = root / fmt::format("{}.{}", done.filename().string(), ::getpid());
  fs::remove_all(work);
  fs::create_directories(work);
  if (!build(work)) {
    fs::remove_all(work);
    return {};
  }
  std::ofstream(work / "ready") << recipe << "\n";
  std::error_code ec;
  fs::rename(work, done, ec);  // fails when another process published first: use theirs
  if (ec) fs::remove_all(work);
  return done;
}

// A random GPT-2 checkpoint (`checkpoint/`) converted into `model.ecr` as component `lm`
// (or `emotion` with --classifier).
struct Gpt2Fixture {
  fs::path checkpoint;
  fs::path bundle;
};

inline Gpt2Fixture gpt2_fixture(int layers, int heads, int hidden, int positions, int classifier = 0,
                                const std::string& dtype = "f32") {
  const std::string component = classifier ? "emotion" : "lm";
  const std::string recipe = fmt::format("gpt2 {} {} {} {} {} {}", layers, heads, hidden, positions, classifier, dtype);
  const fs::path dir = cached_fixture(recipe, [&](const fs::path& out) {
    std::string args = fmt::format(
        "make_random_checkpoints gpt2 --out {}/checkpoint --layers {} --heads {} --hidden {} --positions {} "
        "--vocab-dir {}/gpt2 --seed 7",
        out.string(), layers, heads, hidden, positions, shared_data().string());
    if (classifier) args += fmt::format(" --classifier {}", classifier);
    return run_python(args) == 0 &&
           run_python(fmt::format("convert --out {0}/model.ecr --gpt2 {1}={0}/checkpoint --dtype {2}", out.string(),
                                  component, dtype)) == 0;
  });
  REQUIRE_MESSAGE(!dir.empty(), "could not make the GPT-2 fixture " << recipe);
  return {dir / "checkpoint", dir / "model.ecr"};
}

// A random RoBERTa checkpoint (RobertaForMaskedLM layout) converted as component `text`.
struct RobertaFixture {
  fs::path checkpoint;
  fs::path bundle;
};

inline RobertaFixture roberta_fixture(int layers, int heads, int hidden, int intermediate, int positions) {
  const std::string recipe = fmt::format("roberta {} {} {} {} {}", layers, heads, hidden, intermediate, positions);
  const fs::path dir = cached_fixture(recipe, [&](const fs::path& out) {
    return run_python(fmt::format("make_random_checkpoints roberta --out {}/checkpoint --layers {} --heads {} "
                                  "--hidden {} --intermediate {} --positions {} --vocab-dir {}/gpt2 --seed 11",
                                  out.string(), layers, heads, hidden, intermediate, positions,
                                  shared_data().string())) == 0 &&
           run_python(fmt::format("convert --out {0}/model.ecr --roberta text={0}/checkpoint", out.string())) == 0;
  });
  REQUIRE_MESSAGE(!dir.empty(), "could not make the RoBERTa fixture " << recipe);
  return {dir / "checkpoint", dir / "model.ecr"};
}

inline std::string join_ids(std::span<const std::int32_t> ids) {
  std::string s;
  for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

// The GPT-2 side's vocabulary (50257 byte-level tokens + <pad> + <movie>).
inline constexpr int kGpt2Vocab = 50259;

// n token ids drawn uniformly from [low, high] (default: the whole GPT-2 vocabulary).
inline std::vector<std::int32_t> random_ids(std::size_t n, unsigned seed, std::int32_t low = 0,
                                            std::int32_t high = kGpt2Vocab - 1) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::int32_t> dist(low, high);
  std::vector<std::int32_t> ids(n);
  for (auto& id : ids) id = dist(rng);
  return ids;
}

inline Tensor random_prefix(const Gpt2Config& c, std::int64_t rows, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.5f);
  Tensor p = Tensor::empty(DType::f32, {rows, c.prefix_width()}, "prefix");
  for (float& v : p.span<float>()) v = dist(rng);
  return p;
}

}  // namespace ecr::test
