// An engine, Recommender or Responder asked for a CUDA device where none can run (a build
// without CUDA, or a machine without a GPU) is refused at load with a DeviceError that says why,
// and so are the CLI's --device cuda requests (exit 1, "device error" on stderr). With a usable
// GPU, test_cuda_pipeline.cpp checks the device requests themselves.
#include <fstream>
#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "ecr/core/error.hpp"
#include "ecr/default_bundle.hpp"
#include "ecr/device/cuda.hpp"
#include "ecr/engine.hpp"
#include "ecr/recommender.hpp"
#include "ecr/responder.hpp"
#include "support.hpp"

using namespace ecr;
using namespace ecr::test;

namespace {

// `f` throws a DeviceError whose message names the device and the reason there is none.
template <class F>
void check_no_device(F&& f) {
  try {
    f();
    FAIL_CHECK("accepted device cuda:0 without a usable GPU");
  } catch (const DeviceError& e) {
    const std::string what = e.what();
    CHECK_MESSAGE(what.find("device error") == 0, what);
    CHECK_MESSAGE(what.find("cuda:0") != std::string::npos, what);
    CHECK_MESSAGE(what.find(cuda::unavailable_reason()) != std::string::npos, what);
  }
}

}  // namespace

TEST_CASE("device cuda without a usable GPU: Engine, Recommender and Responder refuse it by name") {
  if (cuda::available()) {
    MESSAGE("skipped: a GPU is usable here (test_cuda_pipeline runs the device requests)");
    return;
  }
  REQUIRE_FALSE(cuda::unavailable_reason().empty());
  const fs::path path = default_bundle_path();
  const Bundle bundle = Bundle::open(path);
  EngineOptions engine_options;
  engine_options.device = DeviceSpec::parse("cuda");
  check_no_device([&] { Engine::load(path, engine_options); });
  check_no_device([&] { Engine::load(bundle, engine_options); });
  RecommenderOptions recommender_options;
  recommender_options.device = DeviceSpec::parse("cuda:0");
  check_no_device([&] { Recommender::load(path, recommender_options); });
  check_no_device([&] { Recommender::load(bundle, recommender_options); });
  ResponderOptions responder_options;
  responder_options.device = DeviceSpec::parse("cuda:0");
  check_no_device([&] { Responder::load(path, responder_options); });
  check_no_device([&] { Responder::load(bundle, responder_options); });

  // The CPU engine of the same bundle serves, and a CPU view cannot be re-aimed at the device.
  const Engine cpu = Engine::load(bundle);
  CHECK(cpu.options().device.device == Device::cpu);
  CHECK_THROWS_AS(Recommender::load(cpu, recommender_options), ConfigError);
}

TEST_CASE("ecr recommend / respond --device cuda without a usable GPU: exit 1 and a device error") {
  if (cuda::available()) {
    MESSAGE("skipped: a GPU is usable here (tools/gpu_check.sh compares the CLI on cpu and cuda)");
    return;
  }
  const fs::path dir = temp_dir("engine_device_cli");
  std::ofstream(dir / "dialog.json") << R"({"turns": [{"role": "user", "text": "I love horror movies."}]})";
  for (const std::string command : {"recommend", "respond"}) {
    CAPTURE(command);
    const std::string base = fmt::format("{} {} --bundle {} --dialog {}", cli_path().string(), command,
                                         default_bundle_path().string(), (dir / "dialog.json").string());
    // Standard output is dropped, so `err` is what the command wrote to standard error.
    std::string err, out;
    CHECK(run_command(fmt::format("( {} --device cuda >/dev/null )", base), &err) == 1);
    CHECK_MESSAGE(err.find("device error") != std::string::npos, err);
    CHECK_MESSAGE(err.find("cuda:0") != std::string::npos, err);
    // The same request on the CPU runs.
    CHECK(run_command(fmt::format("{} --device cpu >/dev/null", base), &out) == 0);
  }
}
