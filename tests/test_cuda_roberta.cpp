// The device RoBERTa (cuda::RobertaDevice) against the CPU RobertaModel on tiny random bundles:
// last hidden states of a batch of different lengths (an empty one, one at max_tokens, padding
// ids inside a sequence), half-precision storage, typed errors; and device scoring (z E^T) and
// top-k against the CPU's linear and its ranking rule, ties included.
//
// The bundles are written in-process with BundleWriter (the tensor names and layouts convert.py
// writes for a RobertaModel), so these tests need neither ../shared/data nor torch on the GPU
// machine: the CPU model, which test_roberta.cpp checks against torch, is the reference here.
#include "ecr/device/cuda.hpp"
#include "support.hpp"

#ifdef ECR_WITH_CUDA

#include <algorithm>
#include <numeric>

#include "cuda_support.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/models/roberta.hpp"
#include "ecr/models/roberta_cuda.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/nn/rank_cuda.hpp"

using namespace ecr;
using namespace ecr::test;

namespace {

struct TinyConfig {
  int layers, heads, hidden, intermediate, positions, vocab;
  const char* activation;
};

// A random bare RobertaModel in bundle form (component "text"; nn.Linear weights stored (out, in)).
Bundle tiny_roberta(const TinyConfig& c, unsigned seed) {
  const nlohmann::json config{{"num_hidden_layers", c.layers},
                              {"num_attention_heads", c.heads},
                              {"hidden_size", c.hidden},
                              {"intermediate_size", c.intermediate},
                              {"max_position_embeddings", c.positions},
                              {"type_vocab_size", 1},
                              {"vocab_size", c.vocab},
                              {"pad_token_id", 1},
                              {"layer_norm_eps", 1e-5},
                              {"hidden_act", c.activation}};
  BundleWriter writer(
      nlohmann::json{{"ecr_bundle", 1}, {"components", {{"text", {{"type", "roberta"}, {"config", config}}}}}});
  std::mt19937 rng(seed);
  const auto add = [&](const std::string& name, Shape shape, float scale, float center = 0.0f) {
    writer.add("text/" + name, random_tensor(std::move(shape), rng, scale, center, name));
  };
  const std::int64_t d = c.hidden, inner = c.intermediate;
  const auto init = [](std::int64_t in) { return 1.7f / std::sqrt(static_cast<float>(in)); };
  const auto dense = [&](const std::string& prefix, std::int64_t in, std::int64_t out) {
    add(prefix + ".weight", {out, in}, init(in));
    add(prefix + ".bias", {out}, 0.1f);
  };
  const auto norm = [&](const std::string& prefix) {
    add(prefix + ".weight", {d}, 0.2f, 1.0f);
    add(prefix + ".bias", {d}, 0.1f);
  };
  add("embeddings.word_embeddings.weight", {c.vocab, d}, 0.5f);
  add("embeddings.position_embeddings.weight", {c.positions, d}, 0.3f);
  add("embeddings.token_type_embeddings.weight", {1, d}, 0.1f);
  norm("embeddings.LayerNorm");
  for (int l = 0; l < c.layers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    dense(p + "attention.self.query", d, d);
    dense(p + "attention.self.key", d, d);
    dense(p + "attention.self.value", d, d);
    dense(p + "attention.output.dense", d, d);
    norm(p + "attention.output.LayerNorm");
    dense(p + "intermediate.dense", d, inner);
    dense(p + "output.dense", inner, d);
    norm(p + "output.LayerNorm");
  }
  return Bundle::from_bytes(writer.bytes(), "tiny-roberta.ecr");
}

// Head dim 16 with the erf GELU (RoBERTa's), and head dim 80 (not a multiple of 32) with the tanh one.
const TinyConfig kConfigs[] = {{2, 4, 64, 256, 70, 300, "gelu"}, {2, 2, 160, 320, 70, 300, "gelu_new"}};

// Lengths 7, 40, 0, 1 and max_tokens; padding ids (1) inside the second sequence, which shift the
// later tokens' position ids.
std::vector<std::vector<std::int32_t>> mixed_batch(const RobertaConfig& c, unsigned seed) {
  std::vector<std::vector<std::int32_t>> batch = {random_ids(7, static_cast<int>(c.vocab_size), seed),
                                                  random_ids(40, static_cast<int>(c.vocab_size), seed + 1),
                                                  {},
                                                  random_ids(1, static_cast<int>(c.vocab_size), seed + 2),
                                                  random_ids(static_cast<std::size_t>(c.max_tokens()),
                                                             static_cast<int>(c.vocab_size), seed + 3)};
  for (const std::size_t i : {3u, 4u, 20u}) batch[1][i] = static_cast<std::int32_t>(c.pad_token_id);
  return batch;
}

}  // namespace

TEST_CASE("cuda roberta: device last hidden states match RobertaModel on a batch of different lengths") {
  ECR_REQUIRE_GPU();
  for (const TinyConfig& tc : kConfigs) {
    const Bundle bundle = tiny_roberta(tc, 31);
    const RobertaModel cpu = RobertaModel::load(bundle, "text", std::make_shared<ThreadPool>(2));
    const cuda::RobertaDevice gpu = cuda::RobertaDevice::load(bundle, "text");
    CHECK(gpu.config().hidden_size == tc.hidden);
    CHECK(gpu.storage() == DType::f32);
    const auto batch = mixed_batch(cpu.config(), 32);
    const std::vector<Tensor> expected = cpu.encode(batch);

    cuda::Stream stream;
    const std::vector<Tensor> device = gpu.forward(stream, batch);
    const std::vector<Tensor> host = gpu.encode(batch);
    REQUIRE(device.size() == batch.size());
    REQUIRE(host.size() == batch.size());
    for (std::size_t b = 0; b < batch.size(); ++b) {
      INFO("hidden " << tc.hidden << ", sequence " << b << " of " << batch[b].size() << " tokens");
      CHECK(device[b].device() == Device::cuda);
      CHECK(device[b].shape() == Shape{static_cast<std::int64_t>(batch[b].size()), tc.hidden});
      CHECK(host[b].device() == Device::cpu);
      CHECK(host[b].shape() == expected[b].shape());
      if (batch[b].empty()) continue;
      ECR_CHECK_CLOSE(cuda::download(device[b], stream), expected[b], 1e-4f);
      ECR_CHECK_CLOSE(host[b], expected[b], 1e-4f);
    }
    // Alone, each sequence gives what it gave in the batch: no query sees another sequence.
    const std::vector<std::vector<std::int32_t>> second{batch[1]};
    ECR_CHECK_CLOSE(gpu.encode(second).front(), host[1], 1e-5f);
  }
}

TEST_CASE("cuda roberta: f16 and bf16 storage stay close to the f32 CPU model") {
  ECR_REQUIRE_GPU();
  const TinyConfig tc = kConfigs[0];
  const Bundle bundle = tiny_roberta(tc, 41);
  const RobertaModel cpu = RobertaModel::load(bundle, "text");
  const auto batch = mixed_batch(cpu.config(), 42);
  const std::vector<Tensor> expected = cpu.encode(batch);
  for (const DType st : {DType::f16, DType::bf16})
    for (const cuda::GemmMath math : {cuda::GemmMath::exact, cuda::GemmMath::tensor_cores}) {
      INFO("storage " << name_of(st) << ", tensor cores " << (math == cuda::GemmMath::tensor_cores));
      // As for GPT-2: bf16 keeps 8 mantissa bits, so the whole model's bound is twice f16's.
      const float tol = st == DType::f16 ? 1e-2f : 2e-2f;
      const cuda::RobertaDevice gpu = cuda::RobertaDevice::load(bundle, "text", {st, math});
      const std::vector<Tensor> host = gpu.encode(batch);
      for (std::size_t b = 0; b < batch.size(); ++b)
        if (!batch[b].empty()) ECR_CHECK_CLOSE(host[b], expected[b], tol);
    }
}

TEST_CASE("cuda roberta: bad input gives typed errors") {
  ECR_REQUIRE_GPU();
  const TinyConfig tc = kConfigs[0];
  const Bundle bundle = tiny_roberta(tc, 51);
  CHECK_THROWS_AS(cuda::RobertaDevice::load(bundle, "missing"), ConfigError);
  CHECK_THROWS_AS(cuda::RobertaDevice::load(bundle, "text", {DType::i32, cuda::GemmMath::exact}), ShapeError);
  const cuda::RobertaDevice gpu = cuda::RobertaDevice::load(bundle, "text");
  const std::vector<std::vector<std::int32_t>> unknown{{2, 3}, {4, tc.vocab}};
  CHECK_THROWS_AS(gpu.encode(unknown), InputError);
  const std::vector<std::vector<std::int32_t>> negative{{-1}};
  CHECK_THROWS_AS(gpu.encode(negative), InputError);
  const std::vector<std::vector<std::int32_t>> too_long{
      random_ids(static_cast<std::size_t>(gpu.config().max_tokens()) + 1, tc.vocab, 52)};
  CHECK_THROWS_AS(gpu.encode(too_long), InputError);
  CHECK(gpu.encode(std::vector<std::vector<std::int32_t>>{}).empty());
}

// --- scoring and top-k ------------------------------------------------------------------------

namespace {

// The CPU recommender's order (src/pipeline/recommender.cpp, ranks_before): higher score first,
// then the lower id.
std::vector<cuda::RankedItem> cpu_top_k(std::span<const float> scores, std::size_t k) {
  std::vector<cuda::RankedItem> all;
  for (std::size_t i = 0; i < scores.size(); ++i) all.push_back({static_cast<std::int32_t>(i), scores[i]});
  k = std::min(k, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(),
                    [](const cuda::RankedItem& a, const cuda::RankedItem& b) {
                      return a.score != b.score ? a.score > b.score : a.id < b.id;
                    });
  all.resize(k);
  return all;
}

}  // namespace

TEST_CASE("cuda rank: scores z E^T match nn::linear") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(61);
  cuda::Stream stream;
  const Tensor z = random_tensor({3, 48}, rng, 1.0f, 0.0f, "z");
  const Tensor table = random_tensor({1000, 48}, rng, 1.0f, 0.0f, "E");
  Tensor expected = Tensor::empty(DType::f32, {3, 1000});
  nn::linear(nn::view(z), nn::Linear{table, {}}, nn::view(expected), *ThreadPool::shared_default());
  const Tensor scores = cuda::score_rows(stream, cuda::upload(z, stream), cuda::upload(table, stream));
  ECR_CHECK_CLOSE(cuda::download(scores, stream), expected, 1e-5f);
  CHECK_THROWS_AS(cuda::score_rows(stream, cuda::upload(z, stream), cuda::upload(z, stream),
                                   cuda::empty_device(DType::f32, {3, 1000})),
                  ShapeError);
}

TEST_CASE("cuda rank: top_k_rows equals the CPU ranking, ties by the lower id") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(62);
  cuda::Stream stream;
  for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{1, 1}, {3, 50}, {4, 30000}, {2, 777}}) {
    // Few distinct values, so most scores tie; -0.0 and +0.0 must count as equal.
    std::uniform_int_distribution<int> level(-6, 6);
    Tensor scores = Tensor::empty(DType::f32, {rows, cols}, "scores");
    for (float& v : scores.span<float>()) {
      const int l = level(rng);
      v = l == 0 ? (rng() % 2 ? -0.0f : 0.0f) : 0.25f * static_cast<float>(l);
    }
    const Tensor device = cuda::upload(scores, stream);
    for (const std::int64_t k : {std::int64_t{1}, std::int64_t{10}, std::int64_t{cols}, std::int64_t{cols} + 5}) {
      INFO(rows << " x " << cols << ", k " << k);
      const auto top = cuda::top_k_rows(stream, device, k);
      REQUIRE(top.size() == static_cast<std::size_t>(rows));
      for (int r = 0; r < rows; ++r) {
        const auto row = scores.span<float>().subspan(static_cast<std::size_t>(r) * cols, static_cast<std::size_t>(cols));
        const auto expected = cpu_top_k(row, static_cast<std::size_t>(k));
        REQUIRE(top[static_cast<std::size_t>(r)].size() == expected.size());
        for (std::size_t j = 0; j < expected.size(); ++j) {
          CHECK(top[static_cast<std::size_t>(r)][j].id == expected[j].id);
          CHECK(top[static_cast<std::size_t>(r)][j].score == expected[j].score);
        }
      }
    }
  }
  const Tensor some = cuda::upload(Tensor::zeros(DType::f32, {2, 5}), stream);
  CHECK(cuda::top_k_rows(stream, some, 0) == std::vector<std::vector<cuda::RankedItem>>(2));
  CHECK_THROWS_AS(cuda::top_k_rows(stream, some, -1), InputError);
  CHECK_THROWS_AS(cuda::top_k_rows(stream, cuda::upload(Tensor::zeros(DType::i32, {2, 5}), stream), 1), ShapeError);
  CHECK_THROWS_AS(cuda::top_k_rows(stream, Tensor::zeros(DType::f32, {2, 5}), 1), DeviceError);
}

#else  // built without CUDA

TEST_CASE("cuda roberta: not built") {
  CHECK_FALSE(ecr::cuda::available());
  MESSAGE("skipped: this build has no CUDA backend (ECR_WITH_CUDA=OFF)");
}

#endif
