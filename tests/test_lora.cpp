// LoRA adapters over Llama GGUF models (include/ecr/models/lora.hpp) on tools/make_llama_fixture.py's
// random-weight models: PEFT adapter directories written by tools/make_lora_fixture.py (random
// lora_A / lora_B in HF layout) and converted by tools/convert_peft_lora.py, and GGUF LoRA files
// written directly, against tools/llama_reference.py with the adapters MERGED into the weights in
// float64 (from the PEFT directory itself for the converted ones: its own q/k row reordering, no
// converter code); scale 0; the CLI; hostile adapters and PEFT configs. Needs tools/setup_venv.sh
// (gguf, safetensors) and Debian's torch; without them these cases skip with a message.
#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ecr/io/gguf.hpp"
#include "ecr/lm/generate.hpp"
#include "ecr/models/llama.hpp"
#include "ecr/models/lora.hpp"
#include "gguf_support.hpp"
#include "support.hpp"

using namespace ecr;
using ecr::test::check_refused;
using ecr::test::logits_of;
using ecr::test::parse_ids;
using ecr::test::prompt_ids;
using ecr::test::run_command;
using ecr::test::run_tool;
using ecr::test::source_dir;
using ecr::test::temp_dir;
using ecr::test::venv_python;
namespace fs = std::filesystem;

namespace {

// f32 activations: what the float64 reference of the merged weights computes.
constexpr LlamaOptions kExact{nn::Activations::exact};

// A fresh folder per artifact (temp_dir empties what it returns).
fs::path dir(const std::string& name) { return temp_dir("lora_" + name); }

fs::path model_fixture(const std::string& name, const std::string& options) {
  const fs::path path = dir(name + "_model") / "model.gguf";
  run_tool(fmt::format("make_llama_fixture --out '{}' {}", path.string(), options));
  return path;
}

// A PEFT directory, converted against `base`; returns {directory, converted .gguf}.
std::pair<fs::path, fs::path> peft_fixture(const std::string& name, const fs::path& base, const std::string& options) {
  const fs::path folder = dir(name + "_peft"), peft = folder / "peft", out = folder / "adapter.gguf";
  run_tool(fmt::format("make_lora_fixture --peft '{}' {}", peft.string(), options));
  run_tool(fmt::format("convert_peft_lora --peft '{}' --base '{}' --out '{}'", peft.string(), base.string(),
                       out.string()));
  return {peft, out};
}

fs::path gguf_lora_fixture(const std::string& name, const std::string& options) {
  const fs::path path = dir(name + "_adapter") / "adapter.gguf";
  run_tool(fmt::format("make_lora_fixture --gguf '{}' {}", path.string(), options));
  return path;
}

bool have_torch_and_safetensors() {
  static const bool ok = run_command(fmt::format("'{}' -c 'import torch, safetensors' >/dev/null 2>&1",
                                                 venv_python().string())) == 0;
  return ok;
}

// The model with `lora` against the reference run with `merge` (its --peft / --lora arguments):
// logits of every prompt position within 1e-4 of the logit scale, the same 32 greedy tokens.
// Returns the logits. f32 activations: the reference's float64 products of the merged weights.
Tensor check_against_reference(const std::string& name, const fs::path& model_path, std::span<const LoraSpec> lora,
                               const std::string& merge) {
  CAPTURE(name);
  const LlamaModel model = LlamaModel::load(model_path, std::make_shared<ThreadPool>(2), lora, kExact);
  const std::vector<std::int32_t> prompt = prompt_ids(static_cast<std::int32_t>(name.size()));
  const fs::path ref_logits = dir(name + "_ref") / "ref_logits.npy";
  const std::vector<std::int32_t> ref_greedy = parse_ids(run_tool(
      fmt::format("llama_reference --gguf '{}' --ids '{}' --logits '{}' --greedy 32 {}", model_path.string(),
                  fmt::join(prompt, " "), ref_logits.string(), merge)));
  const Tensor expected = test::read_npy(ref_logits);
  const Tensor got = logits_of(model, prompt);
  REQUIRE(got.shape() == expected.shape());
  const float scale = nn::view(expected).cwiseAbs().maxCoeff();
  const float error = test::max_abs_diff(got, expected);
  MESSAGE(name << ": " << model.lora_terms() << " LoRA terms, max |logit| " << scale << ", max abs error " << error
               << " (" << error / scale << " of it)");
  CHECK(error <= 1e-4f * scale);
  lm::GenerateOptions greedy;
  greedy.max_new_tokens = 32;
  CHECK(lm::generate(model, prompt, greedy).tokens == ref_greedy);
  return got;
}

}  // namespace

TEST_CASE("lora: FILE[:SCALE] arguments") {
  CHECK(LoraSpec::parse("a.gguf").path == "a.gguf");
  CHECK(LoraSpec::parse("a.gguf").scale == 1.0f);
  CHECK(LoraSpec::parse("a.gguf:0.25").scale == 0.25f);
  CHECK(LoraSpec::parse("a.gguf:-1").scale == -1.0f);
  CHECK(LoraSpec::parse("dir:x/a.gguf").path == "dir:x/a.gguf");  // not a number after the ':'
  CHECK(LoraSpec::parse("dir:x/a.gguf:2").path == "dir:x/a.gguf");
  check_refused<InputError>([] { LoraSpec::parse(":2"); }, {"no file"});
  check_refused<InputError>([] { LoraSpec::parse(""); }, {"empty"});
  check_refused<InputError>([] { LoraSpec::parse("a.gguf:inf"); }, {"not a finite number"});
}

TEST_CASE("lora: a converted PEFT adapter equals the reference with the PEFT adapter merged") {
  ECR_REQUIRE_GGUF_PACKAGE();
  if (!have_torch_and_safetensors()) {
    MESSAGE("skipped: no torch and safetensors in " << venv_python() << " (run tools/setup_venv.sh)");
    return;
  }
  struct Case {
    const char* name;
    const char* model;
    const char* adapter;
    float scale;
  };
  const Case cases[] = {
      // every projection and the head, safetensors, over a Q8_0 model with its own output
      {"q8_0_all", "--type q8_0 --untied --seed 3", "--rank 8 --alpha 16 --lm-head --seed 2", 0.7f},
      // attention only, torch's .bin, over an f32 tied model
      {"f32_attn_bin", "--type f32 --seed 1", "--rank 4 --alpha 8 --targets q_proj,k_proj,v_proj --format bin", 1.0f},
      // the MLP and q/k at a rank above the head size, over Q4_1, a negative scale
      {"q4_1_mlp", "--type q4_1 --seed 5", "--rank 20 --alpha 7 --targets q_proj,k_proj,gate_proj,down_proj", -1.3f},
  };
  for (const Case& c : cases) {
    const fs::path model = model_fixture(c.name, c.model);
    const auto [peft, adapter] = peft_fixture(c.name, model, c.adapter);
    const LoraSpec lora[] = {{adapter, c.scale}};
    const Tensor with =
        check_against_reference(c.name, model, lora, fmt::format("--peft '{}:{}'", peft.string(), c.scale));
    // The adapter changed something (a test that an ignored adapter would pass proves nothing).
    const LlamaModel base = LlamaModel::load(model, std::make_shared<ThreadPool>(2), kExact);
    const std::vector<std::int32_t> prompt = prompt_ids(static_cast<std::int32_t>(std::string(c.name).size()));
    CHECK(test::max_abs_diff(with, logits_of(base, prompt)) > 1e-2f);
  }
}

TEST_CASE("lora: GGUF LoRA files written directly (f32, f16, q8_0), two at once, and scale 0") {
  ECR_REQUIRE_GGUF_PACKAGE();
  const fs::path model = model_fixture("direct", "--type q4_0 --untied --seed 7");
  const fs::path f32 = gguf_lora_fixture("direct_f32", "--rank 8 --alpha 16 --seed 1");
  const fs::path f16 = gguf_lora_fixture("direct_f16", "--type f16 --rank 6 --alpha 0 --seed 2");
  const fs::path q8 = gguf_lora_fixture("direct_q8_0", "--type q8_0 --rank 32 --alpha 8 --seed 3");
  {
    const LoraSpec one[] = {{f32, 0.8f}};
    check_against_reference("direct_f32", model, one, fmt::format("--lora '{}:0.8'", f32.string()));
  }
  {  // alpha 0: the scale alone (llama.cpp's rule)
    const LoraSpec one[] = {{f16, 0.5f}};
    check_against_reference("direct_f16", model, one, fmt::format("--lora '{}:0.5'", f16.string()));
  }
  {
    const LoraSpec two[] = {{q8, 1.5f}, {f32, -0.6f}};
    check_against_reference("direct_two", model, two,
                            fmt::format("--lora '{}:1.5' --lora '{}:-0.6'", q8.string(), f32.string()));
  }
  // Scale 0 is the model without the adapter, bit for bit.
  const LoraSpec zero[] = {{f32, 0.0f}};
  const LlamaModel with_zero = LlamaModel::load(model, std::make_shared<ThreadPool>(2), zero);
  const LlamaModel base = LlamaModel::load(model, std::make_shared<ThreadPool>(2));
  CHECK(with_zero.lora_terms() == 0);
  const std::vector<std::int32_t> prompt = prompt_ids(3);
  CHECK(test::max_abs_diff(logits_of(with_zero, prompt), logits_of(base, prompt)) == 0.0f);
}

TEST_CASE("lora: hostile adapter files are typed errors naming the file and tensor") {
  ECR_REQUIRE_GGUF_PACKAGE();
  const fs::path model = model_fixture("hostile", "--type q8_0 --seed 2");
  const gguf::File file = gguf::File::open(model);
  const auto load = [&](const std::string& broken) {
    const fs::path path = gguf_lora_fixture("hostile_" + broken, "--break " + broken);
    return [&file, path] {
      const LoraSpec one[] = {{path, 1.0f}};
      LlamaModel::load(file, nullptr, one);
    };
  };
  check_refused<FormatError>(load("not-adapter"), {"adapter.gguf", "general.type is 'model'", "expected 'adapter'"});
  check_refused<ConfigError>(load("arch"), {"adapter.gguf", "general.architecture is 'gpt2'"});
  check_refused<ConfigError>(load("unknown"), {"blk.7.attn_q.weight", "no matrix of that name"});
  check_refused<ShapeError>(load("shape"), {"blk.0.attn_q.weight.lora_a", "[48, 8]", "[64, 64]"});
  check_refused<ShapeError>(load("rank"), {"blk.0.attn_q.weight.lora_b", "rank"});
  check_refused<FormatError>(load("missing-b"), {"blk.1.ffn_up.weight.lora_a", "no 'blk.1.ffn_up.weight.lora_b'"});
  check_refused<FormatError>(load("suffix"), {"blk.0.attn_q.weight.lora_c", "neither"});
  check_refused<ConfigError>(load("embd"), {"token_embd.weight", "not supported"});
  check_refused<ConfigError>(load("alora"), {"aLoRA"});
  check_refused<FormatError>(load("nan"), {"blk.1.attn_k.weight.lora_b", "NaN"});
  // A model file is not an adapter; an output pair over a tied model has no matrix to adapt.
  check_refused<FormatError>([&] {
    const LoraSpec self[] = {{model, 1.0f}};
    LlamaModel::load(file, nullptr, self);
  }, {"model.gguf", "no key 'general.type'", "not a LoRA adapter"});
  check_refused<IoError>([&] {
    const LoraSpec missing[] = {{model.parent_path() / "absent.gguf", 1.0f}};
    LlamaModel::load(file, nullptr, missing);
  }, {"absent.gguf"});
}

TEST_CASE("lora: the converter refuses what a GGUF LoRA cannot hold") {
  ECR_REQUIRE_GGUF_PACKAGE();
  if (!have_torch_and_safetensors()) {
    MESSAGE("skipped: no torch and safetensors in " << venv_python());
    return;
  }
  const fs::path model = model_fixture("refuse", "--type f32 --seed 1");
  const auto refused = [&](const std::string& name, const std::string& options, const std::string& needle) {
    CAPTURE(name);
    const fs::path folder = dir("refuse_" + name), peft = folder / "peft";
    run_tool(fmt::format("make_lora_fixture --peft '{}' {}", peft.string(), options));
    std::string out;
    CHECK(run_command(fmt::format("PYTHONPATH='{}' '{}' -m tools.convert_peft_lora --peft '{}' --base '{}' --out "
                                  "'{}' 2>&1",
                                  source_dir().string(), venv_python().string(), peft.string(), model.string(),
                                  (folder / "out.gguf").string()),
                      &out) != 0);
    CHECK_MESSAGE(out.find(needle) != std::string::npos, out);
  };
  refused("dora", "--config-extra '{\"use_dora\": true}'", "use_dora");
  refused("rank_pattern", "--config-extra '{\"rank_pattern\": {\"q_proj\": 4}}'", "rank_pattern");
  refused("modules_to_save", "--config-extra '{\"modules_to_save\": [\"lm_head\"]}'", "modules_to_save");
  refused("peft_type", "--config-extra '{\"peft_type\": \"IA3\"}'", "peft_type");
  refused("rank", "--rank 8 --config-extra '{\"r\": 4}'", "expected [4, 64]");
  refused("tied_head", "--lm-head", "no tensor output.weight");
  refused("embed_target", "--config-extra '{\"target_modules\": [\"q_proj\", \"embed_tokens\"]}'",
          "['embed_tokens'] are not modules this converter maps");
  refused("untargeted", "--config-extra '{\"target_modules\": [\"q_proj\"]}'",
          "_proj is not in adapter_config.json's target_modules");
}

TEST_CASE("cli: ecr generate --gguf --lora FILE:SCALE (repeatable) equals the reference") {
  ECR_REQUIRE_GGUF_PACKAGE();
  const fs::path model = model_fixture("cli", "--type q8_0 --untied --seed 5");
  const fs::path a = gguf_lora_fixture("cli_a", "--rank 8 --alpha 16 --seed 4");
  const fs::path b = gguf_lora_fixture("cli_b", "--type f16 --rank 4 --alpha 4 --seed 5");
  const std::string ids = fmt::format("{}", fmt::join(prompt_ids(9), " "));
  const std::string expected = run_tool(fmt::format("llama_reference --gguf '{}' --ids '{}' --greedy 20 --lora "
                                                    "'{}:0.5' --lora '{}'",
                                                    model.string(), ids, a.string(), b.string()));
  std::string out;
  REQUIRE(run_command(fmt::format("'{}' generate --gguf '{}' --prompt-ids '{}' --max-tokens 20 --lora '{}:0.5' --lora "
                                  "'{}'",
                                  test::cli_path().string(), model.string(), ids, a.string(), b.string()),
                      &out) == 0);
  std::replace(out.begin(), out.end(), ',', ' ');
  CHECK(parse_ids(out) == parse_ids(expected));

  CHECK(run_command(fmt::format("'{}' generate --gguf '{}' --prompt-ids 1 --lora '{}' 2>&1", test::cli_path().string(),
                                model.string(), model.string()),
                    &out) == 1);
  CHECK(out.find("not a LoRA adapter") != std::string::npos);
}
