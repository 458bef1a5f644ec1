// bench_recommend_peer: the C++ side of benchmarks/bench_python.py. Loads a Recommender once, then
// runs one recommend() of --dialog for each line read on standard input and prints, per call, one
// JSON line {"ms": wall time of the call, "top": [[id, score], ...]}. Driven call by call, its calls
// interleave with the Python calls they are compared with, so both see the same machine.
//
//   bench_recommend_peer --bundle B.ecr --dialog D.json [--threads N] [--top-k K]
#include <chrono>
#include <iostream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_cli.hpp"
#include "ecr/recommender.hpp"

int main(int argc, char** argv) {
  try {
    const auto args = ecr::bench::parse_options(argc, argv, {"--bundle", "--dialog", "--threads", "--top-k"});
    if (!args.count("--bundle") || !args.count("--dialog")) {
      fmt::print(stderr, "usage: bench_recommend_peer --bundle B.ecr --dialog D.json [--threads N] [--top-k K]\n");
      return 2;
    }
    const int threads = ecr::bench::int_option(args, "--threads", 0);
    const int top_k = ecr::bench::int_option(args, "--top-k", 10);
    const ecr::Dialog dialog = ecr::bench::read_dialog(args.at("--dialog"));
    ecr::RecommenderOptions options;
    options.threads = static_cast<std::size_t>(threads);
    const auto recommender = ecr::Recommender::load(args.at("--bundle"), options);
    ecr::RecommendRequest request;
    request.top_k = static_cast<std::size_t>(top_k);
    fmt::print("{}\n", nlohmann::json{{"ready", true}}.dump());
    std::fflush(stdout);
    for (std::string line; std::getline(std::cin, line);) {
      const auto t0 = std::chrono::steady_clock::now();
      const ecr::Recommendation r = recommender.recommend(dialog, request);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      nlohmann::json top = nlohmann::json::array();
      for (const auto& item : r.items) top.push_back({item.id, item.score});
      fmt::print("{}\n", nlohmann::json{{"ms", ms}, {"top", top}}.dump());
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_recommend_peer: {}\n", e.what());
    return 1;
  }
  return 0;
}
