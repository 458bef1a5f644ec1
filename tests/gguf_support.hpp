// What the GGUF tests share: the virtual environment of tools/setup_venv.sh, whose `gguf`
// package writes their fixtures and computes their references, and the SmolLM2 file it fetches.
// A target that includes this defines ECR_VENV_PYTHON and ECR_SMOLLM2_GGUF (tests/CMakeLists.txt).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "ecr/models/llama.hpp"
#include "support.hpp"

namespace ecr::test {

inline fs::path venv_python() { return ECR_VENV_PYTHON; }

// SmolLM2-135M-Instruct Q4_1 ($ECR_SMOLLM2_GGUF overrides where it is looked for).
inline fs::path smollm2() {
  if (const char* env = std::getenv("ECR_SMOLLM2_GGUF")) return env;
  return ECR_SMOLLM2_GGUF;
}

inline bool have_gguf_package() {
  static const bool ok = run_command(fmt::format("'{}' -c 'import gguf' >/dev/null 2>&1", venv_python().string())) == 0;
  return ok;
}

// Runs `python -m tools.<module_and_args>` with the venv's python and the source tree on its
// path; fails the test on a non-zero exit. Returns stdout and stderr.
inline std::string run_tool(const std::string& module_and_args) {
  std::string out;
  const int rc = run_command(fmt::format("PYTHONPATH='{}' '{}' -m tools.{} 2>&1", source_dir().string(),
                                         venv_python().string(), module_and_args),
                             &out);
  REQUIRE_MESSAGE(rc == 0, out);
  return out;
}

// Token ids printed one after another (tools/llama_reference.py --greedy).
inline std::vector<std::int32_t> parse_ids(const std::string& text) {
  std::vector<std::int32_t> ids;
  std::istringstream in(text);
  for (std::int32_t id; in >> id;) ids.push_back(id);
  return ids;
}

// A 16-token prompt: distinct, spread over the 300-token vocabulary of the Llama fixtures.
inline std::vector<std::int32_t> prompt_ids(std::int32_t seed) {
  std::vector<std::int32_t> ids;
  for (std::int32_t i = 0; i < 16; ++i) ids.push_back((seed * 37 + i * 53 + i * i * 7) % 300);
  return ids;
}

// The logits of every position of `ids`, fed as one sequence.
inline Tensor logits_of(const LlamaModel& model, std::span<const std::int32_t> ids) {
  LlamaState state = model.start(1);
  const std::span<const std::int32_t> one[] = {ids};
  return model.forward(state, one, /*all_logits=*/true).clone();
}

}  // namespace ecr::test

#define ECR_REQUIRE_GGUF_PACKAGE()                                                                  \
  do {                                                                                              \
    if (!::ecr::test::have_gguf_package()) {                                                        \
      MESSAGE("skipped: no python with the gguf package at " << ::ecr::test::venv_python()          \
                                                            << " (run tools/setup_venv.sh)");      \
      return;                                                                                       \
    }                                                                                               \
  } while (0)
