// Helpers of the CUDA tests (tests/test_cuda_*.cpp): random inputs, the storage round trip that
// makes a CPU twin's input equal the device's, and the error measure every comparison uses.
//
// Error measure: max |actual - expected| / max |expected| over the tensor ("relative to the
// largest magnitude"). Tolerances: 1e-4 for f32 storage, 1e-2 for f16 / bf16 storage with fp32
// accumulation (the brief of the CUDA backend).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "ecr/device/cuda.hpp"
#include "ecr/device/transfer_cuda.hpp"
#include "support.hpp"

namespace ecr::test {

// Skips a test case without a usable GPU, or fails it when ECR_REQUIRE_GPU is set in the
// environment (tools/gpu_check.sh sets it, so a GPU run never passes by skipping).
#define ECR_REQUIRE_GPU()                                                                      \
  do {                                                                                         \
    if (!::ecr::cuda::available()) {                                                           \
      if (std::getenv("ECR_REQUIRE_GPU"))                                                      \
        FAIL("ECR_REQUIRE_GPU is set, but there is no usable GPU: " << ::ecr::cuda::unavailable_reason()); \
      MESSAGE("skipped: no usable GPU: " << ::ecr::cuda::unavailable_reason());                \
      return;                                                                                  \
    }                                                                                          \
  } while (0)

inline constexpr DType kStorages[] = {DType::f32, DType::f16, DType::bf16};

// n token ids in [0, vocab), the same for the same seed.
inline std::vector<std::int32_t> random_ids(std::size_t n, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::int32_t> dist(0, vocab - 1);
  std::vector<std::int32_t> ids(n);
  for (auto& id : ids) id = dist(rng);
  return ids;
}

inline float tolerance(DType storage) { return storage == DType::f32 ? 1e-4f : 1e-2f; }
inline std::string name_of(DType dtype) { return std::string(dtype_name(dtype)); }

// Uniform in [center - scale, center + scale].
inline Tensor random_tensor(Shape shape, std::mt19937& rng, float scale = 1.0f, float center = 0.0f,
                            std::string name = "x") {
  std::uniform_real_distribution<float> u(center - scale, center + scale);
  Tensor t = Tensor::empty(DType::f32, std::move(shape), std::move(name));
  for (float& v : t.span<float>()) v = u(rng);
  return t;
}

// x as `storage` holds it, read back as f32: the input the CPU twin must see in a half-precision run.
inline Tensor rounded(const Tensor& x, DType storage) {
  return cuda::host_cast(cuda::host_cast(x, storage), DType::f32).clone();
}

inline float relative_error(const Tensor& actual_any, const Tensor& expected) {
  const Tensor actual = actual_any.to_f32();
  REQUIRE_MESSAGE(actual.numel() == expected.numel(),
                  "shapes differ: " << shape_string(actual.shape()) << " vs " << shape_string(expected.shape()));
  const auto a = actual.span<float>();
  const auto e = expected.span<float>();
  float diff = 0.0f, scale = 0.0f;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const float d = std::fabs(a[i] - e[i]);
    if (!std::isfinite(d)) return std::numeric_limits<float>::infinity();
    diff = std::max(diff, d);
    scale = std::max(scale, std::fabs(e[i]));
  }
  return diff / std::max(scale, 1e-30f);
}

#define ECR_CHECK_CLOSE(actual, expected, tol)                                           \
  do {                                                                                   \
    const float ecr_error_ = ::ecr::test::relative_error((actual), (expected));          \
    CHECK_MESSAGE(ecr_error_ <= (tol), "relative error " << ecr_error_ << " > " << (tol)); \
  } while (0)

// The k best indices of `scores`, best first (ties by index).
inline std::vector<std::size_t> top_indices(const std::vector<float>& scores, std::size_t k) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  k = std::min(k, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](std::size_t a, std::size_t b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); });
  order.resize(k);
  return order;
}

// The same top-k as the reference, up to near-ties: an item in one top-k but not the other must
// score within 2 * tol * max|reference| of the reference's k-th score.
inline void check_same_top(const std::vector<float>& actual, const std::vector<float>& reference, std::size_t k,
                           float tol) {
  REQUIRE(actual.size() == reference.size());
  const auto mine = top_indices(actual, k), theirs = top_indices(reference, k);
  if (mine.empty()) return;
  float scale = 0.0f;
  for (const float v : reference) scale = std::max(scale, std::fabs(v));
  const float kth = reference[theirs.back()];
  const float slack = 2.0f * tol * scale;
  for (const std::size_t i : mine)
    if (std::find(theirs.begin(), theirs.end(), i) == theirs.end())
      CHECK_MESSAGE(std::fabs(reference[i] - kth) <= slack,
                    "item " << i << " is in the device top-" << k << " but scores " << reference[i]
                            << " against the reference's k-th " << kth);
}

}  // namespace ecr::test
