// GPT-2 against the plain-PyTorch reference (tools/reference/gpt2.py) on random checkpoints:
// logits and hidden states at every position, with and without a prefix prompt; the KV cache,
// batching and thread count against the engine itself; the classifier head; the context limit;
// and bundles that do not match their config.
#include <cstring>
#include <random>

#include "ecr/io/bundle.hpp"
#include "ecr/models/gpt2.hpp"
#include "ecr/nn/ops.hpp"
#include "ecr/nn/weights.hpp"
#include "model_fixtures.hpp"

using namespace ecr;
using namespace ecr::test;

namespace {


struct Reference {
  Tensor logits;  // (T, V), or (num_labels) for a classifier
  Tensor hidden;  // (T, D)
};

Reference torch_gpt2(const Gpt2Fixture& f, std::span<const std::int32_t> ids, const Tensor& prefix,
                     const std::string& tag) {
  const fs::path dir = temp_dir("gpt2_ref_" + tag);
  std::string args = fmt::format("reference gpt2 --checkpoint {} --ids {} --out {}/logits.npy --hidden-out {}/hidden.npy",
                                 f.checkpoint.string(), join_ids(ids), dir.string(), dir.string());
  if (prefix.defined()) {
    write_npy(dir / "prefix.npy", prefix);
    args += fmt::format(" --prefix {}/prefix.npy", dir.string());
  }
  REQUIRE(run_python(args) == 0);
  return {read_npy(dir / "logits.npy"), read_npy(dir / "hidden.npy")};
}

Gpt2Fixture tiny() { return gpt2_fixture(2, 4, 64, 128); }

// Row range [first, first + count) of a 2-D tensor, as a fresh (count, cols) tensor.
Tensor slice_rows(const Tensor& t, std::int64_t first, std::int64_t count) { return t.rows(first, count).clone(); }

}  // namespace

TEST_CASE("gpt2: logits and hidden states at every position match torch (tiny)") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Gpt2Fixture f = tiny();
  const Bundle bundle = Bundle::open(f.bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const auto ids = random_ids(23, 1);
  const Reference ref = torch_gpt2(f, ids, {}, "plain");
  const Gpt2Output out = model.forward(ids, {}, Logits::all);
  CHECK(out.hidden.shape() == Shape{23, 64});
  CHECK(max_abs_diff(out.hidden, ref.hidden) < 1e-4f);
  CHECK(max_abs_diff(out.logits, ref.logits) < 1e-4f);
}

TEST_CASE("gpt2: a prefix prompt matches torch (tiny)") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Gpt2Fixture f = tiny();
  const Bundle bundle = Bundle::open(f.bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const auto ids = random_ids(17, 2);
  const Tensor prefix = random_prefix(model.config(), 6, 3);
  const Reference ref = torch_gpt2(f, ids, prefix, "prefix");
  const Gpt2Output out = model.forward(ids, prefix, Logits::all);
  CHECK(max_abs_diff(out.hidden, ref.hidden) < 1e-4f);
  CHECK(max_abs_diff(out.logits, ref.logits) < 1e-4f);
  // The prefix changes the result: the check above is not vacuous.
  CHECK(max_abs_diff(model.forward(ids, {}, Logits::all).logits, ref.logits) > 1e-2f);
}

TEST_CASE("gpt2: KV-cache decoding equals full recomputation") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Gpt2Fixture f = tiny();
  const Bundle bundle = Bundle::open(f.bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const auto ids = random_ids(20, 4);
  const Tensor prefix = random_prefix(model.config(), 4, 5);
  const Tensor full = model.forward(ids, prefix, Logits::all).logits.clone();

  // A prompt of 7, then chunks of 1, 3, 1, ... : every step's logits equal the full pass's row.
  Gpt2State state = model.start(prefix);
  std::size_t fed = 0;
  for (std::size_t step : {7, 1, 3, 1, 1, 5, 2}) {
    const std::span<const std::int32_t> chunk(ids.data() + fed, step);
    const Gpt2Output out = model.forward(state, chunk, Logits::all);
    CHECK(max_abs_diff(out.logits, slice_rows(full, static_cast<std::int64_t>(fed), static_cast<std::int64_t>(step))) < 1e-5f);
    fed += step;
    CHECK(state.tokens(0) == static_cast<std::int64_t>(fed));
  }
  REQUIRE(fed == ids.size());
  CHECK(state.prefix_length(0) == 4);

  // A copied state is an independent fork: both continue alike and neither sees the other.
  Gpt2State fork = state;
  const std::vector<std::int32_t> next = {42, 43};
  const Tensor a = model.forward(fork, next, Logits::all).logits.clone();
  CHECK(state.tokens(0) == 20);
  CHECK(fork.tokens(0) == 22);
  const Tensor b = model.forward(state, next, Logits::all).logits.clone();
  CHECK(max_abs_diff(a, b) == 0.0f);
}

TEST_CASE("gpt2: a batch of different lengths and prefixes equals one sequence at a time") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Gpt2Fixture f = tiny();
  const Bundle bundle = Bundle::open(f.bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const std::vector<std::vector<std::int32_t>> batch = {random_ids(9, 6), random_ids(2, 7), random_ids(14, 8)};
  const std::vector<Tensor> prefixes = {random_prefix(model.config(), 3, 9), Tensor(), random_prefix(model.config(), 7, 10)};

  Gpt2State state = model.start(prefixes);
  const Gpt2Output out = model.forward(state, batch, Logits::last);
  REQUIRE(out.offsets == std::vector<std::int64_t>{0, 9, 11, 25});
  for (std::size_t b = 0; b < batch.size(); ++b) {
    const Gpt2Output one = model.forward(batch[b], prefixes[b], Logits::last);
    const auto n = static_cast<std::int64_t>(batch[b].size());
    CHECK(max_abs_diff(slice_rows(out.hidden, out.offsets[b], n), one.hidden) < 1e-5f);
    CHECK(max_abs_diff(slice_rows(out.logits, static_cast<std::int64_t>(b), 1), one.logits) < 1e-5f);
  }

  // Decoding the batch further: one more token each, again as if alone.
  const std::vector<std::vector<std::int32_t>> next = {{11}, {22}, {33}};
  const Gpt2Output step = model.forward(state, next, Logits::last);
  for (std::size_t b = 0; b < batch.size(); ++b) {
    auto ids = batch[b];
    ids.push_back(next[b][0]);
    const Gpt2Output one = model.forward(ids, prefixes[b], Logits::last);
    CHECK(max_abs_diff(slice_rows(step.logits, static_cast<std::int64_t>(b), 1), one.logits) < 1e-5f);
  }
}

TEST_CASE("gpt2: classifier scores match torch") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Gpt2Fixture f = gpt2_fixture(2, 4, 64, 128, /*classifier=*/9);
  const Bundle bundle = Bundle::open(f.bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "emotion");
  REQUIRE(model.has_classifier());
  const std::vector<std::vector<std::int32_t>> batch = {random_ids(12, 12), random_ids(5, 13)};
  const Tensor scores = model.classify(batch);
  REQUIRE(scores.shape() == Shape{2, 9});
  for (std::size_t b = 0; b < batch.size(); ++b) {
    const Reference ref = torch_gpt2(f, batch[b], {}, "classifier" + std::to_string(b));
    CHECK(max_abs_diff(slice_rows(scores, static_cast<std::int64_t>(b), 1).reshape({9}), ref.logits) < 1e-4f);
  }
  // Past n_positions (128), the newest tokens decide.
  const auto long_ids = random_ids(150, 22);
  const std::vector<std::vector<std::int32_t>> clipped = {{long_ids.end() - 128, long_ids.end()}};
  CHECK(max_abs_diff(model.classify(std::vector<std::vector<std::int32_t>>{long_ids}), model.classify(clipped)) == 0.0f);
  CHECK_THROWS_AS(Gpt2Model::load(Bundle::open(tiny().bundle), "lm").classify(batch), ConfigError);
}

TEST_CASE("gpt2: 1 and 2 threads give bit-identical logits") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle bundle = Bundle::open(tiny().bundle);
  const Gpt2Model one = Gpt2Model::load(bundle, "lm", std::make_shared<ThreadPool>(1));
  const Gpt2Model two = Gpt2Model::load(bundle, "lm", std::make_shared<ThreadPool>(2));
  const auto ids = random_ids(31, 14);
  const Tensor prefix = random_prefix(one.config(), 5, 15);
  const Tensor a = one.forward(ids, prefix, Logits::all).logits.clone();
  const Tensor b = two.forward(ids, prefix, Logits::all).logits.clone();
  REQUIRE(a.shape() == b.shape());
  CHECK(std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

TEST_CASE("gpt2: a context longer than n_positions keeps the newest tokens") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle bundle = Bundle::open(tiny().bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const auto ids = random_ids(150, 16);
  const Gpt2Output clipped = model.forward(ids, {}, Logits::last);
  CHECK(clipped.hidden.dim(0) == 128);
  const std::span<const std::int32_t> newest = std::span(ids).last(128);
  const Gpt2Output expected = model.forward(newest, {}, Logits::last);
  CHECK(max_abs_diff(clipped.logits, expected.logits) == 0.0f);

  // A state never drops tokens silently: feeding past the last position is an error.
  Gpt2State state = model.start();
  model.forward(state, newest);
  const std::int32_t more = 5;
  CHECK_THROWS_AS(model.forward(state, std::span<const std::int32_t>(&more, 1)), InputError);
  CHECK_THROWS_AS(model.forward(std::vector<std::int32_t>{1, kGpt2Vocab}), InputError);
}

TEST_CASE("gpt2: a bundle that does not match its config gives ShapeError naming the tensor") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle good = Bundle::open(tiny().bundle);
  const std::string bad_name = "lm/transformer.h.1.mlp.c_fc.weight";
  BundleWriter writer(good.metadata());
  for (const TensorInfo& info : good.tensors()) {
    Tensor t = good.tensor(info.name);
    if (info.name == bad_name) t = t.reshape({t.dim(1), t.dim(0)});  // (64, 256) instead of (256, 64)
    writer.add(info.name, t);
  }
  const Bundle bad = Bundle::from_bytes(writer.bytes(), "bad.ecr");
  try {
    Gpt2Model::load(bad, "lm");
    FAIL("loading a mis-shaped tensor did not throw");
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()).find(bad_name) != std::string::npos);
    CHECK(std::string(e.what()).find("[256, 64]") != std::string::npos);
  }
  CHECK_THROWS_AS(Gpt2Model::load(good, "missing"), ConfigError);

  nlohmann::json meta = good.metadata();
  meta["components"]["lm"]["config"]["n_embd"] = 65;
  BundleWriter mismatched(meta);
  for (const TensorInfo& info : good.tensors()) mismatched.add(info.name, good.tensor(info.name));
  CHECK_THROWS_AS(Gpt2Model::load(Bundle::from_bytes(mismatched.bytes(), "mismatch.ecr"), "lm"), ConfigError);
}

TEST_CASE("gpt2: Conv1D weights stored (in, out), as HuggingFace keeps them, give the logits of (out, in)") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto ids = random_ids(10, 23);
  for (const std::string dtype : {"f32", "bf16", "int8"}) {
    CAPTURE(dtype);
    const Bundle converted = Bundle::open(gpt2_fixture(2, 4, 64, 128, 0, dtype).bundle);
    REQUIRE(converted.metadata()["components"]["lm"]["conv1d_layout"] == "out_in");
    // The same weights as a bundle written before the field: no "conv1d_layout", each Conv1D
    // weight transposed back (an i8 one keeps its scale, now over columns).
    nlohmann::json meta = converted.metadata();
    meta["components"]["lm"].erase("conv1d_layout");
    BundleWriter writer(meta);
    for (const TensorInfo& info : converted.tensors()) {
      const Tensor t = converted.tensor(info.name);
      const bool conv1d = info.name.ends_with(".weight") && (info.name.find(".attn.c_") != std::string::npos ||
                                                              info.name.find(".mlp.c_") != std::string::npos);
      if (!conv1d) {
        writer.add(info.name, t);
        continue;
      }
      Tensor back = Tensor::empty(t.dtype(), {t.dim(1), t.dim(0)}, info.name);
      const std::size_t size = dtype_size(t.dtype());
      for (std::int64_t r = 0; r < t.dim(0); ++r)
        for (std::int64_t c = 0; c < t.dim(1); ++c)
          std::memcpy(static_cast<std::byte*>(back.raw()) + (c * t.dim(0) + r) * size,
                      static_cast<const std::byte*>(t.raw()) + (r * t.dim(1) + c) * size, size);
      writer.add(info.name, back);
    }
    const Bundle in_out = Bundle::from_bytes(writer.bytes(), "in_out.ecr");
    REQUIRE(nn::conv1d_layout(read_component(in_out, "lm")) == nn::Conv1dLayout::in_out);
    const Tensor want = Gpt2Model::load(converted, "lm", nullptr, nn::kAsStored).forward(ids, {}, Logits::all).logits.clone();
    const Tensor got = Gpt2Model::load(in_out, "lm", nullptr, nn::kAsStored).forward(ids, {}, Logits::all).logits.clone();
    CHECK(max_abs_diff(want, got) == 0.0f);

    // The (in, out) weights labelled out_in do not fit their shapes.
    meta["components"]["lm"]["conv1d_layout"] = "out_in";
    BundleWriter mislabelled(meta);
    for (const TensorInfo& info : in_out.tensors()) mislabelled.add(info.name, in_out.tensor(info.name));
    CHECK_THROWS_AS(Gpt2Model::load(Bundle::from_bytes(mislabelled.bytes(), "mislabelled.ecr"), "lm"), ShapeError);
  }

  nlohmann::json meta = Bundle::open(tiny().bundle).metadata();
  meta["components"]["lm"]["conv1d_layout"] = "columns";
  BundleWriter unknown(meta);
  const Bundle tiny_bundle = Bundle::open(tiny().bundle);
  for (const TensorInfo& info : tiny_bundle.tensors()) unknown.add(info.name, tiny_bundle.tensor(info.name));
  CHECK_THROWS_WITH_AS(Gpt2Model::load(Bundle::from_bytes(unknown.bytes(), "unknown.ecr"), "lm"),
                       doctest::Contains("conv1d_layout is 'columns', expected \"in_out\" or \"out_in\""), ConfigError);
}

TEST_CASE("gpt2: f16 weights load and stay close to f32") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle f32 = Bundle::open(tiny().bundle);
  const Bundle f16 = Bundle::open(gpt2_fixture(2, 4, 64, 128, 0, "f16").bundle);
  const auto ids = random_ids(10, 17);
  const Tensor a = Gpt2Model::load(f32, "lm").forward(ids, {}, Logits::all).logits.clone();
  const Tensor b = Gpt2Model::load(f16, "lm").forward(ids, {}, Logits::all).logits.clone();
  CHECK(max_abs_diff(a, b) < 2e-2f);
}

TEST_CASE("gpt2 12x768: logits with a prefix match torch within 2e-4") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Gpt2Fixture f = gpt2_fixture(12, 12, 768, 1024);
  const Bundle bundle = Bundle::open(f.bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const auto ids = random_ids(6, 18);
  const Tensor prefix = random_prefix(model.config(), 3, 19);
  const Reference ref = torch_gpt2(f, ids, prefix, "big");
  const Gpt2Output out = model.forward(ids, prefix, Logits::all);
  CHECK(max_abs_diff(out.hidden, ref.hidden) < 2e-4f);
  CHECK(max_abs_diff(out.logits, ref.logits) < 2e-4f);
}

TEST_CASE("cli: ecr forward writes hidden states and logits as .npy") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Gpt2Fixture f = tiny();
  const Bundle bundle = Bundle::open(f.bundle);
  const Gpt2Model model = Gpt2Model::load(bundle, "lm");
  const auto ids = random_ids(8, 20);
  const Tensor prefix = random_prefix(model.config(), 2, 21);
  const fs::path dir = temp_dir("cli_forward");
  write_npy(dir / "prefix.npy", prefix);
  const Gpt2Output expected = model.forward(ids, prefix, Logits::all);
  for (const bool logits : {false, true}) {
    const fs::path out = dir / (logits ? "logits.npy" : "hidden.npy");
    std::string log;
    const int rc = run_command(fmt::format("{} forward --bundle {} --component lm --ids {} --prefix {} --out {}{}",
                                           cli_path().string(), f.bundle.string(), join_ids(ids),
                                           (dir / "prefix.npy").string(), out.string(), logits ? " --logits" : ""),
                               &log);
    REQUIRE_MESSAGE(rc == 0, log);
    CHECK(max_abs_diff(read_npy(out), logits ? expected.logits : expected.hidden) < 1e-6f);
  }
  std::string log;
  CHECK(run_command(fmt::format("{} forward --bundle {} --component lm --ids 1,x --out {}/x.npy", cli_path().string(),
                                f.bundle.string(), dir.string()),
                    &log) != 0);
}
