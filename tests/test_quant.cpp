// Weights in GGML's Q8_0 and Q4_0 blocks: the quantizers and dequantizers against a scalar
// reference written here from GGML's block layout and against the `gguf` package's numpy
// implementation (bytes and values), nn::linear on the blocks against the f32 linear of the
// dequantized matrix at every level, row count and thread count, gather_rows, and the typed
// errors of rows that do not hold whole blocks.
//
// The gguf case needs the venv of tools/setup_venv.sh (build/venv, made by tools/test.sh); it
// skips with a message when that is absent.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <vector>

#include "ecr/nn/linear.hpp"
#include "ecr/nn/weights.hpp"
#include "nn/cpu/isa.hpp"
#include "support.hpp"

using namespace ecr;
using namespace ecr::test;
namespace cpu = ecr::nn::cpu;

namespace {

constexpr DType kBlockTypes[] = {DType::q8_0, DType::q4_0};

// Normal values; with `corners`, the first blocks hit the quantizers' corners: all zero, one
// value alone, a negative value of largest magnitude, ties of magnitude, values that round at .5.
Tensor test_values(std::int64_t rows, std::int64_t cols, unsigned seed, const char* name = "w", bool corners = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Tensor t = Tensor::empty(DType::f32, {rows, cols}, name);
  float* v = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) v[i] = dist(rng);
  if (corners && t.numel() >= 5 * 32) {
    std::fill(v, v + 32, 0.0f);
    std::fill(v + 32, v + 64, 0.0f);
    v[40] = -3.0f;
    v[64] = -9.0f;
    v[65] = 9.0f;
    for (int j = 96; j < 128; ++j) v[j] = static_cast<float>(j - 112) * 0.5f;
    for (int j = 128; j < 160; ++j) v[j] = 127.0f * static_cast<float>(j - 144) / 16.0f + 0.5f;
  }
  return t;
}

// --- the reference, written from the block layout alone -------------------------------------

std::uint16_t half_bits(float value) {
  const Eigen::half h(value);
  std::uint16_t bits;
  std::memcpy(&bits, &h, sizeof bits);
  return bits;
}

float half_value(const std::uint8_t* p) {
  Eigen::half h;
  std::memcpy(&h, p, sizeof h);
  return static_cast<float>(h);
}

std::vector<std::uint8_t> reference_quantize(DType dtype, const float* x, std::int64_t n) {
  std::vector<std::uint8_t> out;
  for (std::int64_t b = 0; b < n; b += 32) {
    const float* v = x + b;
    float amax = 0.0f, signed_max = 0.0f;
    for (int j = 0; j < 32; ++j)
      if (std::fabs(v[j]) > amax) amax = std::fabs(v[j]), signed_max = v[j];
    const float d = dtype == DType::q8_0 ? amax / 127.0f : signed_max / -8.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    const std::uint16_t bits = half_bits(d);
    out.push_back(static_cast<std::uint8_t>(bits & 0xff));
    out.push_back(static_cast<std::uint8_t>(bits >> 8));
    if (dtype == DType::q8_0) {
      for (int j = 0; j < 32; ++j) {
        volatile float scaled = v[j] * id;  // one rounding, as GGML's; never fused with the next step
        out.push_back(static_cast<std::uint8_t>(static_cast<std::int8_t>(std::round(scaled))));
      }
    } else {
      auto nibble = [&](float value) {
        volatile float scaled = value * id;
        const float shifted = scaled + 8.5f;
        return std::min(15, static_cast<int>(std::trunc(shifted)));
      };
      for (int j = 0; j < 16; ++j) out.push_back(static_cast<std::uint8_t>(nibble(v[j]) | nibble(v[j + 16]) << 4));
    }
  }
  return out;
}

std::vector<float> reference_dequantize(DType dtype, const std::uint8_t* p, std::int64_t n) {
  std::vector<float> out(static_cast<std::size_t>(n));
  const std::size_t bytes = dtype == DType::q8_0 ? 34 : 18;
  for (std::int64_t b = 0; b < n / 32; ++b, p += bytes) {
    const float d = half_value(p);
    for (int j = 0; j < 32; ++j) {
      const int q = dtype == DType::q8_0 ? static_cast<std::int8_t>(p[2 + j])
                                         : (j < 16 ? p[2 + j] & 15 : p[2 + j - 16] >> 4) - 8;
      out[static_cast<std::size_t>(b * 32 + j)] = d * static_cast<float>(q);
    }
  }
  return out;
}

const std::uint8_t* bytes_of(const Tensor& t) { return static_cast<const std::uint8_t*>(t.raw()); }

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

std::vector<cpu::Isa> supported_levels() {
  std::vector<cpu::Isa> levels;
  for (cpu::Isa isa : {cpu::Isa::portable, cpu::Isa::avx2, cpu::Isa::avx512, cpu::Isa::avx512bf16})
    if (cpu::isa_supported(isa)) levels.push_back(isa);
  return levels;
}

Tensor run(const cpu::LinearKernels& kernels, const nn::Linear& layer, const Tensor& x, ThreadPool& pool,
           nn::Activation act = nn::Activation::none, bool accumulate = false) {
  Tensor y = Tensor::zeros(DType::f32, {x.dim(0), layer.out()});
  if (accumulate) y.vector<float>().setConstant(0.25f);
  cpu::linear_stored(kernels, nn::view(x), layer, nn::view(y), pool, act, accumulate);
  return y;
}

}  // namespace

TEST_CASE("quant blocks: q8_0 and q4_0 quantize and dequantize as GGML's block layout says") {
  const Tensor values = test_values(6, 256, 1, "w", true);
  for (const DType dtype : kBlockTypes) {
    CAPTURE(dtype_name(dtype));
    const Tensor q = values.from_f32(dtype);
    CHECK(q.dtype() == dtype);
    CHECK(q.shape() == values.shape());
    CHECK(q.nbytes() == static_cast<std::size_t>(6 * (256 / 32)) * (dtype == DType::q8_0 ? 34u : 18u));
    CHECK(dtype_traits(dtype).block == 32);
    CHECK(dtype_traits(dtype).block_bytes == (dtype == DType::q8_0 ? 34u : 18u));
    const std::vector<std::uint8_t> expected = reference_quantize(dtype, values.data<float>(), values.numel());
    REQUIRE(expected.size() == q.nbytes());
    CHECK(std::memcmp(expected.data(), q.raw(), q.nbytes()) == 0);

    const Tensor back = q.to_f32();
    const std::vector<float> reference = reference_dequantize(dtype, bytes_of(q), q.numel());
    CHECK(std::memcmp(reference.data(), back.raw(), back.nbytes()) == 0);
    // The round trip keeps each value within half a step of its block's scale, plus what rounding
    // d to f16 (2^-11 relative) costs the largest quant; an all-zero block stays zero. Q4_0's
    // quants run -8 .. 7 with the largest magnitude at -8: a value of the other sign may be
    // clipped at 7, a whole step away.
    const float* v = values.data<float>();
    const float* w = back.data<float>();
    for (std::int64_t b = 0; b < values.numel() / 32; ++b) {
      float amax = 0.0f, max = 0.0f;
      for (int j = 0; j < 32; ++j)
        if (std::fabs(v[b * 32 + j]) > amax) amax = std::fabs(v[b * 32 + j]), max = v[b * 32 + j];
      const float qmax = dtype == DType::q8_0 ? 127.0f : 8.0f;
      const float step = amax / qmax;
      for (int j = 0; j < 32; ++j) {
        const bool clipped = dtype == DType::q4_0 && v[b * 32 + j] * max < 0.0f;
        REQUIRE(std::fabs(w[b * 32 + j] - v[b * 32 + j]) <= ((clipped ? 1.0f : 0.5f) + qmax * 0x1p-11f) * step + 1e-7f);
      }
    }
    // A row view starts at a whole number of blocks.
    CHECK(same_bits(q.rows(2, 3).to_f32(), back.rows(2, 3)));
  }
}

TEST_CASE("quant gguf: the engine's blocks are gguf's bytes, and gguf reads them as the same values") {
  const fs::path python = ECR_VENV_PYTHON;
  if (!fs::exists(python) ||
      run_command(fmt::format("'{}' -c 'import gguf' >/dev/null 2>&1", python.string())) != 0) {
    MESSAGE("skipped: no venv with the gguf package at " << python << " (tools/setup_venv.sh makes it)");
    return;
  }
  const fs::path dir = temp_dir("quant_gguf");
  const Tensor values = test_values(16, 320, 7, "w", true);
  write_npy(dir / "values.npy", values);
  for (const DType dtype : kBlockTypes) {
    CAPTURE(dtype_name(dtype));
    const Tensor q = values.from_f32(dtype);
    {
      std::ofstream ours(dir / "ours.bin", std::ios::binary);
      ours.write(static_cast<const char*>(q.raw()), static_cast<std::streamsize>(q.nbytes()));
    }
    std::string output;
    const int rc = run_command(fmt::format("'{}' '{}' {} '{}' '{}' '{}' '{}'", python.string(),
                                           (source_dir() / "tests" / "gguf_quants.py").string(), dtype_name(dtype),
                                           (dir / "values.npy").string(), (dir / "ours.bin").string(),
                                           (dir / "gguf.bin").string(), (dir / "gguf.npy").string()),
                               &output);
    REQUIRE_MESSAGE(rc == 0, output);
    std::ifstream in(dir / "gguf.bin", std::ios::binary);
    const std::vector<char> theirs((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(theirs.size() == q.nbytes());
    CHECK(std::memcmp(theirs.data(), q.raw(), q.nbytes()) == 0);
    const Tensor dequantized = read_npy(dir / "gguf.npy");
    CHECK(same_bits(dequantized, q.to_f32()));
  }
}

TEST_CASE("quant linear: q8_0 and q4_0 give the bits of the f32 linear on the dequantized matrix") {
  ThreadPool one(1), two(2);
  struct Shape2 {
    std::int64_t in, out;
  };
  for (const Shape2 s : {Shape2{64, 40}, Shape2{96, 131}, Shape2{160, 7}, Shape2{32, 300}}) {
    for (const DType dtype : kBlockTypes) {
      const nn::Linear f32{test_values(s.out, s.in, 3), test_values(1, s.out, 4, "b").reshape({s.out})};
      const nn::Linear q = nn::cast_matrix(f32, dtype);
      const nn::Linear dequantized{q.weight.to_f32(), q.bias};
      for (const std::int64_t rows : {1, 2, 3, 4, 5, 17, 64}) {
        const Tensor x = test_values(rows, s.in, 5 + static_cast<unsigned>(rows), "x");
        for (const cpu::Isa isa : supported_levels()) {
          CAPTURE(dtype_name(dtype));
          CAPTURE(s.in);
          CAPTURE(s.out);
          CAPTURE(rows);
          CAPTURE(cpu::isa_name(isa));
          const cpu::LinearKernels& k = cpu::kernels(isa);
          const Tensor y = run(k, q, x, two, nn::Activation::gelu_tanh);
          const Tensor expected = run(k, dequantized, x, two, nn::Activation::gelu_tanh);
          CHECK(max_abs_diff(y, expected) <= 1e-4f);
          CHECK(same_bits(y, expected));
          CHECK(same_bits(run(k, q, x, one, nn::Activation::gelu_tanh), y));  // any thread count, the same bits
          CHECK(same_bits(run(k, q, x, two, nn::Activation::none, true),
                          run(k, dequantized, x, two, nn::Activation::none, true)));
          // Every level sums the same values, in its own order.
          const Tensor portable = run(cpu::portable_kernels(), q, x, two, nn::Activation::gelu_tanh);
          CHECK(max_abs_diff(y, portable) <= 1e-4f);
        }
      }
    }
  }
}

TEST_CASE("quant linear: the active level through nn::linear, and gather_rows reads dequantized rows") {
  ThreadPool pool(2);
  for (const DType dtype : kBlockTypes) {
    CAPTURE(dtype_name(dtype));
    const nn::Linear q = nn::cast_matrix(nn::Linear{test_values(50, 96, 11), {}}, dtype);
    const nn::Linear dequantized{q.weight.to_f32(), {}};
    for (const std::int64_t rows : {1, 9}) {
      const Tensor x = test_values(rows, 96, 12, "x");
      Tensor y = Tensor::zeros(DType::f32, {rows, 50}), expected = Tensor::zeros(DType::f32, {rows, 50});
      nn::linear(nn::view(x), q, nn::view(y), pool);
      nn::linear(nn::view(x), dequantized, nn::view(expected), pool);
      CHECK(same_bits(y, expected));
    }
    const std::vector<std::int32_t> ids = {49, 0, 7, 7};
    Tensor rows = Tensor::zeros(DType::f32, {4, 96});
    nn::gather_rows(q, ids, nn::view(rows), "token id");
    for (std::size_t i = 0; i < ids.size(); ++i)
      CHECK(same_bits(rows.row(static_cast<std::int64_t>(i)), dequantized.weight.row(ids[i])));
    const std::vector<std::int32_t> outside = {50};
    Tensor one = Tensor::zeros(DType::f32, {1, 96});
    CHECK_THROWS_AS(nn::gather_rows(q, outside, nn::view(one), "token id"), InputError);
  }
}

TEST_CASE("quant shapes: rows that do not hold whole blocks are ShapeError naming the tensor") {
  ThreadPool pool(2);
  // The ShapeError's message, or "" when none is thrown.
  const auto message = [](auto&& f) {
    try {
      f();
    } catch (const ShapeError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const auto names = [](const std::string& what, const char* name) {
    CHECK_MESSAGE(what.find(name) != std::string::npos, "'" << what << "' should name " << name);
  };
  for (const DType dtype : kBlockTypes) {
    CAPTURE(dtype_name(dtype));
    const nn::Linear odd{test_values(8, 48, 1, "h.0.mlp.c_fc.weight"), {}};
    names(message([&] { nn::cast_matrix(odd, dtype); }), "h.0.mlp.c_fc.weight");
    names(message([&] { Tensor::empty(dtype, {4, 33}, "wte"); }), "wte");
    const Tensor q = Tensor::zeros(dtype, {4, 64}, "blocks");
    CHECK(q.reshape({8, 32}).nbytes() == q.nbytes());
    names(message([&] { (void)q.reshape({16, 16}); }), "blocks");
    names(message([&] { (void)q.reshape({256}).rows(16, 32); }), "blocks");
    CHECK_THROWS_AS(dtype_size(dtype), ShapeError);
    // Values that no block can scale: an InputError; a block too small for 1 / d: zeros, no UB.
    Tensor bad = test_values(2, 32, 4, "emb");
    bad.data<float>()[33] = std::numeric_limits<float>::infinity();
    names([&] {
      try {
        (void)bad.from_f32(dtype);
      } catch (const InputError& e) {
        return std::string(e.what());
      }
      return std::string();
    }(), "emb");
    Tensor tiny = Tensor::zeros(DType::f32, {1, 32}, "tiny");
    tiny.data<float>()[3] = 1e-38f;  // d = 1e-38 / 127 or / -8: 1 / d overflows, d rounds to f16 zero
    CHECK(tiny.from_f32(dtype).to_f32().vector<float>().isZero());
    // A layer that does not fit its input, and a block weight given an int8 scale.
    const nn::Linear layer = nn::cast_matrix(nn::Linear{test_values(24, 64, 2), {}}, dtype);
    const Tensor x = test_values(3, 96, 3, "x");
    Tensor y = Tensor::zeros(DType::f32, {3, 24});
    CHECK_THROWS_AS(nn::linear(nn::view(x), layer, nn::view(y), pool), ShapeError);
    nn::Linear scaled = layer;
    scaled.scale = Tensor::zeros(DType::f32, {24}, "scale");
    const Tensor fits = test_values(3, 64, 3, "x");
    CHECK_THROWS_AS(nn::linear(nn::view(fits), scaled, nn::view(y), pool), ShapeError);
  }
}
