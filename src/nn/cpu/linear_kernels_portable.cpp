// The kernels for any CPU: eight f32 lanes in plain C++, which the compiler maps onto whatever
// vector unit the baseline target has (SSE2 on x86-64, NEON on AArch64).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "linear_kernels.hpp"

namespace ecr::nn::cpu {
namespace {

#include "linear_kernels.inl"

#include "q8_kernels.inl"

struct Lanes {
  static constexpr int width = 8;
  struct reg {
    float v[8];
  };
  static reg zero() { return {}; }
  static reg add(reg a, const reg& b) {
    for (int l = 0; l < width; ++l) a.v[l] += b.v[l];
    return a;
  }
  static reg mul_add(const reg& a, const reg& b, reg c) {
    for (int l = 0; l < width; ++l) c.v[l] += a.v[l] * b.v[l];
    return c;
  }
  static reg load(const float* p) {
    reg r;
    for (int l = 0; l < width; ++l) r.v[l] = p[l];
    return r;
  }
  template <class Tag, class S>
  static reg load(Tag tag, const S* p) {
    reg r;
    for (int l = 0; l < width; ++l) r.v[l] = scalar(tag, p[l]);
    return r;
  }
  static reg mul(const reg& a, const reg& b) {
    reg r;
    for (int l = 0; l < width; ++l) r.v[l] = a.v[l] * b.v[l];
    return r;
  }
  static reg splat(float f) {
    reg r;
    for (float& v : r.v) v = f;
    return r;
  }
  static reg splat_half(std::uint16_t bits) {
    reg r;
    for (float& v : r.v) v = scalar(Half{}, bits);
    return r;
  }
  struct ints {
    std::int32_t v[8];
  };
  static ints bytes(const std::uint8_t* p) {
    ints q;
    for (int l = 0; l < width; ++l) q.v[l] = p[l];
    return q;
  }
  static ints bits(ints q, int shift, int count) {
    for (std::int32_t& v : q.v) v = (v >> shift) & ((1 << count) - 1);
    return q;
  }
  static ints word_bits(std::uint32_t w, int first) {
    ints q;
    for (int l = 0; l < width; ++l) q.v[l] = static_cast<std::int32_t>((w >> (first + l)) & 1);
    return q;
  }
  static ints combine(ints low, const ints& high, int shift) {
    for (int l = 0; l < width; ++l) low.v[l] |= high.v[l] << shift;
    return low;
  }
  static reg to_f32(const ints& q, int offset) {
    reg r;
    for (int l = 0; l < width; ++l) r.v[l] = static_cast<float>(q.v[l] - offset);
    return r;
  }
  static void store(float* p, const reg& r) {
    for (int l = 0; l < width; ++l) p[l] = r.v[l];
  }
  static float sum(const reg& r) {
    return ((r.v[0] + r.v[4]) + (r.v[2] + r.v[6])) + ((r.v[1] + r.v[5]) + (r.v[3] + r.v[7]));
  }
};

}  // namespace

const LinearKernels& portable_kernels() {
  static const LinearKernels kernels = [] {
    LinearKernels k = make_kernels<Lanes>("portable");
    add_q8_kernels<Q8Scalar>(k);
    return k;
  }();
  return kernels;
}

}  // namespace ecr::nn::cpu
