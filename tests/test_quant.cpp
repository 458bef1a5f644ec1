// Weights in GGML's blocks: the quantizers and dequantizers against a scalar reference written
// here from GGML's block layout and against the `gguf` package's numpy implementation (bytes and
// values; random blocks for every type), nn::linear on the blocks against the f32 linear of the
// dequantized matrix at every level, row count and thread count, gather_rows, the one GGUF type
// mapping, and the typed errors of rows that do not hold whole blocks.
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

#include "ecr/io/gguf.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/nn/weights.hpp"
#include "nn/cpu/isa.hpp"
#include "support.hpp"

using namespace ecr;
using namespace ecr::test;
namespace cpu = ecr::nn::cpu;

namespace {

constexpr DType kBlockTypes[] = {DType::q8_0, DType::q4_0, DType::q4_1, DType::q5_0, DType::q5_1};
// Those with a quantizer (from_f32): GGML's reference rounding, which gguf's numpy code repeats.
constexpr DType kQuantizedTypes[] = {DType::q8_0, DType::q4_0, DType::q4_1, DType::q5_0, DType::q5_1};

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

// Byte offsets of a block's f16 scales: d, and m where the type has one.
std::vector<std::size_t> scale_offsets(DType dtype) {
  if (dtype == DType::q4_1 || dtype == DType::q5_1) return {0, 2};
  return {0};
}

// Blocks of random bytes whose f16 scales are finite and moderate (in [-0.1, 0.1]): every quant
// bit pattern, but no infinity or NaN that a model file would not hold.
Tensor random_blocks(DType dtype, std::int64_t rows, std::int64_t cols, unsigned seed, const char* name = "w") {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-0.1f, 0.1f);
  Tensor t = Tensor::empty(dtype, {rows, cols}, name);
  auto* p = static_cast<std::uint8_t*>(t.raw());
  for (std::size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<std::uint8_t>(byte(rng));
  for (std::size_t b = 0; b < t.nbytes(); b += dtype_traits(dtype).block_bytes) {
    for (const std::size_t offset : scale_offsets(dtype)) {
      const Eigen::half h(scale(rng));
      std::memcpy(p + b + offset, &h, sizeof h);
    }
  }
  return t;
}

// A (rows, cols) weight: test values quantized where the type has a quantizer, else random blocks.
Tensor block_weight(DType dtype, std::int64_t rows, std::int64_t cols, unsigned seed) {
  if (dtype_traits(dtype).from_f32) return test_values(rows, cols, seed).from_f32(dtype);
  return random_blocks(dtype, rows, cols, seed);
}

// --- the reference, written from the block layout alone -------------------------------------

// The blocks of 32 with a quantizer: `bits` per quant; symmetric (d only, q offset by half the
// range; Q8_0's q signed) or affine (d and a minimum m: x = d * q + m); Q5's fifth bits in a
// uint32 after the scales, then the quants.
struct Layout {
  int bits;
  bool affine;
  int levels() const { return (1 << bits) - 1; }  // largest q of a 4- or 5-bit quant
  int offset() const { return bits == 8 ? 0 : 1 << (bits - 1); }
  std::size_t high_bits() const { return bits == 5 ? 4 : 0; }
  std::size_t scales() const { return affine ? 4 : 2; }
  std::size_t bytes() const { return scales() + high_bits() + (bits == 8 ? 32 : 16); }
};

Layout layout(DType dtype) {
  switch (dtype) {
    case DType::q8_0: return {8, false};
    case DType::q4_0: return {4, false};
    case DType::q4_1: return {4, true};
    case DType::q5_0: return {5, false};
    default: return {5, true};  // q5_1
  }
}

std::size_t reference_bytes(DType dtype) { return layout(dtype).bytes(); }

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

void push_half(std::vector<std::uint8_t>& out, float value) {
  const std::uint16_t bits = half_bits(value);
  out.push_back(static_cast<std::uint8_t>(bits & 0xff));
  out.push_back(static_cast<std::uint8_t>(bits >> 8));
}

// GGML's reference quantizers: symmetric d = max|x| / 127 (Q8_0, q = round(x / d)) or d = m /
// -offset for the value m of largest magnitude (the first on a tie), q = min(levels, trunc(x / d
// + offset + 0.5)); affine d = (max - min) / levels, q = min(levels, trunc((x - min) / d + 0.5)).
std::vector<std::uint8_t> reference_quantize(DType dtype, const float* x, std::int64_t n) {
  const Layout l = layout(dtype);
  std::vector<std::uint8_t> out;
  for (std::int64_t b = 0; b < n; b += 32) {
    const float* v = x + b;
    float amax = 0.0f, signed_max = 0.0f;
    for (int j = 0; j < 32; ++j)
      if (std::fabs(v[j]) > amax) amax = std::fabs(v[j]), signed_max = v[j];
    const float min = *std::min_element(v, v + 32), max = *std::max_element(v, v + 32);
    const float d = l.affine ? (max - min) / static_cast<float>(l.levels())
                    : l.bits == 8 ? amax / 127.0f
                                  : signed_max / -static_cast<float>(l.offset());
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    push_half(out, d);
    if (l.affine) push_half(out, min);
    int q[32];
    for (int j = 0; j < 32; ++j) {
      volatile float scaled = (l.affine ? v[j] - min : v[j]) * id;  // one rounding, as GGML's; never fused
      if (l.bits == 8) {
        q[j] = static_cast<int>(std::round(scaled));
      } else {
        const float shifted = scaled + (l.affine ? 0.5f : static_cast<float>(l.offset()) + 0.5f);
        q[j] = std::min(l.levels(), static_cast<int>(std::trunc(shifted)));
      }
    }
    if (l.bits == 8) {
      for (int j = 0; j < 32; ++j) out.push_back(static_cast<std::uint8_t>(static_cast<std::int8_t>(q[j])));
      continue;
    }
    if (l.bits == 5) {
      std::uint32_t qh = 0;
      for (int j = 0; j < 32; ++j) qh |= static_cast<std::uint32_t>(q[j] >> 4) << j;
      for (int k = 0; k < 4; ++k) out.push_back(static_cast<std::uint8_t>(qh >> (8 * k)));
    }
    for (int j = 0; j < 16; ++j) out.push_back(static_cast<std::uint8_t>((q[j] & 15) | (q[j + 16] & 15) << 4));
  }
  return out;
}

std::vector<float> reference_dequantize(DType dtype, const std::uint8_t* p, std::int64_t n) {
  const Layout l = layout(dtype);
  std::vector<float> out(static_cast<std::size_t>(n));
  for (std::int64_t b = 0; b < n / 32; ++b, p += l.bytes()) {
    const float d = half_value(p);
    const std::uint8_t* qh = p + l.scales();
    const std::uint8_t* qs = qh + l.high_bits();
    for (int j = 0; j < 32; ++j) {
      int q = l.bits == 8 ? static_cast<std::int8_t>(qs[j]) : j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
      if (l.bits == 5) q |= (qh[j / 8] >> (j % 8) & 1) << 4;
      float& x = out[static_cast<std::size_t>(b * 32 + j)];
      x = l.affine ? d * static_cast<float>(q) + half_value(p + 2) : d * static_cast<float>(q - l.offset());
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

TEST_CASE("quant blocks: the quantizers quantize and dequantize as GGML's block layout says") {
  const Tensor values = test_values(6, 256, 1, "w", true);
  for (const DType dtype : kQuantizedTypes) {
    CAPTURE(dtype_name(dtype));
    const Tensor q = values.from_f32(dtype);
    CHECK(q.dtype() == dtype);
    CHECK(q.shape() == values.shape());
    CHECK(q.nbytes() == static_cast<std::size_t>(6 * (256 / 32)) * reference_bytes(dtype));
    CHECK(dtype_traits(dtype).block == 32);
    CHECK(dtype_traits(dtype).block_bytes == reference_bytes(dtype));
    const std::vector<std::uint8_t> expected = reference_quantize(dtype, values.data<float>(), values.numel());
    REQUIRE(expected.size() == q.nbytes());
    CHECK(std::memcmp(expected.data(), q.raw(), q.nbytes()) == 0);

    const Tensor back = q.to_f32();
    const std::vector<float> reference = reference_dequantize(dtype, bytes_of(q), q.numel());
    CHECK(std::memcmp(reference.data(), back.raw(), back.nbytes()) == 0);
    // The round trip keeps each value within half a step of its block's scale, plus what rounding
    // d to f16 (2^-11 relative) costs the largest quant; an all-zero block stays zero. Q4_0's
    // quants run -8 .. 7 with the largest magnitude at -8 (Q5_0's -16 .. 15): a value of the other
    // sign may be clipped at 7, a whole step away. The affine types' steps span [min, max], and
    // rounding m to f16 costs up to 2^-11 |min| more.
    const Layout l = layout(dtype);
    const float* v = values.data<float>();
    const float* w = back.data<float>();
    for (std::int64_t b = 0; b < values.numel() / 32; ++b) {
      const float* block = v + b * 32;
      float amax = 0.0f, max = 0.0f;
      for (int j = 0; j < 32; ++j)
        if (std::fabs(block[j]) > amax) amax = std::fabs(block[j]), max = block[j];
      const float min = *std::min_element(block, block + 32);
      const float qmax = static_cast<float>(l.affine ? l.levels() : l.bits == 8 ? 127 : l.offset());
      const float step = (l.affine ? *std::max_element(block, block + 32) - min : amax) / qmax;
      const float offset_error = l.affine ? std::fabs(min) * 0x1p-11f + 1e-6f : 1e-7f;
      for (int j = 0; j < 32; ++j) {
        const bool clipped = !l.affine && l.bits != 8 && block[j] * max < 0.0f;
        REQUIRE(std::fabs(w[b * 32 + j] - block[j]) <=
                ((clipped ? 1.0f : 0.5f) + qmax * 0x1p-11f) * step + offset_error);
      }
    }
    // A row view starts at a whole number of blocks.
    CHECK(same_bits(q.rows(2, 3).to_f32(), back.rows(2, 3)));
  }
}

TEST_CASE("quant gguf: the engine's blocks are gguf's bytes, and gguf reads any blocks as the same values") {
  const fs::path python = ECR_VENV_PYTHON;
  if (!fs::exists(python) ||
      run_command(fmt::format("'{}' -c 'import gguf' >/dev/null 2>&1", python.string())) != 0) {
    MESSAGE("skipped: no venv with the gguf package at " << python << " (tools/setup_venv.sh makes it)");
    return;
  }
  const fs::path dir = temp_dir("quant_gguf");
  const Tensor values = test_values(16, 1280, 7, "w", true);
  write_npy(dir / "values.npy", values);
  const auto write = [](const fs::path& path, const Tensor& t) {
    std::ofstream out(path, std::ios::binary);
    out.write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
  };
  unsigned seed = 20;
  for (const DType dtype : kBlockTypes) {
    CAPTURE(dtype_name(dtype));
    const bool quantizer = dtype_traits(dtype).from_f32 != nullptr;
    const Tensor q = quantizer ? values.from_f32(dtype) : Tensor();
    const Tensor random = random_blocks(dtype, values.dim(0), values.dim(1), seed++);
    if (quantizer) write(dir / "ours.bin", q);
    write(dir / "random.bin", random);
    fs::remove(dir / "gguf.bin");
    std::string command = fmt::format("'{}' '{}' {} '{}' '{}' '{}' '{}'", python.string(),
                                      (source_dir() / "tests" / "gguf_quants.py").string(), dtype_name(dtype),
                                      (dir / "values.npy").string(), (dir / "gguf.bin").string(),
                                      (dir / "random.bin").string(), (dir / "random.npy").string());
    if (quantizer) command += fmt::format(" '{}' '{}'", (dir / "ours.bin").string(), (dir / "gguf.npy").string());
    std::string output;
    REQUIRE_MESSAGE(run_command(command, &output) == 0, output);
    CHECK(same_bits(read_npy(dir / "random.npy"), random.to_f32()));
    CHECK(fs::exists(dir / "gguf.bin") == quantizer);  // gguf quantizes exactly the types ecr does
    if (!quantizer) continue;
    std::ifstream in(dir / "gguf.bin", std::ios::binary);
    const std::vector<char> theirs((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(theirs.size() == q.nbytes());
    CHECK(std::memcmp(theirs.data(), q.raw(), q.nbytes()) == 0);
    CHECK(same_bits(read_npy(dir / "gguf.npy"), q.to_f32()));
  }
}

TEST_CASE("quant linear: every block type gives the bits of the f32 linear on the dequantized matrix") {
  ThreadPool one(1), two(2);
  struct Shape2 {
    std::int64_t blocks, out;  // blocks per row, rows of the weight
  };
  for (const Shape2 s : {Shape2{2, 40}, Shape2{3, 131}, Shape2{5, 7}, Shape2{1, 300}}) {
    for (const DType dtype : kBlockTypes) {
      const std::int64_t in = s.blocks * dtype_traits(dtype).block;
      const nn::Linear q{block_weight(dtype, s.out, in, 3), test_values(1, s.out, 4, "b").reshape({s.out})};
      const nn::Linear dequantized{q.weight.to_f32(), q.bias};
      for (const std::int64_t rows : {1, 2, 3, 4, 5, 17, 64}) {
        const Tensor x = test_values(rows, in, 5 + static_cast<unsigned>(rows), "x");
        for (const cpu::Isa isa : supported_levels()) {
          CAPTURE(dtype_name(dtype));
          CAPTURE(in);
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
    const std::int64_t in = 3 * dtype_traits(dtype).block;
    const nn::Linear q{block_weight(dtype, 50, in, 11), {}};
    const nn::Linear dequantized{q.weight.to_f32(), {}};
    for (const std::int64_t rows : {1, 9}) {
      const Tensor x = test_values(rows, in, 12, "x");
      Tensor y = Tensor::zeros(DType::f32, {rows, 50}), expected = Tensor::zeros(DType::f32, {rows, 50});
      nn::linear(nn::view(x), q, nn::view(y), pool);
      nn::linear(nn::view(x), dequantized, nn::view(expected), pool);
      CHECK(same_bits(y, expected));
    }
    const std::vector<std::int32_t> ids = {49, 0, 7, 7};
    Tensor rows = Tensor::zeros(DType::f32, {4, in});
    nn::gather_rows(q, ids, nn::view(rows), "token id");
    for (std::size_t i = 0; i < ids.size(); ++i)
      CHECK(same_bits(rows.row(static_cast<std::int64_t>(i)), dequantized.weight.row(ids[i])));
    const std::vector<std::int32_t> outside = {50};
    Tensor one = Tensor::zeros(DType::f32, {1, in});
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
    const std::int64_t block = dtype_traits(dtype).block;
    const nn::Linear odd{test_values(8, block + 16, 1, "h.0.mlp.c_fc.weight"), {}};
    names(message([&] { nn::cast_matrix(odd, dtype); }), "h.0.mlp.c_fc.weight");
    names(message([&] { Tensor::empty(dtype, {4, block + 1}, "wte"); }), "wte");
    const Tensor q = Tensor::zeros(dtype, {4, 2 * block}, "blocks");
    CHECK(q.reshape({8, block}).nbytes() == q.nbytes());
    names(message([&] { (void)q.reshape({16, block / 2}); }), "blocks");
    names(message([&] { (void)q.reshape({8 * block}).rows(block / 2, block); }), "blocks");
    CHECK_THROWS_AS(dtype_size(dtype), ShapeError);
    // A layer that does not fit its input, and a block weight given an int8 scale.
    const nn::Linear layer{block_weight(dtype, 24, 2 * block, 2), {}};
    const Tensor x = test_values(3, 3 * block, 3, "x");
    Tensor y = Tensor::zeros(DType::f32, {3, 24});
    CHECK_THROWS_AS(nn::linear(nn::view(x), layer, nn::view(y), pool), ShapeError);
    nn::Linear scaled = layer;
    scaled.scale = Tensor::zeros(DType::f32, {24}, "scale");
    const Tensor fits = test_values(3, 2 * block, 3, "x");
    CHECK_THROWS_AS(nn::linear(nn::view(fits), scaled, nn::view(y), pool), ShapeError);
  }
  for (const DType dtype : kQuantizedTypes) {
    CAPTURE(dtype_name(dtype));
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
    // d = 1e-38 / 127, / -8, / 15 ...: 1 / d overflows, d rounds to f16 zero (and m is 0)
    tiny.data<float>()[3] = 1e-38f;
    CHECK(tiny.from_f32(dtype).to_f32().vector<float>().isZero());
  }
}

TEST_CASE("quant gguf types: one mapping from GGUF tensor types to the engine's, with ggml's block sizes") {
  int mapped = 0;
  for (std::uint8_t code = 0; dtype_from_code(code); ++code) {
    const DTypeTraits& t = dtype_traits(*dtype_from_code(code));
    CAPTURE(t.name);
    if (t.ggml_type < 0) continue;
    ++mapped;
    const auto type = static_cast<gguf::TensorType>(t.ggml_type);
    CHECK(dtype_from_gguf(type) == t.dtype);
    const gguf::TypeTraits* ggml = gguf::type_traits(static_cast<std::uint32_t>(t.ggml_type));
    REQUIRE(ggml != nullptr);
    CHECK(ggml->supported);
    CHECK(ggml->block_size == t.block);
    CHECK(ggml->block_bytes == t.block_bytes);
    CHECK(t.linear != LinearKernel::none);
  }
  CHECK(mapped == 3 + static_cast<int>(std::size(kBlockTypes)));  // f32, f16, bf16 and the blocks
  for (const DType dtype : kBlockTypes) CHECK(dtype_traits(dtype).ggml_type >= 0);
  // Types ggml defines that ecr has no kernels for: Q8_1 (9), Q8_K (15), IQ4_NL (20).
  for (const std::uint32_t id : {9u, 15u, 20u}) CHECK_FALSE(dtype_from_gguf(static_cast<gguf::TensorType>(id)));
}
