// Prompt processing and generation speed of a Llama GGUF model, measured as llama.cpp's
// llama-bench measures them (tools/bench_vs_llamacpp.sh runs both on one file):
//
//   bench_llama --gguf FILE [--threads N] [--prompt P] [--gen G] [--reps R] [--lora FILE[:SCALE]]... [--exact] [--json]
//
// --lora (repeatable) applies LoRA adapters as `ecr generate --lora` does; the JSON then has
// "lora" (the files) and "lora_terms" (the adapted matrices), to compare with a run without.
// pp: P prompt tokens fed in one forward pass to a fresh state; tg: G tokens fed one at a time
// to a fresh state (each a forward pass with its logits). Each is run once to warm up, then R
// times; the rates are tokens / mean seconds. The token ids are fixed pseudo-random ones: speed
// does not depend on them.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ecr/core/error.hpp"
#include "ecr/models/llama.hpp"
#include "ecr/nn/linear.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_llama --gguf FILE [--threads N] [--prompt P] [--gen G] [--reps R] [--lora FILE[:SCALE]]... "
               "[--exact] [--json]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  int threads = 0, prompt = 128, gen = 64, reps = 5;
  bool json = false;
  std::vector<std::string> lora_args;
  ecr::LlamaOptions options;  // --exact: f32 activations for the block types (default: ggml's 8-bit ones)
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--json") {
      json = true;
      continue;
    }
    if (key == "--exact") {
      options.activations = ecr::nn::Activations::exact;
      continue;
    }
    if (i + 1 >= argc) return usage();
    const std::string value = argv[++i];
    if (key == "--gguf") path = value;
    else if (key == "--threads") threads = std::atoi(value.c_str());
    else if (key == "--prompt") prompt = std::atoi(value.c_str());
    else if (key == "--gen") gen = std::atoi(value.c_str());
    else if (key == "--reps") reps = std::atoi(value.c_str());
    else if (key == "--lora") lora_args.push_back(value);
    else return usage();
  }
  if (path.empty() || threads < 0 || prompt < 1 || gen < 1 || reps < 1) return usage();

  try {
    const auto pool = std::make_shared<ecr::ThreadPool>(threads);
    std::vector<ecr::LoraSpec> lora;
    for (const auto& arg : lora_args) lora.push_back(ecr::LoraSpec::parse(arg));
    const ecr::LlamaModel model = ecr::LlamaModel::load(path, pool, lora, options);
    std::vector<std::int32_t> ids(static_cast<std::size_t>(std::max(prompt, gen)));
    std::uint32_t x = 12345;
    for (auto& id : ids) {
      x = x * 1664525u + 1013904223u;
      id = static_cast<std::int32_t>((x >> 8) % static_cast<std::uint32_t>(model.vocab_size()));
    }

    const auto prompt_pass = [&] {
      ecr::LlamaState state = model.start(1, prompt);
      const std::span<const std::int32_t> tokens[] = {std::span(ids).first(static_cast<std::size_t>(prompt))};
      const auto start = Clock::now();
      model.forward_last(state, tokens);
      return seconds_since(start);
    };
    const auto generation = [&] {
      ecr::LlamaState state = model.start(1, gen);
      const auto start = Clock::now();
      for (int i = 0; i < gen; ++i) {
        const std::span<const std::int32_t> tokens[] = {std::span(ids).subspan(static_cast<std::size_t>(i), 1)};
        model.forward_last(state, tokens);
      }
      return seconds_since(start);
    };
    prompt_pass();
    generation();
    double pp = 0, tg = 0;
    for (int r = 0; r < reps; ++r) pp += prompt_pass();
    for (int r = 0; r < reps; ++r) tg += generation();
    const double pp_tok_s = prompt * reps / pp, tg_tok_s = gen * reps / tg;
    std::vector<std::string> quoted;
    for (const auto& arg : lora_args) quoted.push_back(fmt::format("\"{}\"", arg));
    if (json)
      fmt::print(R"({{"gguf": "{}", "threads": {}, "prompt": {}, "gen": {}, "reps": {}, "isa": "{}", "activations": "{}", )"
                 R"("lora": [{}], "lora_terms": {}, "pp_tok_s": {:.2f}, "tg_tok_s": {:.2f}}})"
                 "\n",
                 path, pool->size(), prompt, gen, reps, ecr::nn::linear_kernel_level(),
                 options.activations == ecr::nn::Activations::q8 ? "q8" : "exact", fmt::join(quoted, ", "),
                 model.lora_terms(), pp_tok_s, tg_tok_s);
    else
      fmt::print("{}: {} threads, pp{} {:.2f} tok/s, tg{} {:.2f} tok/s ({} kernels, {} LoRA terms)\n", path,
                 pool->size(), prompt, pp_tok_s, gen, tg_tok_s, ecr::nn::linear_kernel_level(), model.lora_terms());
  } catch (const ecr::Error& e) {
    std::fprintf(stderr, "bench_llama: %s\n", e.what());
    return 1;
  }
  return 0;
}
