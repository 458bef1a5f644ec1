// bench_llm_reply: the latency of one LLM reply through the Responder (docs/llm-replies.md):
// retrieval of the movie's facts, the prompt and its chat template, the prefill and the decode,
// as a user of `ecr chat` waits for it. Printed as one JSON object; the medians of --reps runs
// after one warm-up.
//
//   first_token_ms   respond() called -> the LLM's first new token chosen (retrieval, prompt,
//                    prefill; issue 23's target: <= 300 ms on 2 threads)
//   first_piece_ms   respond() called -> the first streamed text (the opening naming the movie,
//                    which streams before the prefill)
//   reply_ms         respond() with exactly --tokens new tokens (the end of turn banned until then,
//                    max_new_tokens the same; target: <= 2000 ms for 60 tokens on 2 threads)
//   recommend_ms     the Recommender's turn before it (not part of the reply's latency above)
//
//   bench_llm_reply [--bundle B] [--llm FILE.gguf] [--threads 2] [--reps 5] [--tokens 60]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/default_bundle.hpp"
#include "ecr/recommender.hpp"
#include "ecr/responder.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The README's exchange: a user who loved Notting Hill and feels sad.
const char* kDialog = R"J({"turns": [
  {"role": "user", "text": "I loved Notting Hill, it is one of my favourite movies."},
  {"role": "system", "text": "Have you seen Sleepless in Seattle (1993)?"},
  {"role": "user", "text": "I already saw it and did not like it. I feel sad today."}]})J";

}  // namespace

int main(int argc, char** argv) {
  std::string bundle, llm;
  int reps = 5;
  std::size_t threads = 2;
  std::int64_t tokens = 60;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--bundle") bundle = value;
    else if (key == "--llm") llm = value;
    else if (key == "--reps") reps = std::stoi(value);
    else if (key == "--threads") threads = static_cast<std::size_t>(std::stoul(value));
    else if (key == "--tokens") tokens = std::stoll(value);
  }
  if (reps < 1 || tokens < 1) {
    std::fprintf(stderr, "usage: bench_llm_reply [--bundle B] [--llm FILE.gguf] [--threads 2] [--reps 5] [--tokens 60]\n");
    return 2;
  }
  if (bundle.empty()) bundle = ecr::default_bundle_path().string();
  if (llm.empty()) {
    const auto found = ecr::default_llm_path();
    if (!found) {
      std::fprintf(stderr, "bench_llm_reply: no LLM: pass --llm FILE.gguf, set ECR_LLM or run tools/fetch_llm.sh\n");
      return 2;
    }
    llm = found->string();
  }

  // The time the LLM chose its first token in the current run (the host's on_token sees each).
  std::optional<Clock::time_point> first_token;
  ecr::ResponderOptions options;
  options.threads = threads;
  options.generator = ecr::ReplyGenerator::llm;
  options.llm_path = llm;
  options.llm_generation.on_token = [&first_token](std::int32_t) {
    if (!first_token) first_token = Clock::now();
    return true;
  };
  const ecr::Engine engine = ecr::Engine::load(bundle, options);
  const ecr::Recommender recommender = ecr::Recommender::load(engine);
  const ecr::Responder responder = ecr::Responder::load(engine, options);
  ecr::ResponderOptions fixed = options;  // exactly `tokens` new tokens
  fixed.llm_generation.max_new_tokens = tokens;
  fixed.llm_generation.min_new_tokens = tokens;
  const ecr::Responder fixed_length = ecr::Responder::load(engine, fixed);

  const ecr::Dialog dialog = ecr::Dialog::parse(kDialog);
  std::vector<double> recommend_ms, first_token_ms, first_piece_ms, reply_ms;
  ecr::Response shown, timed;
  ecr::Recommendation rec;
  for (int i = 0; i <= reps; ++i) {  // run 0 warms up
    auto t0 = Clock::now();
    rec = recommender.recommend(dialog);
    const double r_ms = ms_between(t0, Clock::now());

    std::optional<Clock::time_point> first_piece;
    first_token.reset();
    t0 = Clock::now();
    shown = responder.respond(dialog, rec, [&first_piece](std::string_view) {
      if (!first_piece) first_piece = Clock::now();
      return true;
    });
    const double token_ms = ms_between(t0, first_token.value_or(Clock::now()));
    const double piece_ms = ms_between(t0, first_piece.value_or(Clock::now()));

    t0 = Clock::now();
    timed = fixed_length.respond(dialog, rec);
    const double full_ms = ms_between(t0, Clock::now());
    if (i == 0) continue;
    recommend_ms.push_back(r_ms);
    first_token_ms.push_back(token_ms);
    first_piece_ms.push_back(piece_ms);
    reply_ms.push_back(full_ms);
  }
  const nlohmann::json out = {{"threads", threads},
                              {"llm", llm},
                              {"prompt_tokens", shown.prompt_ids.size()},
                              {"first_token_ms", median(first_token_ms)},
                              {"first_piece_ms", median(first_piece_ms)},
                              {"reply_tokens", timed.reply_ids.size()},
                              {"reply_ms", median(reply_ms)},
                              {"recommend_ms", median(recommend_ms)},
                              {"first_token_ms_all", first_token_ms},
                              {"reply_ms_all", reply_ms},
                              {"reply", shown.text}};
  fmt::print("{}\n", out.dump(1));
  return 0;
}
