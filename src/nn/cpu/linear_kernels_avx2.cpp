// The kernels for AVX2 + FMA + F16C (Haswell and later, Zen): 8 lanes, hardware f16 conversion.
// Built with -mavx2 -mfma -mf16c (src/CMakeLists.txt); isa.cpp calls it only on CPUs that have them.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "linear_kernels.hpp"

namespace ecr::nn::cpu {
namespace {

#include "linear_kernels.inl"

#include "q8_kernels.inl"
#include "q8_avx2.inl"

struct Avx2 {
  static constexpr int width = 8;
  using reg = __m256;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg mul_add(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static reg load(Half, const std::uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static reg load(Brain, const std::uint16_t* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static reg load(Int8, const std::int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg splat(float f) { return _mm256_set1_ps(f); }
  static reg splat_half(std::uint16_t bits) { return _mm256_set1_ps(_cvtsh_ss(bits)); }
  using ints = __m256i;
  static ints bytes(const std::uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static ints bits(ints q, int shift, int count) {
    return _mm256_and_si256(_mm256_srli_epi32(q, shift), _mm256_set1_epi32((1 << count) - 1));
  }
  static ints word_bits(std::uint32_t w, int first) {
    const __m256i shifts = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(first));
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(w)), shifts), _mm256_set1_epi32(1));
  }
  static ints combine(ints low, ints high, int shift) { return _mm256_or_si256(low, _mm256_slli_epi32(high, shift)); }
  static reg to_f32(ints q, int offset) { return _mm256_cvtepi32_ps(_mm256_sub_epi32(q, _mm256_set1_epi32(offset))); }
  static void store(float* p, reg r) { _mm256_storeu_ps(p, r); }
  static float sum(reg r) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace

const LinearKernels& avx2_kernels() {
  static const LinearKernels kernels = [] {
    LinearKernels k = make_kernels<Avx2>("avx2");
    add_q8_kernels<Q8Avx2>(k);
    return k;
  }();
  return kernels;
}

}  // namespace ecr::nn::cpu
