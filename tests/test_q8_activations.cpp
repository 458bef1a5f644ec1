// nn::linear with 8-bit activations (Activations::q8, ggml's numerics: src/nn/cpu/q8_kernels.inl):
// the activation blocks equal a numpy implementation of ggml's rounding (tests/q8_activations.py),
// byte for byte; each weight row's dot product equals the double-precision sum over the blocks'
// integers and scales within f32 rounding; every level gives the same bits; and a layer without
// a q8 kernel (f32, the k-quants) or left at Activations::f32 computes exactly as before.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <vector>

#include <Eigen/Core>
#include <fmt/format.h>

#include "ecr/nn/linear.hpp"
#include "nn/cpu/isa.hpp"
#include "support.hpp"

using namespace ecr;
using namespace ecr::test;
namespace cpu = ecr::nn::cpu;

namespace {

// Normal values with a spread of magnitudes per block, and blocks that hit the corners: all
// zero, one value alone, halves that round to even (x * 127 / amax = k + 0.5 exactly).
Tensor activations(std::int64_t rows, std::int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::uniform_real_distribution<float> spread(-4.0f, 4.0f);
  Tensor t = Tensor::empty(DType::f32, {rows, cols}, "x");
  float* v = t.data<float>();
  for (std::int64_t b = 0; b < t.numel(); b += 32) {
    const float scale = std::exp2(spread(rng));
    for (int j = 0; j < 32; ++j) v[b + j] = scale * dist(rng);
  }
  if (t.numel() >= 3 * 32) {
    std::fill(v, v + 32, 0.0f);
    std::fill(v + 32, v + 64, 0.0f);
    v[40] = -3.0f;
    for (int j = 64; j < 96; ++j) v[j] = static_cast<float>(j - 80) + 0.5f;  // amax 16.5: x * 127 / 16.5
    v[64] = 127.0f;  // amax 127: id = 1, the halves stay halves and round to even
  }
  return t;
}

float half(const std::uint8_t* p) {
  Eigen::half h;
  std::memcpy(&h, p, sizeof h);
  return static_cast<float>(h);
}

std::vector<std::uint8_t> quantize(const cpu::LinearKernels& k, const Tensor& x, bool with_sum) {
  const std::int64_t in = x.dim(1), ld = cpu::q8_row_bytes(in, with_sum);
  std::vector<std::uint8_t> out(static_cast<std::size_t>(x.dim(0) * ld));
  for (std::int64_t r = 0; r < x.dim(0); ++r)
    (with_sum ? k.quantize_q8_1 : k.quantize_q8_0)(x.data<float>() + r * in, in, out.data() + r * ld);
  return out;
}

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Weight quants of block b of a row as integers, and its d and m (0 for the symmetric types),
// read from the layout (include/ecr/core/dtype.hpp), independent of the kernels.
struct WeightBlock {
  int q[32];
  double d, m;
};
WeightBlock weight_block(DType dtype, const std::uint8_t* p) {
  WeightBlock w{};
  w.d = half(p);
  const auto nibble = [](const std::uint8_t* qs, int j) { return j < 16 ? qs[j] & 15 : qs[j - 16] >> 4; };
  const auto fifth = [](const std::uint8_t* qh, int j) {
    std::uint32_t h;
    std::memcpy(&h, qh, 4);
    return static_cast<int>((h >> j) & 1) << 4;
  };
  for (int j = 0; j < 32; ++j) {
    switch (dtype) {
      case DType::q8_0: w.q[j] = static_cast<std::int8_t>(p[2 + j]); break;
      case DType::q4_0: w.q[j] = nibble(p + 2, j) - 8; break;
      case DType::q4_1: w.q[j] = nibble(p + 4, j); break;
      case DType::q5_0: w.q[j] = (nibble(p + 6, j) | fifth(p + 2, j)) - 16; break;
      case DType::q5_1: w.q[j] = nibble(p + 8, j) | fifth(p + 4, j); break;
      default: FAIL("not a block type of 32");
    }
  }
  if (dtype == DType::q4_1 || dtype == DType::q5_1) w.m = half(p + 2);
  return w;
}

constexpr DType kTypes[] = {DType::q8_0, DType::q4_0, DType::q4_1, DType::q5_0, DType::q5_1};

std::vector<cpu::Isa> supported_levels() {
  std::vector<cpu::Isa> levels;
  for (cpu::Isa isa : {cpu::Isa::portable, cpu::Isa::avx2, cpu::Isa::avx512, cpu::Isa::avx512bf16})
    if (cpu::isa_supported(isa)) levels.push_back(isa);
  return levels;
}

Tensor run(const cpu::LinearKernels& kernels, const nn::Linear& layer, const Tensor& x, ThreadPool& pool) {
  Tensor y = Tensor::zeros(DType::f32, {x.dim(0), layer.out()});
  cpu::linear_stored(kernels, nn::view(x), layer, nn::view(y), pool, nn::Activation::none, false);
  return y;
}

}  // namespace

TEST_CASE("q8 activations: ggml's q8_0 and q8_1 blocks, byte for byte as the numpy reference") {
  ECR_REQUIRE_TORCH();  // Debian's python3 with numpy
  const fs::path dir = temp_dir("q8_activations");
  const Tensor x = activations(7, 1536, 3);
  write_npy(dir / "x.npy", x);
  std::string output;
  REQUIRE_MESSAGE(run_command(fmt::format("'{}' '{}' '{}' '{}' '{}'", ECR_PYTHON,
                                          (source_dir() / "tests" / "q8_activations.py").string(),
                                          (dir / "x.npy").string(), (dir / "q8_0.bin").string(),
                                          (dir / "q8_1.bin").string()),
                              &output) == 0,
                  output);
  const auto q8_0 = read_bytes(dir / "q8_0.bin"), q8_1 = read_bytes(dir / "q8_1.bin");
  for (cpu::Isa isa : supported_levels()) {
    CAPTURE(cpu::isa_name(isa));
    const cpu::LinearKernels& k = cpu::kernels(isa);
    CHECK(quantize(k, x, false) == q8_0);
    CHECK(quantize(k, x, true) == q8_1);
  }
}

TEST_CASE("q8 linear: each dot product is the double sum of the blocks' integers and scales, the same bits on every level") {
  ThreadPool pool(2);
  const std::int64_t in = 576, out = 300;
  unsigned seed = 11;
  for (const DType dtype : kTypes) {
    CAPTURE(dtype_name(dtype));
    const bool with_sum = dtype_traits(dtype).activations == ActivationBlocks::q8_1;
    nn::Linear layer(activations(out, in, seed++).from_f32(dtype), Tensor());
    layer.activations = nn::Activations::q8;
    for (const std::int64_t rows : {1, 3, 9}) {
      CAPTURE(rows);
      const Tensor x = activations(rows, in, seed++);
      const auto& portable = cpu::kernels(cpu::Isa::portable);
      const Tensor y = run(portable, layer, x, pool);
      const auto xq = quantize(portable, x, with_sum);
      const std::int64_t ldxq = cpu::q8_row_bytes(in, with_sum), xbytes = with_sum ? 36 : 34;
      const std::size_t wrow = row_bytes(dtype, in, "w");
      int worst = 0;
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t j = 0; j < out; ++j) {
          double sum = 0, magnitude = 0;
          for (std::int64_t b = 0; b < in / 32; ++b) {
            const auto* wb = static_cast<const std::uint8_t*>(layer.weight.raw()) + j * wrow +
                             b * static_cast<std::int64_t>(dtype_traits(dtype).block_bytes);
            const std::uint8_t* xb = xq.data() + r * ldxq + b * xbytes;
            const WeightBlock w = weight_block(dtype, wb);
            long long dot = 0;
            for (int t = 0; t < 32; ++t) dot += w.q[t] * static_cast<std::int8_t>(xb[(with_sum ? 4 : 2) + t]);
            const double scaled = w.d * half(xb) * static_cast<double>(dot);
            const double min_term = with_sum ? w.m * half(xb + 2) : 0.0;  // m times f16(d * sum(q))
            sum += scaled + min_term;
            magnitude += std::fabs(scaled) + std::fabs(min_term);
          }
          const double got = y.data<float>()[r * out + j];
          // f32 rounding of each block's scale product and of the running sums
          if (std::fabs(got - sum) > 4e-7 * magnitude * std::sqrt(in / 32.0) + 1e-30) ++worst;
        }
      }
      CHECK(worst == 0);
      for (cpu::Isa isa : supported_levels()) {
        CAPTURE(cpu::isa_name(isa));
        const Tensor other = run(cpu::kernels(isa), layer, x, pool);
        CHECK(std::memcmp(other.raw(), y.raw(), y.nbytes()) == 0);
      }
      // Threads split the output, never a sum: one thread gives the same bits.
      ThreadPool one(1);
      CHECK(std::memcmp(run(cpu::active_kernels(), layer, x, one).raw(), run(cpu::active_kernels(), layer, x, pool).raw(),
                        y.nbytes()) == 0);
    }
  }
}

TEST_CASE("q8 linear: f32 activations stay exact, and types without a q8 kernel ignore the request") {
  ThreadPool pool(2);
  const Tensor x = activations(2, 512, 5);
  for (const DType dtype : {DType::q4_1, DType::q6_k, DType::f16}) {
    CAPTURE(dtype_name(dtype));
    Tensor w = dtype == DType::q6_k ? Tensor::empty(DType::q6_k, {64, 512}, "w") : activations(64, 512, 9).from_f32(dtype);
    if (dtype == DType::q6_k) std::memset(w.raw(), 0x11, w.nbytes());  // d = f16 0x1111: small, finite
    nn::Linear exact(w, Tensor()), asked(w, Tensor());
    asked.activations = nn::Activations::q8;
    CHECK(nn::uses_q8_activations(asked) == (dtype == DType::q4_1));
    CHECK_FALSE(nn::uses_q8_activations(exact));
    const Tensor a = run(cpu::active_kernels(), exact, x, pool), b = run(cpu::active_kernels(), asked, x, pool);
    const bool same = std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
    CHECK(same == (dtype != DType::q4_1));
  }
}
