// bench_responder: the latency of one full ECR reply (docs/math.md sections 7 and 8) on a bundle, printed as
// one JSON object that benchmarks/bench_responder.py puts beside the same work in PyTorch.
//
//   reply_ms        Responder::respond: RoBERTa over the context, the conv prompt, the template
//                   (backbone, <= 50 new tokens), retrieval and prompt text, the reply (generator,
//                   <= 150 new tokens); the median of --reps runs after one warm-up
//   load_ms         Responder::load (the static R-GCN entity table included)
//   template_tokens, reply_tokens   new tokens of each decoder (random weights rarely stop early)
//   inputs          the ids the models saw, so the torch side decodes from the same ones
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/responder.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// A ReDial-like opening: a few turns, so the context is a realistic ~100 tokens.
const char* kDialog = R"J({"turns": [
  {"role": "user", "text": "Hi there! I'm looking for a good movie to watch tonight, something like The Matrix (1999)."},
  {"role": "system", "text": "Hello! Do you like science fiction in general, or mostly action movies?"},
  {"role": "user", "text": "Mostly action, but I loved how clever The Matrix was. Keanu Reeves is great."},
  {"role": "system", "text": "Have you seen Speed (1994)? It is a classic with Keanu Reeves."},
  {"role": "user", "text": "Yes, I liked it a lot! Anything else?"}]})J";

}  // namespace

int main(int argc, char** argv) {
  std::string bundle;
  int reps = 3;
  std::size_t threads = 0;
  std::int64_t item = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--bundle") bundle = value;
    else if (key == "--reps") reps = std::stoi(value);
    else if (key == "--threads") threads = static_cast<std::size_t>(std::stoul(value));
    else if (key == "--item") item = std::stoll(value);
  }
  if (bundle.empty() || reps < 1) {
    std::fprintf(stderr, "usage: bench_responder --bundle B [--reps 3] [--threads 0] [--item ID]\n");
    return 2;
  }
  ecr::ResponderOptions options;
  options.threads = threads;
  auto t0 = Clock::now();
  const ecr::Responder responder = ecr::Responder::load(bundle, options);
  const double load_ms = ms_since(t0);

  const ecr::Dialog dialog = ecr::Dialog::parse(kDialog);
  ecr::Recommendation recommendation;
  const auto items = responder.graph().items();
  recommendation.items = {{item >= 0 ? item : items[0], "", 1.0f}};

  ecr::Response r = responder.respond(dialog, recommendation);  // warm-up
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    t0 = Clock::now();
    r = responder.respond(dialog, recommendation);
    ms.push_back(ms_since(t0));
  }
  std::sort(ms.begin(), ms.end());
  const nlohmann::json out = {
      {"reply_ms", ms[ms.size() / 2]},
      {"reply_ms_all", ms},
      {"load_ms", load_ms},
      {"template_tokens", r.template_ids.size()},
      {"reply_tokens", r.reply_ids.size()},
      {"inputs",
       {{"template_input_ids", r.template_input_ids},
        {"conv_prompt_ids", r.conv_prompt_ids},
        {"conv_entities", r.conv_entities},
        {"prompt_ids", r.prompt_ids},
        {"template_ids", r.template_ids},
        {"reply_ids", r.reply_ids}}}};
  fmt::print("{}\n", out.dump());
  return 0;
}
