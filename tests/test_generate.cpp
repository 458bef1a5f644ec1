// Decoding: greedy and no-repeat-n-gram output against the torch reference's decoder (which
// recomputes the whole sequence every step, so this also checks the KV cache over 40 steps),
// the logits processors on hand-made logits, sampling, stopping, batched generation against
// generate() alone, and the CLI.
#include <cmath>
#include <array>
#include <functional>
#include <memory>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "ecr/io/bundle.hpp"
#include "ecr/lm/generate.hpp"
#include "model_fixtures.hpp"

using namespace ecr;
using namespace ecr::lm;
using namespace ecr::test;

namespace {

constexpr std::int32_t kEos = 50256;
const float kInf = std::numeric_limits<float>::infinity();

Gpt2Fixture tiny() { return gpt2_fixture(2, 4, 64, 128); }

std::vector<std::int32_t> torch_generate(const Gpt2Fixture& f, std::span<const std::int32_t> prompt,
                                         const Tensor& prefix, int max_new, int no_repeat, const std::string& tag) {
  const fs::path dir = temp_dir("generate_ref_" + tag);
  std::string args = fmt::format(
      "reference gpt2-generate --checkpoint {} --ids {} --max-new-tokens {} --no-repeat-ngram {} --eos {} "
      "--out {}/tokens.json",
      f.checkpoint.string(), join_ids(prompt), max_new, no_repeat, kEos, dir.string());
  if (prefix.defined()) {
    write_npy(dir / "prefix.npy", prefix);
    args += fmt::format(" --prefix {}/prefix.npy", dir.string());
  }
  REQUIRE(run_python(args) == 0);
  return nlohmann::json::parse(file_text(dir / "tokens.json"))["generated"].get<std::vector<std::int32_t>>();
}

GenerateOptions greedy(std::int64_t max_new, std::int64_t no_repeat = 0) {
  GenerateOptions o;
  o.max_new_tokens = max_new;
  o.no_repeat_ngram_size = no_repeat;
  o.stop_tokens = {kEos};
  return o;
}

}  // namespace

TEST_CASE("generate: 40 greedy tokens match torch") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Gpt2Fixture f = tiny();
  const Bundle bundle = Bundle::open(f.bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const auto prompt = random_ids(9, 1);
  const Generation g = generate(model, prompt, greedy(40));
  CHECK(g.tokens == torch_generate(f, prompt, {}, 40, 0, "greedy"));
  CHECK(g.tokens.size() == 40);
  CHECK(g.reason == StopReason::max_new_tokens);
  // A random model with a tied head mostly repeats its last token; banning every seen token
  // (n = 1) makes each step's choice the arg max over the others, a sharper comparison.
  const Generation fresh = generate(model, prompt, greedy(40, 1));
  CHECK(fresh.tokens == torch_generate(f, prompt, {}, 40, 1, "greedy_fresh"));
  CHECK(std::set<std::int32_t>(fresh.tokens.begin(), fresh.tokens.end()).size() == 40);
}

TEST_CASE("generate: no_repeat_ngram_size 3 with a prefix matches torch") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Gpt2Fixture f = tiny();
  const Bundle bundle = Bundle::open(f.bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const auto prompt = random_ids(6, 2);
  const Tensor prefix = random_prefix(model.config(), 5, 3);
  const Generation g = generate(model, prompt, greedy(40, 3), prefix);
  CHECK(g.tokens == torch_generate(f, prompt, prefix, 40, 3, "ngram"));
  // No trigram of prompt + output occurs twice.
  std::vector<std::int32_t> all = prompt;
  all.insert(all.end(), g.tokens.begin(), g.tokens.end());
  std::set<std::vector<std::int32_t>> seen;
  for (std::size_t i = 0; i + 3 <= all.size(); ++i) CHECK(seen.insert({all.begin() + i, all.begin() + i + 3}).second);
}

TEST_CASE("generate: repetition penalty follows HF") {
  std::vector<float> logits = {2.0f, -2.0f, 1.0f, 0.5f};
  const std::vector<std::int32_t> context = {0, 1, 1};
  apply_repetition_penalty(logits, context, 2.0f);
  CHECK(logits == std::vector<float>{1.0f, -4.0f, 1.0f, 0.5f});
  apply_repetition_penalty(logits, context, 1.0f);
  CHECK(logits == std::vector<float>{1.0f, -4.0f, 1.0f, 0.5f});
}

TEST_CASE("generate: no-repeat n-grams follow HF") {
  auto banned = [](std::vector<std::int32_t> context, std::int64_t n) {
    std::vector<float> logits(6, 0.0f);
    ban_repeated_ngrams(logits, context, n);
    std::vector<int> out;
    for (std::size_t i = 0; i < logits.size(); ++i)
      if (logits[i] == -kInf) out.push_back(static_cast<int>(i));
    return out;
  };
  CHECK(banned({1, 2, 3, 1, 2}, 3) == std::vector<int>{3});
  CHECK(banned({1, 2, 3, 1, 2, 4, 1, 2}, 3) == std::vector<int>{3, 4});
  CHECK(banned({1, 2, 1}, 2) == std::vector<int>{2});
  CHECK(banned({5, 1, 5}, 1) == std::vector<int>{1, 5});
  CHECK(banned({1}, 3).empty());  // too short to complete any trigram
  CHECK(banned({1, 2, 3, 1, 2}, 0).empty());
}

TEST_CASE("generate: top-k and top-p keep what HF keeps") {
  GenerateOptions o;
  o.temperature = 1.0f;
  o.top_k = 2;
  std::vector<float> logits = {1.0f, 5.0f, 3.0f, 5.0f, 2.0f};
  warp_for_sampling(logits, o);
  CHECK(logits == std::vector<float>{-kInf, 5.0f, -kInf, 5.0f, -kInf});
  o.top_k = 1;  // ties with the k-th survive
  logits = {1.0f, 3.0f, 3.0f, 2.0f};
  warp_for_sampling(logits, o);
  CHECK(logits == std::vector<float>{-kInf, 3.0f, 3.0f, -kInf});

  o.top_k = 0;
  const std::vector<float> probs = {0.5f, 0.3f, 0.15f, 0.05f};
  auto nucleus = [&](float p) {
    o.top_p = p;
    std::vector<float> l;
    for (float q : probs) l.push_back(std::log(q));
    warp_for_sampling(l, o);
    std::vector<int> kept;
    for (std::size_t i = 0; i < l.size(); ++i)
      if (l[i] != -kInf) kept.push_back(static_cast<int>(i));
    return kept;
  };
  CHECK(nucleus(0.75f) == std::vector<int>{0, 1});
  CHECK(nucleus(0.9f) == std::vector<int>{0, 1, 2});
  CHECK(nucleus(0.1f) == std::vector<int>{0});  // the most likely token always stays
  CHECK(nucleus(1.0f) == std::vector<int>{0, 1, 2, 3});

  o.top_p = 1.0f;
  o.temperature = 2.0f;
  logits = {2.0f, 4.0f};
  warp_for_sampling(logits, o);
  CHECK(logits == std::vector<float>{1.0f, 2.0f});
}

TEST_CASE("generate: greedy takes the first arg max, sampling is seeded and follows the distribution") {
  std::mt19937_64 rng(0);
  GenerateOptions o;
  std::vector<float> logits = {0.0f, 3.0f, 3.0f, 1.0f};
  CHECK(choose_token(logits, o, rng) == 1);

  o.temperature = 1.0f;
  const std::vector<float> base = {std::log(0.7f), std::log(0.2f), std::log(0.1f)};
  std::array<int, 3> counts{};
  std::mt19937_64 a(42), b(42);
  for (int i = 0; i < 20000; ++i) {
    std::vector<float> x = base, y = base;
    const std::int32_t t = choose_token(x, o, a);
    REQUIRE(t == choose_token(y, o, b));
    ++counts[static_cast<std::size_t>(t)];
  }
  CHECK(std::abs(counts[0] / 20000.0 - 0.7) < 0.02);
  CHECK(std::abs(counts[1] / 20000.0 - 0.2) < 0.02);
  CHECK(std::abs(counts[2] / 20000.0 - 0.1) < 0.02);

  o.top_k = 1;  // sampling from one token is greedy
  for (int i = 0; i < 20; ++i) {
    std::vector<float> x = base;
    CHECK(choose_token(x, o, a) == 0);
  }
}

TEST_CASE("generate: options are validated") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle bundle = Bundle::open(tiny().bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const std::vector<std::int32_t> prompt = {1, 2, 3};
  GenerateOptions o;
  o.temperature = -1.0f;
  CHECK_THROWS_AS(generate(model, prompt, o), InputError);
  o = {};
  o.top_p = 0.0f;
  CHECK_THROWS_AS(generate(model, prompt, o), InputError);
  o = {};
  o.max_new_tokens = 128;  // no room left for the prompt in 128 positions
  CHECK_THROWS_AS(generate(model, prompt, o), InputError);
  CHECK_THROWS_AS(generate(model, std::vector<std::int32_t>{}, GenerateOptions{}), InputError);
}

TEST_CASE("generate: stop tokens, the streaming callback and max_new_tokens end decoding") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle bundle = Bundle::open(tiny().bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const auto prompt = random_ids(5, 4);
  const Generation full = generate(model, prompt, greedy(20, 2));
  REQUIRE(full.tokens.size() == 20);

  GenerateOptions o = greedy(20, 2);
  o.stop_tokens = {full.tokens[6]};  // no_repeat 2 and a fresh bigram: check where it first appears
  const auto first = std::find(full.tokens.begin(), full.tokens.end(), full.tokens[6]) - full.tokens.begin();
  const Generation stopped = generate(model, prompt, o);
  CHECK(stopped.reason == StopReason::stop_token);
  CHECK(stopped.tokens == std::vector<std::int32_t>(full.tokens.begin(), full.tokens.begin() + first + 1));

  o = greedy(20, 2);
  std::vector<std::int32_t> streamed;
  o.on_token = [&](std::int32_t t) {
    streamed.push_back(t);
    return streamed.size() < 4;
  };
  const Generation cut = generate(model, prompt, o);
  CHECK(cut.reason == StopReason::callback);
  CHECK(cut.tokens == streamed);
  CHECK(cut.tokens == std::vector<std::int32_t>(full.tokens.begin(), full.tokens.begin() + 4));
}

TEST_CASE("generate: sampling is reproducible by seed and independent of the thread count") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle bundle = Bundle::open(tiny().bundle);
  const Gpt2Model one = Gpt2Model::load(bundle, "lm", std::make_shared<ThreadPool>(1));
  const Gpt2Model two = Gpt2Model::load(bundle, "lm", std::make_shared<ThreadPool>(2));
  const auto prompt = random_ids(7, 5);
  GenerateOptions o;
  o.max_new_tokens = 15;
  o.temperature = 0.8f;
  o.top_k = 50;
  o.top_p = 0.9f;
  o.repetition_penalty = 1.3f;
  o.seed = 123;
  const Generation a = generate(one, prompt, o);
  CHECK(a.tokens == generate(two, prompt, o).tokens);
  CHECK(a.tokens == generate(one, prompt, o).tokens);
  o.seed = 124;
  CHECK(a.tokens != generate(one, prompt, o).tokens);
}

TEST_CASE("generate: a prompt longer than the context keeps its newest tokens") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle bundle = Bundle::open(tiny().bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const auto prompt = random_ids(150, 6);
  const Generation g = generate(model, prompt, greedy(10));
  CHECK(g.tokens.size() == 10);
  CHECK(g.tokens == generate(model, std::span(prompt).last(118), greedy(10)).tokens);
}

namespace {

// Stops after `count` tokens, recording what it streamed; a fresh one per run.
std::function<bool(std::int32_t)> stop_after(int count, std::shared_ptr<std::vector<std::int32_t>> streamed) {
  return [count, streamed](std::int32_t t) {
    streamed->push_back(t);
    return static_cast<int>(streamed->size()) < count;
  };
}

}  // namespace

TEST_CASE("generate_batch: every sequence equals generate alone (processors, prefixes, seeds, stops)") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle bundle = Bundle::open(tiny().bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const std::vector<std::vector<std::int32_t>> prompts = {random_ids(3, 20), random_ids(9, 21), random_ids(1, 22),
                                                          random_ids(6, 23), random_ids(4, 24)};
  const std::vector<Tensor> prefixes = {random_prefix(model.config(), 4, 25), Tensor(),
                                        random_prefix(model.config(), 7, 26), random_prefix(model.config(), 2, 27),
                                        Tensor()};
  // 0: greedy, 3-gram ban and repetition penalty; 1: greedy, a stop token met early; 2: seeded
  // sampling; 3: seeded sampling, the callback stops it after 3; 4: greedy, 2-gram ban, longest.
  std::vector<GenerateOptions> options(5);
  options[0] = greedy(12, 3);
  options[0].repetition_penalty = 1.3f;
  options[1] = greedy(20);
  options[1].stop_tokens = {generate(model, prompts[1], greedy(20), prefixes[1]).tokens[4]};
  options[2].max_new_tokens = 9;
  options[2].temperature = 0.9f;
  options[2].top_k = 50;
  options[2].top_p = 0.9f;
  options[2].seed = 11;
  options[3] = options[2];
  options[3].max_new_tokens = 15;
  options[3].seed = 12;
  options[3].repetition_penalty = 1.2f;
  options[4] = greedy(24, 2);

  const auto alone_streamed = std::make_shared<std::vector<std::int32_t>>();
  const auto batch_streamed = std::make_shared<std::vector<std::int32_t>>();
  std::vector<Generation> expected;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    GenerateOptions o = options[i];
    if (i == 3) o.on_token = stop_after(3, alone_streamed);
    expected.push_back(generate(model, prompts[i], o, prefixes[i]));
  }
  // The cases this test is about really happen: early stops of both kinds and a full budget.
  REQUIRE(expected[1].reason == StopReason::stop_token);
  REQUIRE(expected[1].tokens.size() < 20);
  REQUIRE(expected[3].reason == StopReason::callback);
  REQUIRE(expected[3].tokens.size() == 3);
  REQUIRE(expected[4].reason == StopReason::max_new_tokens);
  REQUIRE(expected[4].tokens.size() == 24);

  std::vector<GenerateRequest> requests;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    requests.push_back({prompts[i], prefixes[i], options[i]});
    if (i == 3) requests.back().options.on_token = stop_after(3, batch_streamed);
  }
  const std::vector<Generation> got = generate_batch(model, requests);
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("sequence " << i);
    CHECK(got[i].tokens == expected[i].tokens);
    CHECK(got[i].reason == expected[i].reason);
  }
  CHECK(*batch_streamed == got[3].tokens);
  CHECK(*batch_streamed == *alone_streamed);
}

TEST_CASE("generate_batch: shared options, with and without prefixes, and bad batches") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle bundle = Bundle::open(tiny().bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const std::vector<std::vector<std::int32_t>> prompts = {random_ids(5, 30), random_ids(2, 31), random_ids(8, 32)};
  const std::vector<Tensor> prefixes = {random_prefix(model.config(), 3, 33), random_prefix(model.config(), 6, 34),
                                        Tensor()};
  const GenerateOptions o = greedy(16, 3);
  const auto without = generate_batch(model, prompts, o);
  const auto with = generate_batch(model, prompts, o, prefixes);
  REQUIRE(without.size() == 3);
  REQUIRE(with.size() == 3);
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    INFO("sequence " << i);
    CHECK(without[i].tokens == generate(model, prompts[i], o).tokens);
    CHECK(with[i].tokens == generate(model, prompts[i], o, prefixes[i]).tokens);
  }
  CHECK(with[0].tokens != without[0].tokens);  // the prefix reaches the tokens

  // A sequence with no budget gets nothing and leaves the others alone; an empty batch is empty.
  std::vector<GenerateRequest> requests = {{prompts[0], {}, o}, {prompts[1], {}, greedy(0)}, {prompts[2], {}, o}};
  const auto mixed = generate_batch(model, requests);
  CHECK(mixed[0].tokens == without[0].tokens);
  CHECK(mixed[1].tokens.empty());
  CHECK(mixed[2].tokens == without[2].tokens);
  CHECK(generate_batch(model, std::span<const GenerateRequest>()).empty());

  CHECK_THROWS_AS(generate_batch(model, prompts, o, std::span(prefixes).first(2)), InputError);
  requests[1].prompt = {};
  CHECK_THROWS_AS(generate_batch(model, requests), InputError);
  requests[1] = {prompts[1], Tensor::zeros(DType::f32, {2, 5}), o};
  CHECK_THROWS_AS(generate_batch(model, requests), ShapeError);
  requests[1] = {prompts[1], {}, o};
  requests[1].options.top_p = 0.0f;
  CHECK_THROWS_AS(generate_batch(model, requests), InputError);
}

TEST_CASE("cli: ecr generate prints the tokens the library generates") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Gpt2Fixture f = tiny();
  const Bundle bundle = Bundle::open(f.bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const auto prompt = random_ids(6, 7);
  const Generation g = generate(model, prompt, greedy(8, 3));
  std::string out;
  REQUIRE(run_command(fmt::format("{} generate --bundle {} --component lm --ids {} --max-new-tokens 8 "
                                  "--no-repeat-ngram 3 --json",
                                  cli_path().string(), f.bundle.string(), join_ids(prompt)),
                      &out) == 0);
  const auto j = nlohmann::json::parse(out);
  CHECK(j["generated"].get<std::vector<std::int32_t>>() == g.tokens);
  CHECK(j["text"].is_string());

  REQUIRE(run_command(fmt::format("{} generate --bundle {} --component lm --text 'Hello there' --max-new-tokens 4 "
                                  "--temperature 1 --seed 3 --stream",
                                  cli_path().string(), f.bundle.string()),
                      &out) == 0);
  CHECK(!out.empty());
  CHECK(run_command(fmt::format("{} generate --bundle {} --component lm --max-new-tokens 4", cli_path().string(),
                                f.bundle.string()),
                    &out) != 0);
}
