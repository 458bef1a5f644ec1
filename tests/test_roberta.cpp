// RoBERTa against the plain-PyTorch reference (tools/reference/roberta.py) on a random
// RobertaForMaskedLM checkpoint: last hidden states, batching, position ids around padding ids,
// the length limit, mis-shaped weights, and f16 / bf16 bundles computing in their stored type.
#include <random>

#include "ecr/io/bundle.hpp"
#include "ecr/io/component.hpp"
#include "ecr/models/roberta.hpp"
#include "ecr/nn/linear.hpp"
#include "model_fixtures.hpp"

using namespace ecr;
using namespace ecr::test;

namespace {

constexpr int kVocab = 50266;

RobertaFixture tiny() { return roberta_fixture(2, 4, 64, 256, 130); }

// A RoBERTa input: <s>, random ordinary tokens (ids from 3), </s>.
std::vector<std::int32_t> roberta_ids(std::size_t n, unsigned seed) {
  auto ids = random_ids(n, seed, 3, kVocab - 1);
  ids.front() = 0;  // <s>
  ids.back() = 2;   // </s>
  return ids;
}

Tensor torch_roberta(const RobertaFixture& f, std::span<const std::int32_t> ids, const std::string& tag) {
  const fs::path dir = temp_dir("roberta_ref_" + tag);
  REQUIRE(run_python(fmt::format("reference roberta --checkpoint {} --ids {} --out {}/hidden.npy",
                                 f.checkpoint.string(), join_ids(ids), dir.string())) == 0);
  return read_npy(dir / "hidden.npy");
}

}  // namespace

TEST_CASE("roberta: last hidden states match torch") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const RobertaFixture f = tiny();
  const Bundle bundle = Bundle::open(f.bundle);
  const RobertaModel model = RobertaModel::load(bundle, "text");
  const auto ids = roberta_ids(21, 1);
  const Tensor out = model.encode(ids);
  CHECK(out.shape() == Shape{21, 64});
  CHECK(max_abs_diff(out, torch_roberta(f, ids, "plain")) < 1e-4f);
}

TEST_CASE("roberta: padding ids inside a sequence take HF's position ids") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const RobertaFixture f = tiny();
  const Bundle bundle = Bundle::open(f.bundle);
  const RobertaModel model = RobertaModel::load(bundle, "text");
  auto ids = roberta_ids(12, 2);
  ids[4] = 1;  // <pad>: position pad_token_id, and the tokens after it count on without it
  ids[10] = 1;
  CHECK(max_abs_diff(model.encode(ids), torch_roberta(f, ids, "pad")) < 1e-4f);
}

TEST_CASE("roberta: a batch of different lengths equals one sequence at a time") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle bundle = Bundle::open(tiny().bundle);
  const RobertaModel model = RobertaModel::load(bundle, "text", std::make_shared<ThreadPool>(2));
  const std::vector<std::vector<std::int32_t>> batch = {roberta_ids(7, 3), roberta_ids(30, 4), roberta_ids(2, 5)};
  const std::vector<Tensor> out = model.encode(batch);
  REQUIRE(out.size() == 3);
  for (std::size_t b = 0; b < batch.size(); ++b) {
    CHECK(out[b].dim(0) == static_cast<std::int64_t>(batch[b].size()));
    CHECK(max_abs_diff(out[b].clone(), model.encode(batch[b])) < 1e-5f);
  }
}

TEST_CASE("roberta: too many tokens or unknown ids give InputError") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle bundle = Bundle::open(tiny().bundle);
  const RobertaModel model = RobertaModel::load(bundle, "text");
  const RobertaConfig& c = model.config();
  CHECK(c.max_tokens() == c.max_position_embeddings - 2);  // positions 2.. after pad_token_id 1
  const auto limit = static_cast<std::size_t>(c.max_tokens());
  CHECK_NOTHROW(model.encode(roberta_ids(limit, 6)));
  CHECK_THROWS_AS(model.encode(roberta_ids(limit + 1, 6)), InputError);
  CHECK_THROWS_AS(model.encode(std::vector<std::int32_t>{0, kVocab, 2}), InputError);
}

TEST_CASE("roberta: a bundle that does not match its config gives ShapeError naming the tensor") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle good = Bundle::open(tiny().bundle);
  const std::string bad_name = "text/encoder.layer.1.attention.self.key.bias";
  BundleWriter writer(good.metadata());
  for (const TensorInfo& info : good.tensors()) {
    Tensor t = good.tensor(info.name);
    if (info.name == bad_name) t = t.rows(0, t.dim(0) - 1);
    writer.add(info.name, t);
  }
  try {
    RobertaModel::load(Bundle::from_bytes(writer.bytes(), "bad.ecr"), "text");
    FAIL("loading a mis-shaped tensor did not throw");
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()).find(bad_name) != std::string::npos);
  }
  CHECK_THROWS_AS(RobertaModel::load(good, "lm"), ConfigError);
}

TEST_CASE("roberta: f16 and bf16 bundles compute in their stored type, as f32 computes on the widened weights") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const RobertaFixture f = tiny();
  const fs::path dir = temp_dir("roberta_dtypes");
  const auto ids = roberta_ids(40, 5);  // more than a decode step's rows: the prefill kernels
  const Tensor torch = torch_roberta(f, ids, "dtypes");
  for (const char* dtype : {"f16", "bf16"}) {
    CAPTURE(dtype);
    const fs::path path = dir / fmt::format("{}.ecr", dtype);
    REQUIRE(run_python(fmt::format("convert --out {} --roberta text={} --dtype {}", path.string(),
                                   f.checkpoint.string(), dtype)) == 0);
    const Bundle bundle = Bundle::open(path);
    const DType stored = *dtype_from_name(dtype);
    // Kept as stored: the stacked query/key/value, the other matrices and the word table.
    const RobertaWeights w = RobertaWeights::load(read_component(bundle, "text"), nn::kAsStored);
    CHECK(w.layers[0].qkv.weight.dtype() == stored);
    CHECK(w.layers[0].qkv.weight.shape() == Shape{3 * 64, 64});
    CHECK(w.layers[1].output.weight.dtype() == stored);
    CHECK(w.word_embeddings.weight.dtype() == stored);
    CHECK(RobertaWeights::load(read_component(bundle, "text")).layers[0].qkv.weight.dtype() == DType::f32);

    const Tensor got = RobertaModel::load(bundle, "text").encode(ids);
    const Tensor widened = RobertaModel::load(bundle, "text", nullptr, DType::f32).encode(ids);
    // f16 widens exactly into the f32 GEMM: the same bits. bf16 does too, except on CPUs with a
    // bf16 dot product, where prefill rounds the activations to bf16 (linear_kernel_level()).
    const bool rounds = stored == DType::bf16 && nn::linear_kernel_level() == "avx512bf16";
    const float gap = max_abs_diff(got, widened);
    MESSAGE(std::string(dtype) << ": max |stored - widened| " << gap << ", max |stored - torch f32| " << max_abs_diff(got, torch)
                  << " (kernels " << nn::linear_kernel_level() << ")");
    if (rounds)
      CHECK(gap < 0.05f);
    else
      CHECK(gap == 0.0f);
    CHECK(max_abs_diff(got, torch) < (stored == DType::f16 ? 0.02f : 0.1f));
  }
}
