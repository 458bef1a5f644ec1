// Micro-benchmarks of the engine's GEMM (nn::linear) at GPT-2 small's shapes, prefill (200 rows)
// and decode (1 row), with f32 and bf16 weights (the level's kernels: ECR_ISA picks another),
// beside one plain Eigen GEMM of the same shape: the gap is what the fixed-width output chunks
// (thread-count independence) cost. Google Benchmark; run with
// --benchmark_filter=... to pick shapes. Counters: GFLOP/s for prefill rows, GB/s of weights for
// decode rows. BM_crc32 times the bundle checksum (ecr::crc32: ISA-L's when built with it) beside
// zlib's on 64 MiB, in GB/s. BM_linear_weights runs one matrix stored f32, f16, q8_0 and q4_0, at
// decode (1 row) and prefill (64 rows), on one thread: decode reads every weight byte once per
// token, so its time follows the bytes a weight takes.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>
#include <zlib.h>

#include "ecr/core/thread_pool.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/nn/attention.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/nn/weights.hpp"

namespace {

using namespace ecr;

Tensor filled(Shape shape) {
  Tensor t = Tensor::empty(DType::f32, std::move(shape));
  nn::view(t).setRandom();
  return t;
}

void set_counters(benchmark::State& state, std::int64_t rows, std::int64_t in, std::int64_t out, DType dtype) {
  const double iterations = static_cast<double>(state.iterations());
  if (rows == 1)
    state.counters["GB/s"] = benchmark::Counter(iterations * static_cast<double>(storage_bytes(dtype, {out, in}, "w")) / 1e9,
                                                benchmark::Counter::kIsRate);
  else
    state.counters["GFLOP/s"] = benchmark::Counter(iterations * 2.0 * static_cast<double>(rows * in * out) / 1e9,
                                                   benchmark::Counter::kIsRate);
}

// x (rows, in) times a random (out, in) weight cast to `dtype`, on `threads` threads.
void time_linear(benchmark::State& state, std::int64_t rows, std::int64_t in, std::int64_t out, DType dtype,
                 int threads) {
  ThreadPool pool(threads);
  const Tensor x = filled({rows, in});
  const nn::Linear layer = nn::cast_matrix(nn::Linear{filled({out, in}), filled({out})}, dtype);
  state.SetLabel(std::string(dtype_name(dtype)) + " " + std::string(nn::linear_kernel_level()));
  Tensor y = Tensor::empty(DType::f32, {rows, out});
  for (auto _ : state) {
    nn::linear(nn::view(x), layer, nn::view(y), pool);
    benchmark::DoNotOptimize(y.raw());
  }
  set_counters(state, rows, in, out, dtype);
}

// Args: rows, in, out, threads, weight dtype (0 f32, 1 bf16).
void BM_linear(benchmark::State& state) {
  time_linear(state, state.range(0), state.range(1), state.range(2), state.range(4) == 1 ? DType::bf16 : DType::f32,
              static_cast<int>(state.range(3)));
}

// Args: rows, in, out, weight dtype (0 f32, 1 f16, 2 q8_0, 3 q4_0); one thread.
void BM_linear_weights(benchmark::State& state) {
  constexpr DType kTypes[] = {DType::f32, DType::f16, DType::q8_0, DType::q4_0};
  time_linear(state, state.range(0), state.range(1), state.range(2), kTypes[state.range(3)], 1);
}

// The same product as one Eigen call on one thread: the reference for the chunked version.
void BM_eigen_gemm(benchmark::State& state) {
  const std::int64_t rows = state.range(0), in = state.range(1), out = state.range(2);
  const Tensor x = filled({rows, in}), w = filled({out, in});
  Tensor y = Tensor::empty(DType::f32, {rows, out});
  for (auto _ : state) {
    nn::view(y).noalias() = nn::view(x) * nn::view(w).transpose();
    benchmark::DoNotOptimize(y.raw());
  }
  set_counters(state, rows, in, out, DType::f32);
}

// Args: queries, keys (one head of 64).
void BM_attend(benchmark::State& state) {
  const std::int64_t queries = state.range(0), keys = state.range(1);
  const Tensor q = filled({queries, 64}), k = filled({keys, 64}), v = filled({keys, 64});
  Tensor out = Tensor::empty(DType::f32, {queries, 64});
  for (auto _ : state) {
    nn::attend(nn::view(q), nn::view(k), nn::view(v), nn::view(out), 0.125f, keys - queries);
    benchmark::DoNotOptimize(out.raw());
  }
}

void shapes(benchmark::internal::Benchmark* b, bool threads) {
  for (const auto& s : std::vector<std::vector<std::int64_t>>{{200, 768, 2304},
                                                              {200, 768, 3072},
                                                              {200, 3072, 768},
                                                              {1, 768, 2304},
                                                              {1, 3072, 768},
                                                              {1, 768, 50257}})
    for (std::int64_t t : threads ? std::vector<std::int64_t>{1, 2} : std::vector<std::int64_t>{1}) {
      if (!threads) {
        b->Args(s);
        continue;
      }
      for (std::int64_t dtype : {0, 1}) {
        auto args = s;
        args.push_back(t);
        args.push_back(dtype);
        b->Args(args);
      }
    }
}

// 0: ecr::crc32, 1: zlib's crc32 on the same bytes.
void BM_crc32(benchmark::State& state) {
  std::vector<std::byte> bytes(std::size_t{64} << 20);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(i * 131 + (i >> 9));
  std::uint32_t crc = 0;
  for (auto _ : state) {
    crc = state.range(0) == 0
              ? ecr::crc32(bytes)
              : static_cast<std::uint32_t>(::crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()),
                                                    static_cast<uInt>(bytes.size())));
    benchmark::DoNotOptimize(crc);
  }
  const double gigabytes = static_cast<double>(bytes.size()) * static_cast<double>(state.iterations()) / 1e9;
  state.counters["GB/s"] = benchmark::Counter(gigabytes, benchmark::Counter::kIsRate);
  state.SetLabel(state.range(0) == 0 ? "ecr::crc32" : "zlib");
}

}  // namespace

BENCHMARK(BM_linear)->Apply([](auto* b) { shapes(b, true); })->UseRealTime()->Unit(benchmark::kMicrosecond);
// GPT-2 small's MLP (768 -> 3072, 3072 -> 768) and a SmolLM2-135M-like MLP (576 -> 1536), all in
// the last-level cache after the first call; then 4096 -> 16384 at decode, 36 MiB as q4_0 and more
// in the others, read from memory each time as a model's layers are.
BENCHMARK(BM_linear_weights)->ArgsProduct({{1, 64}, {768}, {3072}, {0, 1, 2, 3}})
    ->ArgsProduct({{1, 64}, {3072}, {768}, {0, 1, 2, 3}})
    ->ArgsProduct({{1, 64}, {576}, {1536}, {0, 1, 2, 3}})
    ->ArgsProduct({{1}, {4096}, {16384}, {0, 1, 2, 3}})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_eigen_gemm)->Apply([](auto* b) { shapes(b, false); })->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_attend)->Args({200, 200})->Args({1, 201})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_crc32)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
