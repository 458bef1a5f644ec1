// What the GGUF tests share: the virtual environment of tools/setup_venv.sh, whose `gguf`
// package writes their fixtures and computes their references, and the SmolLM2 file it fetches.
// A target that includes this defines ECR_VENV_PYTHON and ECR_SMOLLM2_GGUF (tests/CMakeLists.txt).
#pragma once

#include <cstdlib>
#include <string>

#include <fmt/format.h>

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

}  // namespace ecr::test

#define ECR_REQUIRE_GGUF_PACKAGE()                                                                  \
  do {                                                                                              \
    if (!::ecr::test::have_gguf_package()) {                                                        \
      MESSAGE("skipped: no python with the gguf package at " << ::ecr::test::venv_python()          \
                                                            << " (run tools/setup_venv.sh)");      \
      return;                                                                                       \
    }                                                                                               \
  } while (0)
