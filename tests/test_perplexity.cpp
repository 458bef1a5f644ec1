// `ecr perplexity` on a random GPT-2 of 128 positions over the first ReDial test dialogs, some
// longer than a window: f32 against the loss the torch reference computes from its own logits
// (tools.reference gpt2-nll), int8 (cast at load) against the loss of the logits `ecr forward`
// writes for the converter's int8 bundle; then the shipped model's reply decoder, where int8
// must cost little; and the mistakes a user can make.
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/dialog.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/io/component.hpp"
#include "ecr/text/tokenizer.hpp"
#include "model_fixtures.hpp"

using namespace ecr;
using namespace ecr::test;
using nlohmann::json;

namespace {

constexpr int kPositions = 128;
constexpr int kDialogs = 4;

fs::path test_dialogs() { return shared_data() / "redial" / "test_dialogs.jsonl"; }

// The first kDialogs dialogs of the test split.
fs::path first_dialogs(const fs::path& dir) {
  std::ifstream in(test_dialogs());
  std::ofstream out(dir / "dialogs.jsonl");
  std::string line;
  for (int d = 0; d < kDialogs && std::getline(in, line); ++d) out << line << "\n";
  return dir / "dialogs.jsonl";
}

// What the command scores of each dialog, as its header says: <|endoftext|> and the context text.
std::vector<std::vector<std::int32_t>> dialog_ids(const Bundle& bundle, const fs::path& dialogs) {
  const auto tokenizer = make_tokenizer(read_component(bundle, "lm").tokenizer_spec());
  std::ifstream in(dialogs);
  std::vector<std::vector<std::int32_t>> out;
  for (std::string line; std::getline(in, line);)
    out.push_back(tokenizer->encode("<|endoftext|>" + context_text(Dialog::from_redial(json::parse(line)), "<|endoftext|>")));
  return out;
}

// The dialogs cut into windows of kPositions tokens that overlap by one.
std::vector<std::vector<std::int32_t>> windows(const std::vector<std::vector<std::int32_t>>& dialogs) {
  std::vector<std::vector<std::int32_t>> out;
  for (const auto& ids : dialogs) {
    for (std::size_t start = 0; start + 1 < ids.size(); start += kPositions - 1)
      out.emplace_back(ids.begin() + static_cast<std::ptrdiff_t>(start),
                       ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), start + kPositions)));
  }
  return out;
}

// sum over t >= 1 of -ln softmax(logits[t - 1])[ids[t]], in double.
double nll_of(const Tensor& logits, const std::vector<std::int32_t>& ids) {
  REQUIRE(logits.dim(0) == static_cast<std::int64_t>(ids.size()));
  const std::int64_t vocab = logits.dim(1);
  double sum = 0;
  for (std::size_t t = 0; t + 1 < ids.size(); ++t) {
    const float* row = logits.data<float>() + static_cast<std::int64_t>(t) * vocab;
    double top = row[0], z = 0;
    for (std::int64_t v = 1; v < vocab; ++v) top = std::max(top, static_cast<double>(row[v]));
    for (std::int64_t v = 0; v < vocab; ++v) z += std::exp(row[v] - top);
    sum += top + std::log(z) - row[ids[t + 1]];
  }
  return sum;
}

json run_perplexity(const std::string& options, const fs::path& dir) {
  std::string log;
  const int rc = run_command(fmt::format("{} perplexity {} --json {} 2>&1", cli_path().string(), options,
                                         (dir / "perplexity.json").string()),
                             &log);
  REQUIRE_MESSAGE(rc == 0, log);
  MESSAGE(log);
  return json::parse(file_text(dir / "perplexity.json"));
}

}  // namespace

TEST_CASE("ecr perplexity: f32 matches the torch loss, int8 the loss of ecr forward's int8 logits") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Gpt2Fixture f32 = gpt2_fixture(2, 4, 64, kPositions);
  const Gpt2Fixture int8 = gpt2_fixture(2, 4, 64, kPositions, 0, "int8");
  const fs::path dir = temp_dir("perplexity");
  const fs::path dialogs = first_dialogs(dir);
  const json report = run_perplexity(fmt::format("--bundle {} --component lm --dialogs {} --sample 0 --dtype f32,int8",
                                                 f32.bundle.string(), dialogs.string()),
                                     dir);
  REQUIRE(report["results"].size() == 2);
  const json& got_f32 = report["results"][0];
  const json& got_int8 = report["results"][1];
  CHECK(got_f32["weights"] == "f32");
  CHECK(got_int8["weights"] == "int8");
  CHECK(report["dialogs"] == kDialogs);

  const auto ids = dialog_ids(Bundle::open(f32.bundle), dialogs);
  const auto ws = windows(ids);
  REQUIRE(ws.size() > static_cast<std::size_t>(kDialogs));  // some dialog needs more than one window
  std::size_t tokens = 0;
  for (const auto& w : ws) tokens += w.size() - 1;
  CHECK(report["tokens"] == tokens);

  // f32: the torch reference's log-softmax of its own logits.
  std::string ids_args;
  for (const auto& w : ws) ids_args += " --ids " + join_ids(w);
  REQUIRE(run_python(fmt::format("reference gpt2-nll --checkpoint {}{} --out {}", f32.checkpoint.string(), ids_args,
                                 (dir / "nll.json").string()),
                     dir / "reference.log") == 0);
  const json torch = json::parse(file_text(dir / "nll.json"));
  double torch_nll = 0;
  for (std::size_t i = 0; i < ws.size(); ++i) {
    CHECK(torch["tokens"][i] == ws[i].size() - 1);
    torch_nll += torch["nll"][i].get<double>();
  }
  const double torch_mean = torch_nll / static_cast<double>(tokens);
  MESSAGE(fmt::format("random 2x64 GPT-2, {} tokens in {} windows: mean NLL f32 {:.6f} (torch {:.6f}), int8 {:.6f}",
                      tokens, ws.size(), got_f32["mean_nll"].get<double>(), torch_mean,
                      got_int8["mean_nll"].get<double>()));
  CHECK(got_f32["mean_nll"].get<double>() == doctest::Approx(torch_mean).epsilon(1e-5));
  CHECK(got_f32["perplexity"].get<double>() == doctest::Approx(std::exp(torch_mean)).epsilon(1e-4));

  // int8: the converter's int8 bundle through `ecr forward`, window by window.
  double forward_nll = 0;
  for (std::size_t i = 0; i < ws.size(); ++i) {
    const fs::path npy = dir / "logits.npy";
    REQUIRE(run_command(fmt::format("{} forward --bundle {} --component lm --ids {} --logits --out {}",
                                    cli_path().string(), int8.bundle.string(), join_ids(ws[i]), npy.string())) == 0);
    forward_nll += nll_of(read_npy(npy), ws[i]);
  }
  const double forward_mean = forward_nll / static_cast<double>(tokens);
  CHECK(std::isfinite(got_int8["perplexity"].get<double>()));
  CHECK(got_int8["mean_nll"].get<double>() == doctest::Approx(forward_mean).epsilon(1e-6));
  CHECK(got_int8["perplexity"].get<double>() == doctest::Approx(std::exp(forward_mean)).epsilon(1e-5));
  CHECK(got_int8["mean_nll"] != got_f32["mean_nll"]);  // the cast happened

  // --sample 2 of 4 dialogs: the first and the third.
  const json sampled = run_perplexity(
      fmt::format("--bundle {} --component lm --dialogs {} --sample 2 --dtype f32", f32.bundle.string(), dialogs.string()),
      dir);
  CHECK(sampled["dialogs"] == 2);
  CHECK(sampled["tokens"] == ids[0].size() - 1 + ids[2].size() - 1);
}

TEST_CASE("ecr perplexity: the shipped reply decoder predicts ReDial, and int8 costs it under 1%") {
  ECR_REQUIRE_SHARED_DATA();
  const fs::path shipped = source_dir() / "models" / "ecr-redial-small.ecr";
  REQUIRE(fs::exists(shipped));
  const json report = run_perplexity(fmt::format("--bundle {} --dialogs {} --sample 20 --dtype stored,int8",
                                                 shipped.string(), test_dialogs().string()),
                                     temp_dir("perplexity_shipped"));
  const double stored = report["results"][0]["perplexity"].get<double>();
  const double quantized = report["results"][1]["perplexity"].get<double>();
  CHECK(report["component"] == "generator");
  CHECK(report["results"][0]["weights"] == "f16");
  // Uniform over the 50,259 tokens would be 50,259; the model card reports 179 on the whole split.
  CHECK(stored < 500);
  CHECK(std::abs(quantized / stored - 1) < 0.01);
}

TEST_CASE("ecr perplexity: the shipped reply decoder on q8_0 and q4_0 blocks predicts ReDial about as well") {
  ECR_REQUIRE_SHARED_DATA();
  const fs::path shipped = source_dir() / "models" / "ecr-redial-small.ecr";
  REQUIRE(fs::exists(shipped));
  const json report = run_perplexity(fmt::format("--bundle {} --dialogs {} --sample 20 --dtype stored,q8_0,q4_0",
                                                 shipped.string(), test_dialogs().string()),
                                     temp_dir("perplexity_blocks"));
  const double stored = report["results"][0]["perplexity"].get<double>();
  const double q8_0 = report["results"][1]["perplexity"].get<double>();
  const double q4_0 = report["results"][2]["perplexity"].get<double>();
  CHECK(report["results"][1]["weights"] == "q8_0");
  CHECK(report["results"][2]["weights"] == "q4_0");
  CHECK(q8_0 != stored);  // the cast happened
  // Measured on these 20 dialogs: f16 171.79, q8_0 171.74, q4_0 167.61.
  CHECK(std::abs(q8_0 / stored - 1) < 0.01);
  CHECK(std::abs(q4_0 / stored - 1) < 0.05);
}

TEST_CASE("ecr perplexity: a bad weight type, sample size or component is an error naming it") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Gpt2Fixture fx = gpt2_fixture(2, 4, 64, kPositions);
  const Gpt2Fixture classifier = gpt2_fixture(2, 4, 64, kPositions, 3);
  const auto fails = [&](const std::string& options, const std::string& expected) {
    std::string out;
    CHECK(run_command(fmt::format("{} perplexity --dialogs {} {}", cli_path().string(), test_dialogs().string(), options),
                      &out) == 1);
    CHECK_MESSAGE(out.find(expected) != std::string::npos, out);
  };
  const std::string lm = fmt::format("--bundle {} --component lm", fx.bundle.string());
  fails(lm + " --dtype f32,f64", "'f64'");
  fails(lm + " --dtype i32", "'i32'");
  fails(lm + " --sample -2", "--sample");
  fails(fmt::format("--bundle {} --component emotion", classifier.bundle.string()), "gpt2_classifier");
  fails(fmt::format("--bundle {} --component nope", fx.bundle.string()), "nope");
}
