// bench_recommend_peer: the C++ side of benchmarks/bench_python.py. Loads a Recommender once, then
// runs one recommend() of --dialog for each line read on standard input and prints, per call, one
// JSON line {"ms": wall time of the call, "top": [[id, score], ...]}. Driven call by call, its calls
// interleave with the Python calls they are compared with, so both see the same machine.
//
//   bench_recommend_peer --bundle B.ecr --dialog D.json [--threads N] [--top-k K]
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/recommender.hpp"

int main(int argc, char** argv) {
  std::string bundle, dialog_path;
  int threads = 0, top_k = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--bundle") bundle = value;
    else if (key == "--dialog") dialog_path = value;
    else if (key == "--threads") threads = std::stoi(value);
    else if (key == "--top-k") top_k = std::stoi(value);
    else {
      fmt::print(stderr, "bench_recommend_peer: unknown option {}\n", key);
      return 2;
    }
  }
  if (bundle.empty() || dialog_path.empty()) {
    fmt::print(stderr, "usage: bench_recommend_peer --bundle B.ecr --dialog D.json [--threads N] [--top-k K]\n");
    return 2;
  }
  try {
    std::ifstream in(dialog_path);
    const ecr::Dialog dialog =
        ecr::Dialog::parse(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
    ecr::RecommenderOptions options;
    options.threads = static_cast<std::size_t>(threads);
    const auto recommender = ecr::Recommender::load(bundle, options);
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
