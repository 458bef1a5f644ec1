// The Llama architecture from GGUF files (include/ecr/models/llama.hpp) on random-weight fixtures
// written by tools/make_llama_fixture.py in every type ecr computes on, against
// tools/llama_reference.py (float64 NumPy on the gguf package's dequantized tensors, no ecr code):
// logits of a 16-token prompt, greedy continuations, prefill-then-decode, batches, thread counts;
// and the loader's errors on broken files. The fixtures need tools/setup_venv.sh (build/venv with
// gguf); without it these cases skip with a message.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ecr/io/gguf.hpp"
#include "ecr/lm/generate.hpp"
#include "ecr/models/llama.hpp"
#include "gguf_support.hpp"
#include "support.hpp"

using namespace ecr;
using ecr::test::check_refused;
using ecr::test::logits_of;
using ecr::test::parse_ids;
using ecr::test::prompt_ids;
using ecr::test::run_command;
using ecr::test::run_tool;
using ecr::test::smollm2;
using ecr::test::source_dir;
using ecr::test::temp_dir;
using ecr::test::venv_python;
namespace fs = std::filesystem;

namespace {

fs::path fixture(const std::string& name, const std::string& options) {
  const fs::path path = temp_dir("llama_" + name) / (name + ".gguf");
  run_tool(fmt::format("make_llama_fixture --out '{}' {}", path.string(), options));
  return path;
}

// The float64 reference computes the dequantized weights' exact product: f32 activations.
constexpr LlamaOptions kExact{nn::Activations::exact};

struct Variant {
  const char* name;
  const char* options;
};
const Variant kVariants[] = {
    {"f32", "--type f32"},
    {"f16", "--type f16"},
    {"bf16", "--type bf16"},
    {"q8_0", "--type q8_0"},
    {"q4_0", "--type q4_0"},
    {"q4_1", "--type q4_1"},
    {"q5_0", "--type q5_0"},
    {"q5_1_untied", "--type q5_1 --untied --seed 4"},
    {"f32_untied", "--type f32 --untied --seed 1"},
    {"q8_0_untied_rope_scaled", "--type q8_0 --untied --rope-scale 4 --seed 2"},
    {"q4_0_rope_scaled", "--type q4_0 --rope-scale 2 --seed 3"},
};

}  // namespace

TEST_CASE("llama: every fixture type equals the NumPy reference (logits, decode, greedy, batch, threads)") {
  ECR_REQUIRE_GGUF_PACKAGE();
  for (const Variant& variant : kVariants) {
    const std::string name = variant.name;
    CAPTURE(name);
    const fs::path path = fixture(variant.name, variant.options);
    const gguf::File file = gguf::File::open(path);
    const LlamaModel model = LlamaModel::load(file, std::make_shared<ThreadPool>(1), kExact);
    CHECK(model.tied_output() == (std::string(variant.options).find("--untied") == std::string::npos));
    const std::vector<std::int32_t> prompt = prompt_ids(static_cast<std::int32_t>(variant.name[1]));

    // Logits of every position of the prompt.
    const fs::path ref_logits = path.parent_path() / "ref_logits.npy";
    const std::vector<std::int32_t> ref_greedy = parse_ids(run_tool(fmt::format(
        "llama_reference --gguf '{}' --ids '{}' --logits '{}' --greedy 32", path.string(), fmt::join(prompt, " "),
        ref_logits.string())));
    const Tensor expected = test::read_npy(ref_logits);
    const Tensor got = logits_of(model, prompt);
    REQUIRE(got.shape() == expected.shape());
    const float scale = nn::view(expected).cwiseAbs().maxCoeff();
    const float error = test::max_abs_diff(got, expected);
    MESSAGE(name << ": max |logit| " << scale << ", max abs error " << error << " ("
                         << error / scale << " of it)");
    CHECK(error <= 1e-4f * scale);

    // Prefill of 10 tokens, then one token at a time: the same logits as the one-shot prefill.
    {
      LlamaState state = model.start(1);
      const std::span<const std::int32_t> head[] = {std::span(prompt).first(10)};
      const Tensor first = model.forward(state, head, true);
      CHECK(test::max_abs_diff(first, got.rows(0, 10)) <= 1e-5f * scale);
      for (std::int64_t i = 10; i < 16; ++i) {
        const std::span<const std::int32_t> one[] = {std::span(prompt).subspan(static_cast<std::size_t>(i), 1)};
        const Tensor step = model.forward_last(state, one);
        CHECK(test::max_abs_diff(step, got.rows(i, 1)) <= 1e-5f * scale);
      }
      CHECK(state.tokens(0) == 16);
    }

    // Greedy decoding through the lm layer: the reference's 32 tokens.
    lm::GenerateOptions greedy;
    greedy.max_new_tokens = 32;
    const lm::Generation generated = lm::generate(model, prompt, greedy);
    CHECK(generated.tokens == ref_greedy);

    // A batch of 3 different prompts (different lengths too) equals 3 single runs.
    const std::vector<std::vector<std::int32_t>> prompts = {
        prompt, std::vector<std::int32_t>(prompt.begin() + 3, prompt.end()), {7, 250, 3}};
    lm::GenerateOptions sampled;
    sampled.max_new_tokens = 12;
    sampled.temperature = 0.8f;
    sampled.top_k = 40;
    sampled.top_p = 0.9f;
    sampled.repetition_penalty = 1.3f;
    sampled.seed = 11;
    for (const lm::GenerateOptions& options : {greedy, sampled}) {
      const std::vector<lm::Generation> batch = lm::generate_batch(model, prompts, options);
      REQUIRE(batch.size() == 3);
      for (std::size_t i = 0; i < 3; ++i) CHECK(batch[i].tokens == lm::generate(model, prompts[i], options).tokens);
    }

    // One thread and two: the same bits.
    const LlamaModel two = LlamaModel::load(file, std::make_shared<ThreadPool>(2), kExact);
    CHECK(test::max_abs_diff(logits_of(two, prompt), got) == 0.0f);
    CHECK(lm::generate(two, prompt, sampled).tokens == lm::generate(model, prompt, sampled).tokens);
  }
}

// llama.cpp's 8-bit activations (the default) against the reference emulating their rounding.
// What is left is f32 against float64 arithmetic, about 1e-7 apart, which now and then moves an
// activation across a rounding boundary of its q8 block (one quant step: 1/127 of the block's
// largest value). So each position's logits are within 1e-5 of the scale of the reference's, or
// within twice what the reference itself moves when its activations are scaled by 1 + 2e-7
// (--jitter, the witness that a boundary is that close); the greedy tokens are the reference's,
// or the jittered reference's.
TEST_CASE("llama: 8-bit activations equal the reference emulating ggml's q8 rounding") {
  ECR_REQUIRE_GGUF_PACKAGE();
  for (const Variant& variant : kVariants) {
    const std::string name = variant.name;
    if (name.rfind("q", 0) != 0) continue;  // the blocks of 32: q8_0, q4_0, q4_1, q5_0, q5_1
    CAPTURE(name);
    const fs::path path = fixture(variant.name, variant.options);
    const LlamaModel model = LlamaModel::load(path, std::make_shared<ThreadPool>(2));
    const std::vector<std::int32_t> prompt = prompt_ids(static_cast<std::int32_t>(variant.name[1]));
    const fs::path dir = path.parent_path();
    const auto reference = [&](const std::string& options, const fs::path& logits) {
      return parse_ids(run_tool(fmt::format("llama_reference --gguf '{}' --ids '{}' --logits '{}' {}", path.string(),
                                        fmt::join(prompt, " "), logits.string(), options)));
    };
    const auto greedy_ref = reference("--activations q8 --greedy 32", dir / "q8.npy");
    const auto greedy_jittered = reference("--activations q8 --jitter 2e-7 --greedy 32", dir / "jittered.npy");
    reference("", dir / "exact.npy");
    const Tensor expected = test::read_npy(dir / "q8.npy"), jittered = test::read_npy(dir / "jittered.npy");
    const Tensor exact = test::read_npy(dir / "exact.npy");
    const Tensor got = logits_of(model, prompt);
    REQUIRE(got.shape() == expected.shape());
    const float scale = nn::view(expected).cwiseAbs().maxCoeff();
    int tight = 0;
    for (std::int64_t p = 0; p < got.dim(0); ++p) {
      CAPTURE(p);
      const float error = test::max_abs_diff(got.rows(p, 1), expected.rows(p, 1));
      const float witness = test::max_abs_diff(jittered.rows(p, 1), expected.rows(p, 1));
      tight += error <= 1e-5f * scale;
      CHECK(error <= std::max(1e-5f * scale, 2 * witness));
    }
    const float error = test::max_abs_diff(got, expected), rounding = test::max_abs_diff(exact, expected);
    MESSAGE(name << ": max |logit| " << scale << ", max abs error " << error << " (" << error / scale << " of it), "
                 << tight << " of " << got.dim(0) << " positions within 1e-5 of it; the q8 rounding itself moves "
                 << "the logits by " << rounding);
    CHECK(tight >= got.dim(0) - 2);
    CHECK(error < rounding);
    lm::GenerateOptions greedy;
    greedy.max_new_tokens = 32;
    const auto tokens = lm::generate(model, prompt, greedy).tokens;
    CHECK((tokens == greedy_ref || tokens == greedy_jittered));
  }
}

TEST_CASE("llama: the weights stay in the file's map, and the hyper-parameters come from its metadata") {
  ECR_REQUIRE_GGUF_PACKAGE();
  const fs::path path = fixture("meta", "--type q4_0 --rope-scale 4");
  const LlamaModel model = LlamaModel::load(path);
  const LlamaConfig& c = model.config();
  CHECK(c.n_layer == 2);
  CHECK(c.n_embd == 64);
  CHECK(c.n_ff == 128);
  CHECK(c.n_head == 4);
  CHECK(c.n_head_kv == 2);
  CHECK(c.n_ctx == 64);
  CHECK(c.vocab_size == 300);
  CHECK(c.rope.dims == 16);
  CHECK(c.rope.base == 500000.0f);
  CHECK(c.rope.factor == 4.0f);
  CHECK(model.context_length() == 64);
  CHECK(model.vocab_size() == 300);
}

TEST_CASE("llama: a position past context_length, a token outside the vocabulary and a prefix are InputErrors") {
  ECR_REQUIRE_GGUF_PACKAGE();
  const LlamaModel model = LlamaModel::load(fixture("limits", "--type f32"));
  LlamaState state = model.start(1);
  const std::vector<std::int32_t> full(64, 5), more = {1};
  const std::span<const std::int32_t> all[] = {full};
  model.forward(state, all, false);
  const std::span<const std::int32_t> next[] = {more};
  check_refused<InputError>([&] { model.forward(state, next, false); }, {"position 64", "context_length is 64"});

  LlamaState fresh = model.start(1);
  const std::vector<std::int32_t> outside = {1, 300};
  const std::span<const std::int32_t> bad[] = {outside};
  check_refused<InputError>([&] { model.forward(fresh, bad, false); }, {"token id", "300"});

  const Tensor prefix = Tensor::zeros(DType::f32, {1, 8}, "ecr prompt");
  check_refused<InputError>([&] { model.new_state(std::span(&prefix, 1), 4); }, {"no prefix", "ecr prompt"});
}

TEST_CASE("llama: broken files are typed errors naming what is wrong") {
  ECR_REQUIRE_GGUF_PACKAGE();
  const auto load = [](const char* broken) {
    return [path = fixture(std::string("broken_") + broken, fmt::format("--type q8_0 --break {}", broken))] {
      LlamaModel::load(path);
    };
  };
  check_refused<ShapeError>(load("shape"), {"blk.1.attn_k.weight", "dims [64, 64]", "expected [64, 32]"});
  check_refused<FormatError>(load("missing-tensor"), {"no tensor 'blk.1.ffn_up.weight'"});
  check_refused<FormatError>(load("missing-key"), {"no key 'llama.feed_forward_length'"});
  check_refused<ConfigError>(load("heads"), {"llama.attention.head_count 5", "llama.embedding_length 64"});
  check_refused<ConfigError>(load("zero-blocks"), {"llama.block_count' is 0", "expected an integer in [1, "});
  check_refused<ConfigError>(load("kv-heads"), {"llama.attention.head_count_kv 3", "head_count 4"});
  check_refused<ConfigError>(load("type"), {"blk.0.ffn_up.weight", "IQ4_NL"});
  check_refused<ConfigError>(load("arch"), {"general.architecture is 'gpt2'"});
}

// SmolLM2-135M-Instruct as published (30 blocks, width 576, 9 heads sharing 3 key/value heads,
// tied output; Q4_1 matrices, a Q8_0 token_embd): greedy continuations of fixed prompts (two
// ChatML requests and a plain sentence) equal the reference's for 16 tokens.
TEST_CASE("llama: SmolLM2-135M-Instruct (Q4_1) greedy tokens equal the reference") {
  ECR_REQUIRE_GGUF_PACKAGE();
  const fs::path path = smollm2();
  if (!fs::exists(path)) {
    MESSAGE("skipped: " << path << " is absent (tools/setup_venv.sh downloads it)");
    return;
  }
  const std::vector<std::string> prompts = {
      "1 4093 198 7306 346 3730 253 1123 23399 7704 47 2 198 1 520 9531 198",
      "1 4093 198 57 5732 378 25343 30 1812 868 339 4126 1867 47 2 198 1 520 9531 198",
      "504 1450 7704 282 511 655 314",
  };
  std::string ids_args;
  for (const auto& p : prompts) ids_args += fmt::format(" --ids '{}'", p);
  std::istringstream expected(
      run_tool(fmt::format("llama_reference --gguf '{}'{} --greedy 16", path.string(), ids_args)));
  const LlamaModel model = LlamaModel::load(path, nullptr, kExact);
  CHECK(model.config().n_layer == 30);
  CHECK(model.tied_output());
  lm::GenerateOptions greedy;
  greedy.max_new_tokens = 16;
  for (const auto& p : prompts) {
    std::string line;
    REQUIRE(std::getline(expected, line));
    CAPTURE(p);
    CHECK(lm::generate(model, parse_ids(p), greedy).tokens == parse_ids(line));
  }
}

TEST_CASE("cli: ecr generate --gguf decodes a Llama file from token ids") {
  ECR_REQUIRE_GGUF_PACKAGE();
  const fs::path path = fixture("cli", "--type q8_0 --untied --seed 5");
  const std::vector<std::int32_t> prompt = prompt_ids(9);
  const std::string ids = fmt::format("{}", fmt::join(prompt, " "));
  const std::string expected =
      run_tool(fmt::format("llama_reference --gguf '{}' --ids '{}' --greedy 20", path.string(), ids));
  std::string out;
  REQUIRE(run_command(fmt::format("'{}' generate --gguf '{}' --prompt-ids '{}' --max-tokens 20 --threads 2 --exact",
                                  test::cli_path().string(), path.string(), ids),
                      &out) == 0);
  std::string commas = out;
  std::replace(commas.begin(), commas.end(), ',', ' ');
  CHECK(parse_ids(commas) == parse_ids(expected));

  // Sampling options reach the sampler: a seed gives the same tokens twice, through --json.
  const std::string sampled = fmt::format(
      "'{}' generate --gguf '{}' --prompt-ids '{}' --max-tokens 10 --temperature 1.5 --top-k 50 --top-p 0.95 "
      "--repeat-penalty 1.2 --seed 4 --json",
      test::cli_path().string(), path.string(), ids);
  std::string first, second;
  REQUIRE(run_command(sampled, &first) == 0);
  REQUIRE(run_command(sampled, &second) == 0);
  CHECK(first == second);
  CHECK(first.find("\"generated\":[") != std::string::npos);

  CHECK(run_command(fmt::format("'{}' generate --gguf '{}' --text hello 2>&1", test::cli_path().string(),
                                path.string()),
                    &out) == 1);
  CHECK(out.find("--prompt-ids") != std::string::npos);
  const fs::path broken = fixture("cli_broken", "--type q8_0 --break kv-heads");
  CHECK(run_command(fmt::format("'{}' generate --gguf '{}' --prompt-ids 1 2>&1", test::cli_path().string(),
                                broken.string()),
                    &out) == 1);
  CHECK(out.find("head_count_kv 3") != std::string::npos);
}
