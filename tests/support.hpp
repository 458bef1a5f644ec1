// Helpers shared by the tests: where the shared data and tools are, temporary folders, running
// the Python tools (the torch references and the converter) and reading .npy files they write.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <typeinfo>

#include <doctest/doctest.h>

#include "ecr/core/tensor.hpp"
#include "ecr/responder.hpp"

namespace ecr::test {

namespace fs = std::filesystem;

// ../shared/data beside the project, or empty when it is absent (tests that need it skip).
fs::path shared_data();
// Skips the current test case with a message when ../shared/data is missing.
#define ECR_REQUIRE_SHARED_DATA()                                                        \
  do {                                                                                   \
    if (::ecr::test::shared_data().empty()) {                                            \
      MESSAGE("skipped: ../shared/data is absent (see data/README.md in shared/)");      \
      return;                                                                            \
    }                                                                                    \
  } while (0)

// `f` throws E (an ecr::Error kind) and its message holds every needle; any other outcome fails
// the test case, naming what happened instead.
template <class E>
void check_refused(const std::function<void()>& f, std::initializer_list<std::string_view> needles) {
  try {
    f();
    FAIL_CHECK("accepted; expected " << typeid(E).name());
  } catch (const E& e) {
    for (auto needle : needles) CHECK_MESSAGE(std::string(e.what()).find(needle) != std::string::npos, e.what());
  } catch (const std::exception& e) {
    FAIL_CHECK("wrong exception: " << std::string(e.what()));
  }
}

fs::path source_dir();
fs::path tools_dir();
fs::path cli_path();
// A fresh, empty folder for this test (under the build tree), private to this process and
// removed when it exits.
fs::path temp_dir(const std::string& name);

// True when Debian's python3 with torch and numpy is available.
bool have_torch();
#define ECR_REQUIRE_TORCH()                                                              \
  do {                                                                                   \
    if (!::ecr::test::have_torch()) {                                                    \
      MESSAGE("skipped: python3 with torch is not installed (apt-get install python3-torch)"); \
      return;                                                                            \
    }                                                                                    \
  } while (0)

// The shell command `python3 -m tools.<module> <args>` with the source tree first on PYTHONPATH:
// how every test calls the tools package, from any working directory.
std::string python_module_command(const std::string& module_and_args);
// Runs python_module_command(module_and_args); returns the exit code. Output goes to `log` if given.
int run_python(const std::string& module_and_args, const fs::path& log = {});
// Runs a shell command; returns its exit code and captures stdout+stderr into `output`.
int run_command(const std::string& command, std::string* output = nullptr);

// Reads a little-endian .npy (f32, i32 or i64, C order) into a tensor.
Tensor read_npy(const fs::path& path);
// Writes a tensor as .npy.
void write_npy(const fs::path& path, const Tensor& tensor);

// max |a - b| over all elements (both f32, same shape; fails the test otherwise).
float max_abs_diff(const Tensor& a, const Tensor& b);

// ECR's GPT-2 generator asked for by name: a test of that generator stays one where an LLM is
// installed (ResponderOptions' automatic mode would pick the LLM there).
inline ResponderOptions gpt2_responder() {
  ResponderOptions o;
  o.generator = ReplyGenerator::gpt2;
  return o;
}

}  // namespace ecr::test
