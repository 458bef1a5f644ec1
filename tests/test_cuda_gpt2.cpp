// The device GPT-2 (cuda::Gpt2Device / Gpt2Session) against the CPU Gpt2Model on tiny random
// bundles: logits and hidden states at every position with and without a prefix prompt, the KV
// cache fed token by token, greedy generation (CUDA-graph replays) token for token with the CPU,
// seeded sampling, batched generation against lone sessions and the CPU batch, half-precision
// storage, and typed errors.
//
// The bundles are written in-process with BundleWriter (the same tensor names and layouts the
// converter writes), so these tests need neither ../shared/data nor torch: the CPU model, which
// test_gpt2.cpp checks against torch, is the reference here.
#include "ecr/device/cuda.hpp"
#include "support.hpp"

#ifdef ECR_WITH_CUDA

#include <functional>
#include <memory>

#include "cuda_support.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/lm/generate.hpp"
#include "ecr/models/gpt2.hpp"
#include "ecr/models/gpt2_cuda.hpp"

using namespace ecr;
using namespace ecr::lm;
using namespace ecr::test;

namespace {

struct TinyConfig {
  int layers, heads, embd, positions, vocab;
  const char* activation;
};

// A random GPT2LMHeadModel in bundle form (component "lm", Conv1D weights stored (in, out)).
Bundle tiny_gpt2(const TinyConfig& c, unsigned seed) {
  const nlohmann::json config{{"n_layer", c.layers},     {"n_head", c.heads},     {"n_embd", c.embd},
                              {"n_positions", c.positions}, {"vocab_size", c.vocab}, {"n_inner", nullptr},
                              {"activation_function", c.activation}, {"layer_norm_epsilon", 1e-5}};
  BundleWriter writer(nlohmann::json{{"ecr_bundle", 1}, {"components", {{"lm", {{"type", "gpt2"}, {"config", config}}}}}});
  std::mt19937 rng(seed);
  const auto add = [&](const std::string& name, Shape shape, float scale, float center = 0.0f) {
    writer.add("lm/transformer." + name, random_tensor(std::move(shape), rng, scale, center, name));
  };
  const std::int64_t d = c.embd, inner = 4 * d;
  const auto init = [](std::int64_t in) { return 1.7f / std::sqrt(static_cast<float>(in)); };
  add("wte.weight", {c.vocab, d}, 0.2f);
  add("wpe.weight", {c.positions, d}, 0.1f);
  for (int l = 0; l < c.layers; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    add(h + "ln_1.weight", {d}, 0.2f, 1.0f);
    add(h + "ln_1.bias", {d}, 0.1f);
    add(h + "attn.c_attn.weight", {d, 3 * d}, init(d));
    add(h + "attn.c_attn.bias", {3 * d}, 0.1f);
    add(h + "attn.c_proj.weight", {d, d}, init(d));
    add(h + "attn.c_proj.bias", {d}, 0.1f);
    add(h + "ln_2.weight", {d}, 0.2f, 1.0f);
    add(h + "ln_2.bias", {d}, 0.1f);
    add(h + "mlp.c_fc.weight", {d, inner}, init(d));
    add(h + "mlp.c_fc.bias", {inner}, 0.1f);
    add(h + "mlp.c_proj.weight", {inner, d}, init(inner));
    add(h + "mlp.c_proj.bias", {d}, 0.1f);
  }
  add("ln_f.weight", {d}, 0.2f, 1.0f);
  add("ln_f.bias", {d}, 0.1f);
  return Bundle::from_bytes(writer.bytes(), "tiny-gpt2.ecr");
}

// Head dim 16 with the tanh GELU, and head dim 80 (not a multiple of 32) with the erf GELU.
const TinyConfig kConfigs[] = {{2, 4, 64, 64, 300, "gelu_new"}, {2, 2, 160, 64, 300, "gelu"}};

Tensor random_prefix(const Gpt2Config& c, std::int64_t rows, unsigned seed) {
  std::mt19937 rng(seed);
  return random_tensor({rows, c.prefix_width()}, rng, 0.8f, 0.0f, "prefix");
}

std::vector<float> last_row(const Tensor& logits) {
  const Tensor row = logits.row(logits.dim(0) - 1).to_f32();
  return {row.span<float>().begin(), row.span<float>().end()};
}

}  // namespace

TEST_CASE("cuda gpt2: device forward matches Gpt2Model at every position (prefix 0 and 10)") {
  ECR_REQUIRE_GPU();
  for (const TinyConfig& tc : kConfigs) {
    const Bundle bundle = tiny_gpt2(tc, 21);
    const Gpt2Model cpu = Gpt2Model::load(bundle, "lm");
    const cuda::Gpt2Device gpu = cuda::Gpt2Device::load(bundle, "lm");
    const Gpt2Config& c = cpu.config();
    for (const std::int64_t prefix_rows : {0, 10}) {
      INFO("n_embd " << tc.embd << ", prefix " << prefix_rows);
      const Tensor prefix = prefix_rows ? random_prefix(c, prefix_rows, 22) : Tensor();
      const auto ids = random_ids(23, tc.vocab, 23);
      const Gpt2Output expected = cpu.forward(ids, prefix, Logits::all);
      cuda::Gpt2Session session = gpu.start(prefix_rows + 40, prefix);
      const cuda::Gpt2DeviceOutput out = session.forward(ids, Logits::all);
      ECR_CHECK_CLOSE(cuda::download(out.hidden, session.stream()), expected.hidden, 1e-4f);
      const Tensor logits = cuda::download(out.logits, session.stream());
      ECR_CHECK_CLOSE(logits, expected.logits, 1e-4f);
      check_same_top(last_row(logits), last_row(expected.logits), 50, 1e-4f);
      CHECK(session.tokens() == 23);

      // The KV cache fed 5 tokens, then one at a time (the split-K decode kernel): the last
      // position's logits at every step.
      Gpt2State state = cpu.start(prefix);
      cuda::Gpt2Session stepped = gpu.start(prefix_rows + 40, prefix);
      for (std::size_t at = 0; at < ids.size();) {
        const std::size_t n = at == 0 ? 5 : 1;
        const auto chunk = std::span(ids).subspan(at, n);
        const Tensor want = cpu.forward(state, chunk, Logits::last).logits.clone();
        const cuda::Gpt2DeviceOutput got = stepped.forward(chunk, Logits::last);
        ECR_CHECK_CLOSE(cuda::download(got.logits, stepped.stream()), want, 1e-4f);
        at += n;
      }
    }
  }
}

TEST_CASE("cuda gpt2: greedy generation equals the CPU's tokens (graph replays, processors, stops)") {
  ECR_REQUIRE_GPU();
  for (const TinyConfig& tc : kConfigs) {
    const Bundle bundle = tiny_gpt2(tc, 31);
    const Gpt2Model cpu = Gpt2Model::load(bundle, "lm");
    const cuda::Gpt2Device gpu = cuda::Gpt2Device::load(bundle, "lm");
    const Tensor prefix = random_prefix(cpu.config(), 10, 32);
    const auto prompt = random_ids(9, tc.vocab, 33);
    struct Variant {
      const char* name;
      float penalty;
      std::int64_t ngram;
      std::size_t prompt_length;
    };
    for (const Variant v : {Variant{"plain", 1.0f, 0, 9}, Variant{"penalty + 2-gram ban", 1.3f, 2, 9},
                            Variant{"one-token prompt", 1.0f, 0, 1}}) {
      INFO("n_embd " << tc.embd << ", " << v.name);
      GenerateOptions options;
      options.max_new_tokens = 24;
      options.repetition_penalty = v.penalty;
      options.no_repeat_ngram_size = v.ngram;
      const auto p = std::span(prompt).first(v.prompt_length);
      const Generation expected = generate(cpu, p, options, prefix);
      cuda::Gpt2Session session = gpu.start(10 + 9 + 24, prefix);
      const Generation got = session.generate(p, options);
      CHECK(got.tokens == expected.tokens);
      CHECK(got.reason == expected.reason);
      // A second session replays its own graph to the same tokens.
      cuda::Gpt2Session again = gpu.start(10 + 9 + 24, prefix);
      CHECK(again.generate(p, options).tokens == expected.tokens);
    }
    // Stop tokens and the callback end generation where the CPU ends it.
    GenerateOptions options;
    options.max_new_tokens = 24;
    const Generation full = generate(cpu, prompt, options, prefix);
    options.stop_tokens = {full.tokens[6]};
    const Generation stopped = generate(cpu, prompt, options, prefix);
    cuda::Gpt2Session s1 = gpu.start(10 + 9 + 24, prefix);
    const Generation got_stopped = s1.generate(prompt, options);
    CHECK(got_stopped.tokens == stopped.tokens);
    CHECK(got_stopped.reason == StopReason::stop_token);
    options.stop_tokens.clear();
    int seen = 0;
    options.on_token = [&](std::int32_t) { return ++seen < 3; };
    cuda::Gpt2Session s2 = gpu.start(10 + 9 + 24, prefix);
    const Generation got_callback = s2.generate(prompt, options);
    CHECK(got_callback.reason == StopReason::callback);
    CHECK(got_callback.tokens == std::vector<std::int32_t>(full.tokens.begin(), full.tokens.begin() + 3));
  }
}

TEST_CASE("cuda gpt2: seeded device sampling is reproducible") {
  ECR_REQUIRE_GPU();
  const TinyConfig tc = kConfigs[0];
  const Bundle bundle = tiny_gpt2(tc, 41);
  const cuda::Gpt2Device gpu = cuda::Gpt2Device::load(bundle, "lm");
  const auto prompt = random_ids(6, tc.vocab, 42);
  GenerateOptions options;
  options.max_new_tokens = 30;
  options.temperature = 0.9f;
  options.top_k = 40;
  options.top_p = 0.95f;
  options.seed = 7;
  const auto run = [&](const GenerateOptions& o) { return gpu.start(64, {}).generate(prompt, o).tokens; };
  const auto first = run(options);
  REQUIRE(first.size() == 30);
  for (const std::int32_t t : first) CHECK((t >= 0 && t < tc.vocab));
  CHECK(run(options) == first);
  options.seed = 8;
  CHECK(run(options) != first);
}

TEST_CASE("cuda gpt2: batched generation equals one-at-a-time device decoding and the CPU batch") {
  ECR_REQUIRE_GPU();
  for (const TinyConfig& tc : kConfigs) {
    INFO("n_embd " << tc.embd);
    const Bundle bundle = tiny_gpt2(tc, 71);
    const Gpt2Model cpu = Gpt2Model::load(bundle, "lm");
    const cuda::Gpt2Device gpu = cuda::Gpt2Device::load(bundle, "lm");
    const std::vector<std::vector<std::int32_t>> prompts = {random_ids(9, tc.vocab, 72), random_ids(3, tc.vocab, 73),
                                                            random_ids(1, tc.vocab, 74), random_ids(6, tc.vocab, 75)};
    const std::vector<Tensor> prefixes = {random_prefix(cpu.config(), 10, 76), Tensor(),
                                          random_prefix(cpu.config(), 4, 77), Tensor()};
    // A lone session sized as generate_batch sizes each sequence's cache (so its decode split is the same).
    const auto alone = [&](std::size_t i, const GenerateOptions& o) {
      const std::int64_t rows = (prefixes[i].defined() ? prefixes[i].dim(0) : 0) +
                                static_cast<std::int64_t>(prompts[i].size()) + o.max_new_tokens;
      return gpu.start(rows, prefixes[i]).generate(prompts[i], o);
    };
    // 0: greedy, penalty and 2-gram ban; 1: greedy, a stop token met early; 2: seeded sampling;
    // 3: greedy, the callback stops it after 4.
    std::vector<GenerateOptions> options(4);
    options[0].max_new_tokens = 24;
    options[0].repetition_penalty = 1.3f;
    options[0].no_repeat_ngram_size = 2;
    options[1].max_new_tokens = 20;
    options[1].stop_tokens = {alone(1, options[1]).tokens[5]};
    options[2].max_new_tokens = 16;
    options[2].temperature = 0.9f;
    options[2].top_k = 40;
    options[2].top_p = 0.95f;
    options[2].seed = 7;
    options[3].max_new_tokens = 18;
    const auto stop_after_4 = [] {
      auto seen = std::make_shared<int>(0);
      return std::function<bool(std::int32_t)>([seen](std::int32_t) { return ++*seen < 4; });
    };
    const auto requests = [&] {
      std::vector<GenerateRequest> r;
      for (std::size_t i = 0; i < prompts.size(); ++i) r.push_back({prompts[i], prefixes[i], options[i]});
      r[3].options.on_token = stop_after_4();
      return r;
    };

    std::vector<Generation> expected;
    for (const GenerateRequest& r : requests()) {
      const std::size_t i = expected.size();
      expected.push_back(alone(i, r.options));
    }
    REQUIRE(expected[1].reason == StopReason::stop_token);
    REQUIRE(expected[1].tokens.size() < 20);
    REQUIRE(expected[3].reason == StopReason::callback);
    REQUIRE(expected[0].tokens.size() == 24);

    const std::vector<Generation> got = gpu.generate_batch(requests());
    const std::vector<Generation> on_cpu = generate_batch(cpu, requests());
    REQUIRE(got.size() == 4);
    for (std::size_t i = 0; i < got.size(); ++i) {
      INFO("sequence " << i);
      CHECK(got[i].tokens == expected[i].tokens);
      CHECK(got[i].reason == expected[i].reason);
      if (options[i].temperature == 0.0f) {  // device sampling is not the CPU's stream
        CHECK(got[i].tokens == on_cpu[i].tokens);
        CHECK(got[i].reason == on_cpu[i].reason);
      }
    }
    // Again, to the same tokens (fresh buffers, nothing carried over).
    const std::vector<Generation> again = gpu.generate_batch(requests());
    for (std::size_t i = 0; i < again.size(); ++i) CHECK(again[i].tokens == got[i].tokens);

    auto bad = requests();
    bad[2].prompt = std::span<const std::int32_t>();
    CHECK_THROWS_AS(gpu.generate_batch(bad), InputError);
    const std::vector<std::int32_t> outside{1, tc.vocab};
    bad = requests();
    bad[1].prompt = outside;
    CHECK_THROWS_AS(gpu.generate_batch(bad), InputError);
    bad = requests();
    bad[0].prefix = Tensor::zeros(DType::f32, {3, 7});
    CHECK_THROWS_AS(gpu.generate_batch(bad), ShapeError);
  }
}

TEST_CASE("cuda gpt2: f16 and bf16 storage stay close to the f32 CPU model") {
  ECR_REQUIRE_GPU();
  for (const TinyConfig& tc : kConfigs) {
    const Bundle bundle = tiny_gpt2(tc, 51);
    const Gpt2Model cpu = Gpt2Model::load(bundle, "lm");
    const Tensor prefix = random_prefix(cpu.config(), 10, 52);
    const auto ids = random_ids(17, tc.vocab, 53);
    const Gpt2Output expected = cpu.forward(ids, prefix, Logits::all);
    for (const DType st : {DType::f16, DType::bf16})
      for (const cuda::GemmMath math : {cuda::GemmMath::exact, cuda::GemmMath::tensor_cores}) {
        INFO("n_embd " << tc.embd << ", storage " << name_of(st) << ", tensor cores "
                       << (math == cuda::GemmMath::tensor_cores));
        // Every activation, weight and cached key is rounded to the storage type; bf16 keeps 8
        // mantissa bits, so the whole model's bf16 bound is twice the per-kernel 1e-2.
        const float tol = st == DType::f16 ? 1e-2f : 2e-2f;
        const cuda::Gpt2Device gpu = cuda::Gpt2Device::load(bundle, "lm", {st, math});
        cuda::Gpt2Session session = gpu.start(40, prefix);
        const cuda::Gpt2DeviceOutput out = session.forward(ids, Logits::all);
        const Tensor logits = cuda::download(out.logits, session.stream());
        ECR_CHECK_CLOSE(logits, expected.logits, tol);
        check_same_top(last_row(logits), last_row(expected.logits), 50, tol);
      }
  }
}

TEST_CASE("cuda gpt2: bad input gives typed errors") {
  ECR_REQUIRE_GPU();
  const TinyConfig tc = kConfigs[0];
  const Bundle bundle = tiny_gpt2(tc, 61);
  const cuda::Gpt2Device gpu = cuda::Gpt2Device::load(bundle, "lm");
  CHECK_THROWS_AS(cuda::Gpt2Device::load(bundle, "missing"), ConfigError);
  CHECK_THROWS_AS(cuda::Gpt2Device::load(bundle, "lm", {DType::i32, cuda::GemmMath::exact}), ShapeError);
  CHECK_THROWS_AS(gpu.start(10, Tensor::zeros(DType::f32, {3, 7})), ShapeError);  // wrong prefix width
  CHECK_THROWS_AS(gpu.start(3, random_prefix(gpu.config(), 3, 62)), InputError);  // no room after the prefix
  cuda::Gpt2Session session = gpu.start(8);
  const std::vector<std::int32_t> bad{1, tc.vocab};
  CHECK_THROWS_AS(session.forward(bad), InputError);
  const auto nine = random_ids(9, tc.vocab, 63);
  CHECK_THROWS_AS(session.forward(nine), InputError);  // 9 tokens in 8 rows
  CHECK(session.tokens() == 0);                        // nothing was fed
  CHECK_THROWS_AS(session.generate({}, GenerateOptions{}), InputError);
  GenerateOptions too_long;
  too_long.max_new_tokens = 8;
  CHECK_THROWS_AS(session.generate(std::span(nine).first(2), too_long), InputError);  // 2 + 8 > 8 rows
  GenerateOptions negative;
  negative.top_p = 0.0f;
  CHECK_THROWS_AS(session.generate(std::span(nine).first(2), negative), InputError);
}

#else  // built without CUDA

TEST_CASE("cuda gpt2: not built") {
  CHECK_FALSE(ecr::cuda::available());
  MESSAGE("skipped: this build has no CUDA backend (ECR_WITH_CUDA=OFF)");
}

#endif
