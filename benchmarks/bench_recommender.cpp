// bench_recommender: times ecr::Recommender on a bundle, printing one JSON object that
// benchmarks/bench_recommender.py puts beside PyTorch:
//
//   load_ms           Recommender::load: open the bundle, load every model, build the static
//                     tables (R-GCN entity table E, emotion table M, G = C E, prefix rows, linker)
//   load_verified_ms  the same with every tensor's CRC-32 checked (the library's default)
//   recommend_ms      one recommend() call on --dialog (median of --reps after a warm-up)
//   inputs            what the models saw (context ids, prompt ids, entities and their emotions),
//                     so that the torch side computes the very same request
//   top                the ten best items with their scores, to check the torch side agrees
//
//   bench_recommender --bundle B.ecr --dialog D.json [--threads N] [--reps R]
#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_cli.hpp"
#include "ecr/recommender.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto args = ecr::bench::parse_options(argc, argv, {"--bundle", "--dialog", "--threads", "--reps"});
    if (!args.count("--bundle") || !args.count("--dialog")) {
      fmt::print(stderr, "usage: bench_recommender --bundle B.ecr --dialog D.json [--threads N] [--reps R]\n");
      return 2;
    }
    const std::string bundle = args.at("--bundle");
    const int threads = ecr::bench::int_option(args, "--threads", 0);
    const int reps = std::max(1, ecr::bench::int_option(args, "--reps", 10));
    const ecr::Dialog dialog = ecr::bench::read_dialog(args.at("--dialog"));
    ecr::RecommenderOptions options;
    options.threads = static_cast<std::size_t>(threads);

    // Loads: best of three each (the file is in the page cache after the first). The clock
    // stops when load returns: freeing the model afterwards is not part of it.
    double load_ms = 1e30, verified_ms = 1e30;
    const auto time_load = [&](bool verify, double& best) {
      options.verify_checksums = verify;
      std::optional<ecr::Recommender> r;
      const auto t0 = Clock::now();
      r.emplace(ecr::Recommender::load(bundle, options));
      best = std::min(best, ms_since(t0));
    };
    for (int rep = 0; rep < 3; ++rep) {
      time_load(true, verified_ms);
      time_load(false, load_ms);
    }

    const auto recommender = ecr::Recommender::load(bundle, options);
    ecr::RecommendRequest request;
    request.top_k = 10;
    ecr::Recommendation r = recommender.recommend(dialog, request);  // warm-up
    std::vector<double> times;
    for (int rep = 0; rep < reps; ++rep) {
      const auto t0 = Clock::now();
      r = recommender.recommend(dialog, request);
      times.push_back(ms_since(t0));
    }
    std::sort(times.begin(), times.end());

    nlohmann::json entities = nlohmann::json::array(), ids = nlohmann::json::array(), probs = nlohmann::json::array();
    for (const auto& e : r.prompt_entities) {
      entities.push_back(e.id);
      ids.push_back(e.emotions.ids);
      probs.push_back(e.emotions.probs);
    }
    nlohmann::json top = nlohmann::json::array();
    for (const auto& item : r.items) top.push_back({item.id, item.score});
    const nlohmann::json out = {
        {"threads", threads},
        {"load_ms", load_ms},
        {"load_verified_ms", verified_ms},
        {"recommend_ms", times[times.size() / 2]},
        {"recommend_min_ms", times.front()},
        {"inputs",
         {{"context_ids", r.context_ids},
          {"prompt_ids", r.prompt_ids},
          {"entities", entities},
          {"emotion_ids", r.emotion_fusion ? ids : nlohmann::json(nullptr)},
          {"emotion_probs", r.emotion_fusion ? probs : nlohmann::json(nullptr)}}},
        {"top", top}};
    fmt::print("{}\n", out.dump());
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_recommender: {}\n", e.what());
    return 1;
  }
  return 0;
}
