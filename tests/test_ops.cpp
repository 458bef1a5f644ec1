// The engine's ops against naive double-precision loops on random data, and the thread pool.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iterator>
#include <random>
#include <thread>

#include "ecr/core/thread_pool.hpp"
#include "ecr/nn/attention.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/nn/ops.hpp"
#include "support.hpp"

using namespace ecr;
using namespace ecr::test;

namespace {

Tensor random_tensor(Shape shape, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  Tensor t = Tensor::empty(DType::f32, std::move(shape));
  for (float& v : t.span<float>()) v = dist(rng);
  return t;
}

float max_abs(const nn::ConstMatrix& a, const std::vector<double>& b) {
  float m = 0;
  for (Eigen::Index i = 0; i < a.rows(); ++i)
    for (Eigen::Index j = 0; j < a.cols(); ++j)
      m = std::max(m, static_cast<float>(std::abs(a(i, j) - b[static_cast<std::size_t>(i * a.cols() + j)])));
  return m;
}

}  // namespace

TEST_CASE("ops: layer_norm matches the definition") {
  const Tensor x = random_tensor({5, 48}, 1, 3.0f);
  nn::LayerNorm norm{random_tensor({48}, 2), random_tensor({48}, 3), 1e-5f};
  Tensor y = Tensor::empty(DType::f32, {5, 48});
  nn::layer_norm(nn::view(x), norm, nn::view(y));
  std::vector<double> expected;
  for (int i = 0; i < 5; ++i) {
    double mean = 0, var = 0;
    for (int j = 0; j < 48; ++j) mean += nn::view(x)(i, j) / 48.0;
    for (int j = 0; j < 48; ++j) var += std::pow(nn::view(x)(i, j) - mean, 2) / 48.0;
    for (int j = 0; j < 48; ++j)
      expected.push_back((nn::view(x)(i, j) - mean) / std::sqrt(var + 1e-5) * nn::view(norm.weight)(0, j) +
                         nn::view(norm.bias)(0, j));
  }
  CHECK(max_abs(nn::view(y), expected) < 1e-5f);
}

TEST_CASE("ops: gelu (tanh and erf) match the definitions") {
  Tensor x = Tensor::empty(DType::f32, {1, 2001});
  for (int i = 0; i < 2001; ++i) nn::view(x)(0, i) = -10.0f + 0.01f * static_cast<float>(i);
  Tensor t = x.clone(), e = x.clone();
  nn::activate(nn::Activation::gelu_tanh, nn::view(t));
  nn::activate(nn::Activation::gelu_erf, nn::view(e));
  std::vector<double> expect_tanh, expect_erf;
  for (int i = 0; i < 2001; ++i) {
    const double v = nn::view(x)(0, i);
    expect_tanh.push_back(0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))));
    expect_erf.push_back(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
  }
  CHECK(max_abs(nn::view(t), expect_tanh) < 2e-6f);
  CHECK(max_abs(nn::view(e), expect_erf) < 2e-6f);
}

// One enum serves the CPU, the device wrappers and the kernels; each value must keep its own
// formula (a conversion once turned `none` into gelu_tanh).
TEST_CASE("ops: every activation value applies its own formula") {
  Tensor x = Tensor::empty(DType::f32, {1, 401});
  for (int i = 0; i < 401; ++i) nn::view(x)(0, i) = -4.0f + 0.02f * static_cast<float>(i);
  for (const nn::Activation a : nn::kActivations) {
    INFO("activation " << nn::activation_name(a));
    Tensor y = x.clone();
    nn::activate(a, nn::view(y));
    std::vector<double> expected;
    for (int i = 0; i < 401; ++i) {
      const double v = nn::view(x)(0, i);
      switch (a) {
        case nn::Activation::none: expected.push_back(v); break;
        case nn::Activation::relu: expected.push_back(v > 0 ? v : 0.0); break;
        case nn::Activation::gelu_tanh:
          expected.push_back(0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))));
          break;
        case nn::Activation::gelu_erf: expected.push_back(0.5 * v * (1 + std::erf(v / std::sqrt(2.0)))); break;
      }
    }
    CHECK(max_abs(nn::view(y), expected) < 2e-6f);
  }
  CHECK(nn::activation_name(nn::Activation::none) == "none");
  CHECK(std::size(nn::kActivations) == 4);
}

TEST_CASE("ops: softmax over the valid prefix of each row") {
  Tensor x = random_tensor({3, 6}, 4, 5.0f);
  const Tensor before = x.clone();
  const std::vector<std::int64_t> valid = {6, 2, 0};
  nn::softmax_rows(nn::view(x), valid);
  for (int i = 0; i < 3; ++i) {
    double sum = 0;
    for (int j = 0; j < valid[static_cast<std::size_t>(i)]; ++j) sum += std::exp(nn::view(before)(i, j));
    for (int j = 0; j < 6; ++j) {
      const double expected = j < valid[static_cast<std::size_t>(i)] ? std::exp(nn::view(before)(i, j)) / sum : 0.0;
      CHECK(std::abs(nn::view(x)(i, j) - expected) < 1e-6);
    }
  }
}

TEST_CASE("ops: gather_rows checks ids") {
  const Tensor table = random_tensor({4, 3}, 5);
  Tensor out = Tensor::empty(DType::f32, {2, 3});
  const std::vector<std::int32_t> ids = {3, 0};
  nn::gather_rows(nn::view(table), ids, nn::view(out), "token id");
  CHECK(nn::view(out).row(0) == nn::view(table).row(3));
  CHECK(nn::view(out).row(1) == nn::view(table).row(0));
  const std::vector<std::int32_t> bad = {4};
  CHECK_THROWS_AS(nn::gather_rows(nn::view(table), bad, nn::view(out).topRows(1), "token id"), InputError);
}

TEST_CASE("ops: linear with bias, activation and accumulation matches a naive loop") {
  const std::int64_t rows = 7, in = 33, out = 300;  // 3 chunks, the last one partial
  const Tensor x = random_tensor({rows, in}, 6);
  const nn::Linear layer{random_tensor({out, in}, 7, 0.2f), random_tensor({out}, 8)};
  ThreadPool pool(2);
  std::vector<double> expected;
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t o = 0; o < out; ++o) {
      double s = nn::view(layer.bias)(0, o);
      for (std::int64_t k = 0; k < in; ++k) s += double(nn::view(x)(i, k)) * nn::view(layer.weight)(o, k);
      expected.push_back(s);
    }
  Tensor y = Tensor::empty(DType::f32, {rows, out});
  nn::linear(nn::view(x), layer, nn::view(y), pool);
  CHECK(max_abs(nn::view(y), expected) < 1e-5f);

  std::vector<double> gelu = expected;
  for (double& v : gelu) v = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
  nn::linear(nn::view(x), layer, nn::view(y), pool, nn::Activation::gelu_erf);
  CHECK(max_abs(nn::view(y), gelu) < 1e-5f);

  Tensor acc = random_tensor({rows, out}, 9);
  std::vector<double> sum = expected;
  for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += acc.span<float>()[i];
  nn::linear(nn::view(x), layer, nn::view(acc), pool, nn::Activation::none, true);
  CHECK(max_abs(nn::view(acc), sum) < 1e-5f);

  const nn::Linear no_bias{layer.weight, Tensor()};
  nn::linear(nn::view(x), no_bias, nn::view(y), pool);
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] -= layer.bias.span<float>()[i % out];
  CHECK(max_abs(nn::view(y), expected) < 1e-5f);
}

TEST_CASE("ops: linear results are bit-identical for 1, 2 and 3 threads") {
  const Tensor x = random_tensor({20, 96}, 10);
  const nn::Linear layer{random_tensor({1000, 96}, 11, 0.1f), random_tensor({1000}, 12)};
  std::vector<Tensor> results;
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    Tensor y = Tensor::empty(DType::f32, {20, 1000});
    nn::linear(nn::view(x), layer, nn::view(y), pool, nn::Activation::gelu_tanh);
    results.push_back(y);
  }
  CHECK(std::memcmp(results[0].raw(), results[1].raw(), results[0].nbytes()) == 0);
  CHECK(std::memcmp(results[0].raw(), results[2].raw(), results[0].nbytes()) == 0);
}

TEST_CASE("ops: attention with causal offsets matches a naive loop") {
  const std::int64_t queries = 4, keys = 9, dim = 8;
  const Tensor q = random_tensor({queries, dim}, 13), k = random_tensor({keys, dim}, 14), v = random_tensor({keys, dim}, 15);
  for (const std::optional<std::int64_t> offset : {std::optional<std::int64_t>(), std::optional<std::int64_t>(5),
                                                   std::optional<std::int64_t>(0)}) {
    Tensor out = Tensor::empty(DType::f32, {queries, dim});
    nn::attend(nn::view(q), nn::view(k), nn::view(v), nn::view(out), 0.35f, offset);
    std::vector<double> expected;
    for (std::int64_t i = 0; i < queries; ++i) {
      const std::int64_t visible = offset ? std::min(keys, i + *offset + 1) : keys;
      std::vector<double> p(static_cast<std::size_t>(visible));
      double max = -1e300, sum = 0;
      for (std::int64_t j = 0; j < visible; ++j) {
        double s = 0;
        for (std::int64_t d = 0; d < dim; ++d) s += double(nn::view(q)(i, d)) * nn::view(k)(j, d);
        p[static_cast<std::size_t>(j)] = s * 0.35;
        max = std::max(max, p[static_cast<std::size_t>(j)]);
      }
      for (double& s : p) sum += (s = std::exp(s - max));
      for (std::int64_t d = 0; d < dim; ++d) {
        double o = 0;
        for (std::int64_t j = 0; j < visible; ++j) o += p[static_cast<std::size_t>(j)] / sum * nn::view(v)(j, d);
        expected.push_back(o);
      }
    }
    CHECK(max_abs(nn::view(out), expected) < 1e-5f);
  }
}

TEST_CASE("thread pool: every index once, exceptions propagate, concurrent callers") {
  ThreadPool pool(3);
  CHECK(pool.size() == 3);
  std::vector<std::atomic<int>> hits(1000);
  pool.parallel_for(hits.size(), [&](std::size_t i) { hits[i].fetch_add(1); });
  for (const auto& h : hits) CHECK(h.load() == 1);

  CHECK_THROWS_AS(pool.parallel_for(50, [](std::size_t i) {
    if (i == 17) throw InputError("chunk 17");
  }), InputError);
  // Of several errors, the lowest index's, whichever thread met its error first: the later
  // chunks throw at once while chunk 3 waits, so they are nearly always caught first.
  for (int rep = 0; rep < 20; ++rep)
    CHECK_THROWS_WITH_AS(pool.parallel_for(40, [](std::size_t i) {
      if (i == 3) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      if (i % 4 == 3) throw InputError(fmt::format("chunk {}", i));
    }), "input error: chunk 3", InputError);

  std::atomic<long> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep)
        pool.parallel_for(20, [&](std::size_t i) {
          // Nested loops run too: the caller works on its own loop, so nothing waits forever.
          pool.parallel_for(3, [&](std::size_t) { total.fetch_add(static_cast<long>(i)); });
        });
    });
  for (auto& t : callers) t.join();
  CHECK(total.load() == 4L * 50 * 3 * (19 * 20 / 2));
}
