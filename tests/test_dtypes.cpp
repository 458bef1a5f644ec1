// Weights stored f16, bf16 and int8: the kernels of every instruction-set level against the
// portable ones, nn::linear against the f32 path on the same (widened) values, the level
// selection (ECR_ISA), int8 scales in bundles, and GPT-2 in each dtype against the f32 engine:
// logits and greedy decoding on random weights, with the numbers reported.
//
// test_dtypes_portable (tests/CMakeLists.txt) runs the "dtype" cases again under ECR_ISA=portable.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "ecr/io/bundle.hpp"
#include "ecr/models/gpt2.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/nn/weights.hpp"
#include "model_fixtures.hpp"
#include "nn/cpu/isa.hpp"

using namespace ecr;
using namespace ecr::test;
namespace cpu = ecr::nn::cpu;

namespace {

constexpr DType kStoredTypes[] = {DType::f16, DType::bf16, DType::i8};

Tensor random_matrix(std::int64_t rows, std::int64_t cols, unsigned seed, const char* name = "w") {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Tensor t = Tensor::empty(DType::f32, {rows, cols}, name);
  for (float& v : t.span<float>()) v = dist(rng);
  return t;
}

nn::Linear random_layer(std::int64_t in, std::int64_t out, DType dtype, unsigned seed) {
  nn::Linear f32{random_matrix(out, in, seed), random_matrix(1, out, seed + 1, "b").reshape({out})};
  return nn::cast_matrix(f32, dtype);
}

cpu::WeightType weight_type(DType d) {
  switch (d) {
    case DType::f16: return cpu::WeightType::f16;
    case DType::bf16: return cpu::WeightType::bf16;
    case DType::f32: return cpu::WeightType::f32;
    default: return cpu::WeightType::i8;
  }
}

std::vector<cpu::Isa> supported_levels() {
  std::vector<cpu::Isa> levels;
  for (cpu::Isa isa : {cpu::Isa::portable, cpu::Isa::avx2, cpu::Isa::avx512, cpu::Isa::avx512bf16})
    if (cpu::isa_supported(isa)) levels.push_back(isa);
  return levels;
}

// Largest |a - b| relative to `scale` (the sum of |terms| that bounds the rounding of a dot product).
float max_rel(const Tensor& a, const Tensor& b, const Tensor& scale) {
  float worst = 0.0f;
  for (std::int64_t i = 0; i < a.numel(); ++i)
    worst = std::max(worst, std::abs(a.data<float>()[i] - b.data<float>()[i]) / std::max(scale.data<float>()[i], 1e-30f));
  return worst;
}

// sum_k |x[r, k] * w[j, k]|: the natural scale of the rounding error of y[r, j].
Tensor abs_products(const Tensor& x, const Tensor& w32) {
  Tensor s = Tensor::empty(DType::f32, {x.dim(0), w32.dim(0)});
  nn::view(s) = (nn::view(x).cwiseAbs() * nn::view(w32).cwiseAbs().transpose());
  return s;
}

Tensor run_linear(const nn::Linear& layer, const Tensor& x, const Tensor& y0, ThreadPool& pool, nn::Activation act,
                  bool accumulate, const cpu::LinearKernels* kernels = nullptr) {
  Tensor y = y0.clone();
  if (kernels)
    cpu::linear_stored(*kernels, nn::view(x), layer, nn::view(y), pool, act, accumulate);
  else
    nn::linear(nn::view(x), layer, nn::view(y), pool, act, accumulate);
  return y;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// True where `kernels` runs prefill with bf16 weights on bf16-rounded activations (AVX-512 BF16).
bool rounds_activations(const cpu::LinearKernels& kernels, DType dtype, std::int64_t rows) {
  return dtype == DType::bf16 && rows > cpu::kDotRows && kernels.gemm_bf16 != nullptr;
}

// x rounded to bf16 (to nearest even, as Eigen rounds) and widened back.
Tensor rounded_to_bf16(const Tensor& x) {
  Tensor r = x.clone();
  for (float& v : r.span<float>()) v = static_cast<float>(Eigen::bfloat16(v));
  return r;
}

// The bound on what rounding x to bf16 changes in x W^T: half a unit in the 8th bit of each x,
// so 2^-9 of sum_k |x w| (the `scale` of abs_products), and f32 rounding besides.
constexpr float kBf16ActivationError = 0x1p-9f * 1.01f + 1e-5f;

}  // namespace

TEST_CASE("dtype kernels: every level widens exactly as the portable one and sums to 1e-5") {
  const std::int64_t ins[] = {1, 7, 16, 33, 100, 768};
  // f32 too: its decode runs on the same dot kernels.
  for (const DType dtype : {DType::f16, DType::bf16, DType::i8, DType::f32}) {
    for (const std::int64_t in : ins) {
      const nn::Linear layer = random_layer(in, 37, dtype, static_cast<unsigned>(in));
      const int t = static_cast<int>(weight_type(dtype));
      // Widening: the exact values, bit for bit, at every level.
      std::vector<float> portable(static_cast<std::size_t>(layer.weight.numel()));
      cpu::portable_kernels().widen[t](layer.weight.raw(), portable.data(), layer.weight.numel());
      if (dtype != DType::i8) {  // against Eigen's conversions
        const Tensor w32 = layer.weight.to_f32();
        CHECK(std::memcmp(portable.data(), w32.data<float>(), w32.nbytes()) == 0);
      }
      for (const cpu::Isa isa : supported_levels()) {
        CAPTURE(cpu::isa_name(isa));
        std::vector<float> got(portable.size());
        cpu::kernels(isa).widen[t](layer.weight.raw(), got.data(), layer.weight.numel());
        CHECK(got == portable);
      }
      // Dot products of 1 to 4 rows: every level against a double-precision sum.
      Tensor widened = Tensor::empty(DType::f32, layer.weight.shape());
      std::copy(portable.begin(), portable.end(), widened.data<float>());
      for (int rows = 1; rows <= cpu::kDotRows; ++rows) {
        const Tensor x = random_matrix(rows, in, 100 + static_cast<unsigned>(rows));
        Tensor exact = Tensor::empty(DType::f32, {rows, 37});
        nn::view(exact) = (nn::view(x).cast<double>() * nn::view(widened).cast<double>().transpose()).cast<float>();
        const Tensor scale = abs_products(x, widened);
        for (const cpu::Isa isa : supported_levels()) {
          CAPTURE(cpu::isa_name(isa));
          CAPTURE(dtype_name(dtype));
          CAPTURE(in);
          CAPTURE(rows);
          Tensor y = Tensor::zeros(DType::f32, {rows, 37});
          cpu::kernels(isa).dot[t](x.data<float>(), in, rows, layer.weight.raw(), in, 37, y.data<float>(), 37);
          CHECK(max_rel(y, exact, scale) < 1e-5f);
        }
      }
    }
  }
}

TEST_CASE("dtype kernels: the bf16 prefill GEMM sums the exact products of bf16-rounded activations") {
  // Rows around the 6-row register tile, k odd and even, columns around the 16-column tiles and
  // 64-column panels (the ragged ones gather, full ones transpose 16 x 16 words).
  const std::int64_t row_counts[] = {5, 6, 7, 13, 40};
  const std::int64_t ins[] = {1, 2, 7, 32, 33, 100};
  const std::int64_t counts[] = {1, 15, 16, 17, 64, 65, 128};
  bool ran = false;
  for (const cpu::Isa isa : supported_levels()) {
    const cpu::LinearKernels& kernels = cpu::kernels(isa);
    if (!kernels.gemm_bf16) {
      CHECK((kernels.to_bf16 == nullptr));
      continue;
    }
    ran = true;
    CAPTURE(cpu::isa_name(isa));
    for (const std::int64_t in : ins) {
      for (const std::int64_t count : counts) {
        const nn::Linear layer = random_layer(in, count, DType::bf16, static_cast<unsigned>(in * 131 + count));
        const Tensor w32 = layer.weight.to_f32();
        for (const std::int64_t rows : row_counts) {
          CAPTURE(in);
          CAPTURE(count);
          CAPTURE(rows);
          const Tensor x = random_matrix(rows, in, static_cast<unsigned>(rows + in));
          const std::int64_t ldx16 = in + (in & 1);
          std::vector<std::uint16_t> x16(static_cast<std::size_t>(rows * ldx16), 0xffff);
          kernels.to_bf16(x.data<float>(), in, rows, in, x16.data(), ldx16);
          // Rounding: Eigen's to-nearest-even, and the pad of an odd row zeroed.
          const Tensor xr = rounded_to_bf16(x);
          bool rounding_ok = true;
          for (std::int64_t r = 0; r < rows; ++r) {
            for (std::int64_t k = 0; k < in; ++k)
              rounding_ok &= Eigen::numext::bit_cast<std::uint16_t>(Eigen::bfloat16(x.data<float>()[r * in + k])) ==
                             x16[static_cast<std::size_t>(r * ldx16 + k)];
            if (ldx16 > in) rounding_ok &= x16[static_cast<std::size_t>(r * ldx16 + in)] == 0;
          }
          CHECK(rounding_ok);
          // The sums: against double precision on the same rounded values.
          std::vector<std::uint32_t> packed(static_cast<std::size_t>(cpu::bf16_packed_words(in, count)));
          Tensor y = Tensor::zeros(DType::f32, {rows, count + 3});  // 3 columns past `count` must stay 0
          kernels.gemm_bf16(x16.data(), ldx16, rows, layer.weight.raw(), in, count, packed.data(), y.data<float>(),
                            count + 3);
          Tensor exact = Tensor::zeros(DType::f32, {rows, count + 3});
          nn::view(exact).leftCols(count) =
              (nn::view(xr).cast<double>() * nn::view(w32).cast<double>().transpose()).cast<float>();
          Tensor scale = Tensor::zeros(DType::f32, {rows, count + 3});
          nn::view(scale).leftCols(count) = nn::view(abs_products(xr, w32));
          CHECK(max_rel(y, exact, scale) < 1e-5f);
          CHECK(nn::view(y).rightCols(3).cwiseAbs().maxCoeff() == 0.0f);
        }
      }
    }
  }
  if (!ran) MESSAGE("no level of this CPU has a bf16 prefill GEMM (AVX-512 BF16): nothing to compare");
}

TEST_CASE("dtype linear: every level gives the portable results (odd shapes, bias, activation, residual)") {
  ThreadPool pool(2);
  const std::int64_t shapes[][3] = {{1, 13, 130}, {3, 77, 257}, {4, 64, 1}, {5, 33, 129}, {9, 100, 300}};
  for (const DType dtype : kStoredTypes) {
    for (const auto& [rows, in, out] : shapes) {
      const nn::Linear layer = random_layer(in, out, dtype, static_cast<unsigned>(in + out));
      const Tensor x = random_matrix(rows, in, 7), y0 = random_matrix(rows, out, 8);
      const Tensor w32 = nn::cast_matrix(layer, DType::f32).weight;
      const Tensor scale = abs_products(x, w32);
      for (const bool accumulate : {false, true}) {
        const nn::Activation act = accumulate ? nn::Activation::none : nn::Activation::gelu_tanh;
        const Tensor portable = run_linear(layer, x, y0, pool, act, accumulate, &cpu::portable_kernels());
        for (const cpu::Isa isa : supported_levels()) {
          CAPTURE(cpu::isa_name(isa));
          CAPTURE(dtype_name(dtype));
          CAPTURE(rows);
          const Tensor y = run_linear(layer, x, y0, pool, act, accumulate, &cpu::kernels(isa));
          if (rounds_activations(cpu::kernels(isa), dtype, rows))  // x rounded to bf16 (gelu's slope < 1.2)
            CHECK(max_abs_diff(y, portable) < 1.2f * kBf16ActivationError * (1.0f + nn::view(scale).maxCoeff()));
          else if (rows > cpu::kDotRows)
            CHECK(same_bits(y, portable));  // exact widening, then the same GEMM
          else
            CHECK(max_abs_diff(y, portable) < 1e-5f * (1.0f + nn::view(scale).maxCoeff()));
        }
      }
    }
  }
}

TEST_CASE("dtype linear: 16-bit and int8 weights compute what f32 computes on the widened weights") {
  ThreadPool pool(2);
  for (const DType dtype : kStoredTypes) {
    const nn::Linear stored = random_layer(96, 300, dtype, 3);
    const nn::Linear widened = nn::cast_matrix(stored, DType::f32);
    REQUIRE(widened.weight.dtype() == DType::f32);
    for (const std::int64_t rows : {1, 2, 4, 5, 40}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(rows);
      const Tensor x = random_matrix(rows, 96, 11), y0 = random_matrix(rows, 300, 12);
      const Tensor scale = abs_products(x, widened.weight);
      for (const bool accumulate : {false, true}) {
        const Tensor want = run_linear(widened, x, y0, pool, nn::Activation::none, accumulate);
        const Tensor got = run_linear(stored, x, y0, pool, nn::Activation::none, accumulate);
        if (rounds_activations(cpu::active_kernels(), dtype, rows))
          CHECK(max_abs_diff(got, want) < kBf16ActivationError * (1.0f + nn::view(scale).maxCoeff()));
        else if (rows > cpu::kDotRows && dtype != DType::i8)
          CHECK(same_bits(got, want));  // prefill: the very GEMM of the f32 path
        else
          CHECK(max_abs_diff(got, want) < 1e-5f * (1.0f + nn::view(scale).maxCoeff()));
      }
      // The thread count changes nothing.
      ThreadPool one(1), three(3);
      CHECK(same_bits(run_linear(stored, x, y0, one, nn::Activation::none, false),
                      run_linear(stored, x, y0, three, nn::Activation::none, false)));
    }
  }
  // int8 keeps each row within half a quantization step of the f32 weights.
  const nn::Linear f32{random_matrix(50, 80, 21), {}};
  const nn::Linear q = nn::cast_matrix(f32, DType::i8);
  const Tensor back = nn::cast_matrix(q, DType::f32).weight;
  for (std::int64_t r = 0; r < 50; ++r)
    CHECK((nn::view(back).row(r) - nn::view(f32.weight).row(r)).cwiseAbs().maxCoeff() <=
          0.5f * q.scale.data<float>()[r] * 1.0001f);
  CHECK_THROWS_AS(nn::cast_matrix(f32, DType::i32), ShapeError);
}

// The design property the f16 recommender test relies on: f16 weights and the same values stored
// f32 take the same arithmetic, bit for bit, at every level and every row count (the dot kernels
// up to kDotRows rows, a GEMM above), including the lanes' tails (`in` not a multiple of 8 or 16).
TEST_CASE("dtype linear: f16 weights give the bits of the same values stored f32, at every level and row count") {
  ThreadPool pool(2);
  const std::int64_t shapes[][2] = {{1, 3}, {7, 5}, {8, 9}, {13, 31}, {16, 17}, {31, 40}, {100, 130}, {768, 67}};
  for (const auto& [in, out] : shapes) {
    const nn::Linear f16 = random_layer(in, out, DType::f16, static_cast<unsigned>(in * out));
    const nn::Linear f32 = nn::cast_matrix(f16, DType::f32);  // the f16 values, exactly
    for (std::int64_t rows = 1; rows <= cpu::kDotRows + 1; ++rows) {
      const Tensor x = random_matrix(rows, in, 31 + static_cast<unsigned>(rows)), y0 = random_matrix(rows, out, 32);
      for (const bool accumulate : {false, true}) {
        const nn::Activation act = accumulate ? nn::Activation::none : nn::Activation::gelu_tanh;
        CAPTURE(in);
        CAPTURE(out);
        CAPTURE(rows);
        CAPTURE(accumulate);
        CHECK(same_bits(run_linear(f16, x, y0, pool, act, accumulate), run_linear(f32, x, y0, pool, act, accumulate)));
        for (const cpu::Isa isa : supported_levels()) {
          CAPTURE(cpu::isa_name(isa));
          const cpu::LinearKernels* kernels = &cpu::kernels(isa);
          CHECK(same_bits(run_linear(f16, x, y0, pool, act, accumulate, kernels),
                          run_linear(f32, x, y0, pool, act, accumulate, kernels)));
        }
      }
    }
  }
}

TEST_CASE("dtype isa: ECR_ISA picks a level, unknown or unsupported ones are ConfigError") {
  const std::vector<cpu::Isa> levels = supported_levels();
  CHECK(cpu::select_isa(std::nullopt) == levels.back());  // the best this CPU has
  for (const cpu::Isa isa : levels) CHECK(cpu::select_isa(cpu::isa_name(isa)) == isa);
  CHECK_THROWS_AS(cpu::select_isa("sse9"), ConfigError);
  for (const cpu::Isa isa : {cpu::Isa::avx2, cpu::Isa::avx512, cpu::Isa::avx512bf16})
    if (!cpu::isa_supported(isa)) {
      CHECK_THROWS_AS(cpu::select_isa(cpu::isa_name(isa)), ConfigError);
      CHECK_THROWS_AS(cpu::kernels(isa), ConfigError);
    }
  // The process-wide choice, as `ecr --version` reports it, follows the environment.
  for (const cpu::Isa isa : levels) {
    std::string out;
    REQUIRE(run_command(fmt::format("ECR_ISA={} {} --version", cpu::isa_name(isa), cli_path().string()), &out) == 0);
    CHECK(out.find(fmt::format("cpu kernels: {}", cpu::isa_name(isa))) != std::string::npos);
  }
  std::string out;
  CHECK(run_command(fmt::format("ECR_ISA=sse9 {} --version", cli_path().string()), &out) != 0);
  CHECK(out.find("ECR_ISA=sse9") != std::string::npos);
}

TEST_CASE("dtype gpt2: int8 bundles check their scales, and the converter casts as the engine does") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle f32 = Bundle::open(gpt2_fixture(2, 4, 64, 128).bundle);
  const auto ids = random_ids(12, 31);
  for (const std::string name : {"f16", "bf16", "int8"}) {
    CAPTURE(name);
    const Bundle converted = Bundle::open(gpt2_fixture(2, 4, 64, 128, 0, name).bundle);
    const DType dtype = name == "int8" ? DType::i8 : *dtype_from_name(name);
    CHECK(converted.metadata()["components"]["lm"]["dtype"] == name);
    CHECK(converted.info("lm/transformer.h.0.mlp.c_fc.weight").dtype == dtype);
    CHECK(converted.info("lm/transformer.h.0.ln_1.weight").dtype == (dtype == DType::i8 ? DType::f32 : dtype));
    const Gpt2Model from_file = Gpt2Model::load(converted, "lm");
    const Gpt2Model cast = Gpt2Model::load(f32, "lm", nullptr, dtype);
    CHECK(from_file.weight_dtype() == dtype);
    // tools/convert.py and nn::cast_matrix round (and quantize) alike: the same matrices.
    const auto same_matrix = [](const nn::Linear& a, const nn::Linear& b) {
      return same_bits(a.weight, b.weight) && a.scale.defined() == b.scale.defined() &&
             (!a.scale.defined() || same_bits(a.scale, b.scale));
    };
    const auto out_in = nn::Conv1dLayout::out_in;
    REQUIRE(nn::conv1d_layout(read_component(converted, "lm")) == out_in);
    for (const auto& [layer, in, out] : {std::tuple{"h.0.attn.c_attn", 64, 192}, std::tuple{"h.1.mlp.c_proj", 256, 64}}) {
      const std::string prefix = std::string("lm/transformer.") + layer;
      CHECK(same_matrix(nn::load_conv1d(converted, prefix, in, out, nn::kAsStored, out_in),
                        nn::load_conv1d(f32, prefix, in, out, dtype, out_in)));
    }
    const std::string wte = "lm/transformer.wte.weight";
    CHECK(same_matrix(nn::load_matrix(converted, wte, {kGpt2Vocab, 64}, nn::kAsStored),
                      nn::load_matrix(f32, wte, {kGpt2Vocab, 64}, dtype)));
    if (dtype == DType::i8) {  // everything else is f32 in both: the same logits, bit for bit
      CHECK(same_bits(from_file.forward(ids, {}, Logits::all).logits.clone(), cast.forward(ids, {}, Logits::all).logits));
    }
  }

  const Bundle int8 = Bundle::open(gpt2_fixture(2, 4, 64, 128, 0, "int8").bundle);
  const std::string weight = "lm/transformer.h.1.attn.c_proj.weight", scale = weight + ".scale";
  CHECK(int8.info(scale).shape == Shape{64});
  const auto rewrite = [&](const std::function<void(BundleWriter&, const TensorInfo&)>& add) {
    BundleWriter writer(int8.metadata());
    for (const TensorInfo& info : int8.tensors()) add(writer, info);
    return Bundle::from_bytes(writer.bytes(), "int8.ecr");
  };
  const auto load_error = [](const Bundle& b) -> std::string {
    try {
      Gpt2Model::load(b, "lm");
    } catch (const ShapeError& e) {
      return e.what();
    }
    return "no ShapeError";
  };
  const Bundle short_scale = rewrite([&](BundleWriter& w, const TensorInfo& info) {
    const Tensor t = int8.tensor(info.name);
    w.add(info.name, info.name == scale ? t.rows(0, 63) : t);
  });
  CHECK(load_error(short_scale).find(scale) != std::string::npos);
  const Bundle no_scale = rewrite([&](BundleWriter& w, const TensorInfo& info) {
    if (info.name != scale) w.add(info.name, int8.tensor(info.name));
  });
  CHECK(load_error(no_scale).find(scale) != std::string::npos);
  // The f32 loaders (RoBERTa's, the CUDA GPT-2's) multiply the scales out.
  const auto out_in = nn::Conv1dLayout::out_in;
  const Tensor dequantized = nn::load_conv1d(int8, "lm/transformer.h.1.attn.c_proj", 64, 64, DType::f32, out_in).weight;
  CHECK(dequantized.dtype() == DType::f32);
  const nn::Linear stored = nn::load_conv1d(int8, "lm/transformer.h.1.attn.c_proj", 64, 64, nn::kAsStored, out_in);
  CHECK(same_bits(dequantized, nn::cast_matrix(stored, DType::f32).weight));
}

// Bundles written before "conv1d_layout" keep GPT-2's Conv1D (in, out); load_conv1d transposes
// it in 16 x 16 tiles. Dimensions that are not multiples of 16 reach the ragged tile edges, which
// the GPT-2 fixtures (multiples of 16) never do.
TEST_CASE("dtype weights: an (in, out) Conv1D is transposed exactly in every stored dtype, ragged tiles too") {
  constexpr std::int64_t in = 17, out = 35;
  for (const DType dtype : {DType::f32, DType::f16, DType::bf16, DType::i8}) {
    CAPTURE(dtype_name(dtype));
    Tensor w = Tensor::empty(dtype, {in, out}, "c.weight");
    const std::size_t size = dtype_size(dtype);
    auto* bytes = static_cast<std::uint8_t*>(w.raw());
    for (std::size_t b = 0; b < w.nbytes(); ++b)  // distinct finite values: low exponent bits only
      bytes[b] = static_cast<std::uint8_t>((b % size == size - 1) ? (b / size) % 0x30 : (b * 37 + 11) % 251);
    BundleWriter writer(std::string("{}"));
    writer.add("c.weight", w);
    writer.add("c.bias", Tensor::zeros(DType::f32, {out}));
    if (dtype == DType::i8) writer.add("c.weight.scale", Tensor::zeros(DType::f32, {out}));
    const Bundle bundle = Bundle::from_bytes(writer.bytes(), "in_out.ecr");
    const nn::Linear layer = nn::load_conv1d(bundle, "c", in, out, nn::kAsStored, nn::Conv1dLayout::in_out);
    REQUIRE(layer.weight.shape() == Shape{out, in});
    REQUIRE(layer.weight.dtype() == dtype);
    const auto* got = static_cast<const std::uint8_t*>(layer.weight.raw());
    std::size_t wrong = 0;
    for (std::int64_t i = 0; i < in; ++i)
      for (std::int64_t o = 0; o < out; ++o)
        wrong += std::memcmp(got + (o * in + i) * size, bytes + (i * out + o) * size, size) != 0;
    CHECK(wrong == 0);
  }
}

TEST_CASE("dtype gpt2: an f16 model computes what f32 computes on the widened weights") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle f16 = Bundle::open(gpt2_fixture(2, 4, 64, 128, 0, "f16").bundle);
  const Gpt2Model stored = Gpt2Model::load(f16, "lm");
  const Gpt2Model widened = Gpt2Model::load(f16, "lm", nullptr, DType::f32);
  REQUIRE(stored.weight_dtype() == DType::f16);
  REQUIRE(widened.weight_dtype() == DType::f32);
  const auto ids = random_ids(20, 32);
  // Prefill (more than kDotRows rows): exact widening and the same GEMM, so the same bits.
  Gpt2State a = stored.start(), b = widened.start();
  CHECK(same_bits(stored.forward(a, ids, Logits::all).logits.clone(), widened.forward(b, ids, Logits::all).logits));
  // Decode: the streaming kernel sums in another order; float rounding only.
  for (std::int32_t next : {5, 17, 400}) {
    const std::span<const std::int32_t> one(&next, 1);
    const Tensor x = stored.forward(a, one, Logits::last).logits.clone();
    const Tensor y = widened.forward(b, one, Logits::last).logits.clone();
    CHECK(max_abs_diff(x, y) < 1e-4f);
  }
}

namespace {

struct Agreement {
  int steps = 0, agreed = 0, asserted = 0;
  int first_divergence = -1;  // free-running greedy: first step whose token differs
  float gap_at_divergence = 0.0f;
  float max_logit_error = 0.0f;
  float max_logit = 0.0f;  // largest |f32 logit|, for scale
};

// top-1 and its lead over the runner-up.
std::pair<std::int32_t, float> top1(const Tensor& logits) {
  const auto v = logits.vector<float>();
  Eigen::Index best = 0;
  v.maxCoeff(&best);
  float second = -INFINITY;
  for (Eigen::Index i = 0; i < v.size(); ++i)
    if (i != best) second = std::max(second, v[i]);
  return {static_cast<std::int32_t>(best), v[best] - second};
}

// Greedy decoding of `steps` tokens after each prompt. Teacher-forced on the f32 tokens, so every
// step compares both models on the same context: top-1 must agree wherever the f32 lead exceeds
// `margin`. Free-running, the first step where the tokens differ is recorded.
Agreement compare_greedy(const Gpt2Model& reference, const Gpt2Model& model, int prompts, int steps, float margin) {
  Agreement a;
  for (int p = 0; p < prompts; ++p) {
    const auto prompt = random_ids(8, 40 + static_cast<unsigned>(p), 0, 50000);
    Gpt2State ref = reference.start(), forced = model.start(), free = model.start();
    Tensor r = reference.forward(ref, prompt, Logits::last).logits.clone();
    Tensor f = model.forward(forced, prompt, Logits::last).logits.clone();
    Tensor g = f.clone();
    model.forward(free, prompt);
    bool diverged = false;
    for (int s = 0; s < steps; ++s) {
      const auto [want, gap] = top1(r);
      const std::int32_t got = top1(f).first, free_token = top1(g).first;
      a.max_logit_error = std::max(a.max_logit_error, max_abs_diff(r, f));
      a.max_logit = std::max(a.max_logit, nn::view(r).cwiseAbs().maxCoeff());
      ++a.steps;
      a.agreed += got == want;
      if (gap > margin) {
        ++a.asserted;
        CHECK_MESSAGE(got == want, "prompt " << p << " step " << s << ": f32 lead " << gap);
      }
      if (!diverged && free_token != want) {
        diverged = true;
        if (a.first_divergence < 0 || s < a.first_divergence) {
          a.first_divergence = s;
          a.gap_at_divergence = gap;
        }
      }
      r = reference.forward(ref, std::span<const std::int32_t>(&want, 1), Logits::last).logits.clone();
      f = model.forward(forced, std::span<const std::int32_t>(&want, 1), Logits::last).logits.clone();
      if (!diverged) g = model.forward(free, std::span<const std::int32_t>(&free_token, 1), Logits::last).logits.clone();
    }
  }
  return a;
}

void greedy_case(DType dtype, float max_error, float margin, double min_agreement) {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const Bundle bundle = Bundle::open(gpt2_fixture(12, 12, 768, 1024).bundle);
  const Gpt2Model reference = Gpt2Model::load(bundle, "lm");
  const Gpt2Model model = Gpt2Model::load(bundle, "lm", nullptr, dtype);
  const Agreement a = compare_greedy(reference, model, 3, 32, margin);
  const std::string divergence =
      a.first_divergence < 0 ? "never differs"
                             : fmt::format("first differs at step {} (f32 lead there {:.4g})", a.first_divergence,
                                           a.gap_at_divergence);
  MESSAGE(fmt::format("12x768 random GPT-2, {} vs f32, kernels {}: top-1 agrees on {}/{} teacher-forced steps "
                      "({} asserted with f32 lead > {}); max |logit error| {:.4g} (max |logit| {:.3g}); "
                      "free-running greedy over 3 prompts {}",
                      dtype == DType::i8 ? "int8" : dtype_name(dtype), nn::linear_kernel_level(), a.agreed, a.steps,
                      a.asserted, margin, a.max_logit_error, a.max_logit, divergence));
  CHECK(a.max_logit_error < max_error);
  CHECK(a.agreed >= min_agreement * a.steps);
}

}  // namespace

// Bounds from the measured errors (reported above) with headroom; the margin is twice the bound,
// beyond which rounding of that size cannot swap the top two.
TEST_CASE("dtype gpt2 12x768: f16 greedy decoding agrees with f32") { greedy_case(DType::f16, 0.02f, 0.04f, 0.95); }
TEST_CASE("dtype gpt2 12x768: bf16 greedy decoding agrees with f32") { greedy_case(DType::bf16, 0.15f, 0.3f, 0.8); }
TEST_CASE("dtype gpt2 12x768: int8 logits stay close and greedy decoding mostly agrees") {
  greedy_case(DType::i8, 0.6f, 1.2f, 0.7);
}

TEST_CASE("dtype linear: shapes that do not fit the layer are ShapeError, in every weight type and row count") {
  ThreadPool pool(2);
  for (const DType dtype : {DType::f32, DType::f16, DType::bf16, DType::i8}) {
    const nn::Linear layer = random_layer(16, 24, dtype, 5);
    for (const std::int64_t rows : {1, 9}) {  // decode kernels and prefill GEMM
      CAPTURE(dtype_name(dtype));
      CAPTURE(rows);
      Tensor y = Tensor::zeros(DType::f32, {rows, 24});
      const Tensor x = random_matrix(rows, 16, 1);
      CHECK_NOTHROW(nn::linear(nn::view(x), layer, nn::view(y), pool));
      const Tensor wide = random_matrix(rows, 17, 2);  // one input too many
      CHECK_THROWS_AS(nn::linear(nn::view(wide), layer, nn::view(y), pool), ShapeError);
      Tensor narrow = Tensor::zeros(DType::f32, {rows, 23});  // one output too few
      CHECK_THROWS_AS(nn::linear(nn::view(x), layer, nn::view(narrow), pool), ShapeError);
      Tensor short_y = Tensor::zeros(DType::f32, {rows + 1, 24});
      CHECK_THROWS_AS(nn::linear(nn::view(x), layer, nn::view(short_y), pool), ShapeError);
    }
  }
}
