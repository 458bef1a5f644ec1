// The dtype table and its scalar conversions. These are the reference the vectorised kernels in
// src/nn/cpu must match bit for bit (dequantizing is exact: d is an f16 value, 11 significant
// bits, and q at most 8, so d * q fits an f32). Built with -ffp-contract=off (src/CMakeLists.txt):
// GGML's Q4_0 rounding `x * id + 8.5` must stay a product and a sum, never a fused one.
#include "ecr/core/dtype.hpp"

#include "ecr/io/gguf.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include <Eigen/Core>

namespace ecr {

namespace {

constexpr std::int64_t kQk = 32;  // values per block of Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (GGML's QK8_0 ...)

template <class T>
void widen(const void* src, float* dst, std::int64_t n) {
  const T* s = static_cast<const T*>(src);
  for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
}

template <class T>
void narrow(const float* src, void* dst, std::int64_t n) {
  T* d = static_cast<T*>(dst);
  for (std::int64_t i = 0; i < n; ++i) d[i] = static_cast<T>(src[i]);
}

float half_at(const std::byte* p) {
  Eigen::half h;
  std::memcpy(&h, p, sizeof h);
  return static_cast<float>(h);
}

void store_half(float value, std::byte* p) {
  const Eigen::half h(value);
  std::memcpy(p, &h, sizeof h);
}

void q8_0_to_f32(const void* src, float* dst, std::int64_t n) {
  const auto* block = static_cast<const std::byte*>(src);
  for (std::int64_t b = 0; b < n / kQk; ++b, block += 2 + kQk, dst += kQk) {
    const float d = half_at(block);
    const auto* qs = reinterpret_cast<const std::int8_t*>(block + 2);
    for (std::int64_t j = 0; j < kQk; ++j) dst[j] = d * static_cast<float>(qs[j]);
  }
}

void q4_0_to_f32(const void* src, float* dst, std::int64_t n) {
  const auto* block = static_cast<const std::byte*>(src);
  for (std::int64_t b = 0; b < n / kQk; ++b, block += 2 + kQk / 2, dst += kQk) {
    const float d = half_at(block);
    const auto* qs = reinterpret_cast<const std::uint8_t*>(block + 2);
    for (std::int64_t j = 0; j < kQk / 2; ++j) {
      dst[j] = d * static_cast<float>((qs[j] & 15) - 8);
      dst[j + kQk / 2] = d * static_cast<float>((qs[j] >> 4) - 8);
    }
  }
}

// d * q is exact (11 significant bits times 4), so x = d * q + m rounds once, as in GGML.
void q4_1_to_f32(const void* src, float* dst, std::int64_t n) {
  const auto* block = static_cast<const std::byte*>(src);
  for (std::int64_t b = 0; b < n / kQk; ++b, block += 4 + kQk / 2, dst += kQk) {
    const float d = half_at(block), m = half_at(block + 2);
    const auto* qs = reinterpret_cast<const std::uint8_t*>(block + 4);
    for (std::int64_t j = 0; j < kQk / 2; ++j) {
      dst[j] = d * static_cast<float>(qs[j] & 15) + m;
      dst[j + kQk / 2] = d * static_cast<float>(qs[j] >> 4) + m;
    }
  }
}

// Q5's quants: Q4's nibbles, and bit j of the little-endian word qh as 16 for value j.
int quant5(const std::uint8_t* qs, std::uint32_t qh, std::int64_t j) {
  const int nibble = j < kQk / 2 ? qs[j] & 15 : qs[j - kQk / 2] >> 4;
  return nibble | static_cast<int>((qh >> j) & 1) << 4;
}

void q5_0_to_f32(const void* src, float* dst, std::int64_t n) {
  const auto* block = static_cast<const std::byte*>(src);
  for (std::int64_t b = 0; b < n / kQk; ++b, block += 6 + kQk / 2, dst += kQk) {
    const float d = half_at(block);
    std::uint32_t qh;
    std::memcpy(&qh, block + 2, sizeof qh);
    const auto* qs = reinterpret_cast<const std::uint8_t*>(block + 6);
    for (std::int64_t j = 0; j < kQk; ++j) dst[j] = d * static_cast<float>(quant5(qs, qh, j) - 16);
  }
}

void q5_1_to_f32(const void* src, float* dst, std::int64_t n) {
  const auto* block = static_cast<const std::byte*>(src);
  for (std::int64_t b = 0; b < n / kQk; ++b, block += 8 + kQk / 2, dst += kQk) {
    const float d = half_at(block), m = half_at(block + 2);
    std::uint32_t qh;
    std::memcpy(&qh, block + 4, sizeof qh);
    const auto* qs = reinterpret_cast<const std::uint8_t*>(block + 8);
    for (std::int64_t j = 0; j < kQk; ++j) dst[j] = d * static_cast<float>(quant5(qs, qh, j)) + m;
  }
}

// The k-quants: 256 values per super-block. In each half of 128 (Q6_K, Q3_K, Q2_K) or each 64
// (Q4_K, Q5_K) the quants of 32 consecutive values sit in the same bit field of 32 consecutive
// bytes; a scale serves 16 values (32 for Q4_K, Q5_K). Sub-block scales are small integers, so
// d * scale and its product with q are exact except Q6_K's (d * scale) * q, rounded once as in
// GGML and gguf.
constexpr std::int64_t kQkK = 256;

// Q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d; }: x = d * scales[e / 16] * (q - 32).
void q6_k_to_f32(const void* src, float* dst, std::int64_t n) {
  const auto* block = static_cast<const std::uint8_t*>(src);
  for (std::int64_t b = 0; b < n / kQkK; ++b, block += 210, dst += kQkK) {
    const float d = half_at(reinterpret_cast<const std::byte*>(block + 208));
    const auto* scales = reinterpret_cast<const std::int8_t*>(block + 192);
    for (std::int64_t e = 0; e < kQkK; ++e) {
      const std::int64_t half = e / 128, t = e % 128 / 32, l = e % 32;
      const int low = block[half * 64 + (t & 1) * 32 + l] >> (4 * (t >> 1)) & 15;
      const int high = block[128 + half * 32 + l] >> (2 * t) & 3;
      dst[e] = d * static_cast<float>(scales[e / 16]) * static_cast<float>((low | high << 4) - 32);
    }
  }
}

// Q4_K's and Q5_K's 6-bit scale and minimum of sub-block j, packed in 12 bytes.
void scale_min_k4(std::int64_t j, const std::uint8_t* s, int& scale, int& min) {
  if (j < 4) {
    scale = s[j] & 63;
    min = s[j + 4] & 63;
  } else {
    scale = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
    min = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
  }
}

// Q4_K { f16 d; f16 dmin; uint8 scales[12]; uint8 qs[128]; } and Q5_K { ...; uint8 qh[32];
// uint8 qs[128]; }: x = d * scale * q - dmin * min for sub-block e / 32.
void q4_k_to_f32(const void* src, float* dst, std::int64_t n) {
  const auto* block = static_cast<const std::uint8_t*>(src);
  for (std::int64_t b = 0; b < n / kQkK; ++b, block += 144, dst += kQkK) {
    const float d = half_at(reinterpret_cast<const std::byte*>(block));
    const float dmin = half_at(reinterpret_cast<const std::byte*>(block + 2));
    for (std::int64_t e = 0; e < kQkK; ++e) {
      int scale, min;
      scale_min_k4(e / 32, block + 4, scale, min);
      const int q = block[16 + e / 64 * 32 + e % 32] >> (4 * (e % 64 / 32)) & 15;
      dst[e] = d * static_cast<float>(scale) * static_cast<float>(q) - dmin * static_cast<float>(min);
    }
  }
}

void q5_k_to_f32(const void* src, float* dst, std::int64_t n) {
  const auto* block = static_cast<const std::uint8_t*>(src);
  for (std::int64_t b = 0; b < n / kQkK; ++b, block += 176, dst += kQkK) {
    const float d = half_at(reinterpret_cast<const std::byte*>(block));
    const float dmin = half_at(reinterpret_cast<const std::byte*>(block + 2));
    for (std::int64_t e = 0; e < kQkK; ++e) {
      int scale, min;
      scale_min_k4(e / 32, block + 4, scale, min);
      const int low = block[48 + e / 64 * 32 + e % 32] >> (4 * (e % 64 / 32)) & 15;
      const int q = low | (block[16 + e % 32] >> (e / 32) & 1) << 4;
      dst[e] = d * static_cast<float>(scale) * static_cast<float>(q) - dmin * static_cast<float>(min);
    }
  }
}

// Q3_K's 16 scales of 6 bits in 12 bytes: low nibbles in bytes 0..7, the top two bits in 8..11.
int scale_k3(std::int64_t i, const std::uint8_t* s) {
  const int low = i < 8 ? s[i] & 15 : s[i - 8] >> 4;
  const int high = s[8 + i % 4] >> (2 * (i / 4)) & 3;
  return (low | high << 4) - 32;
}

// Q3_K { uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; f16 d; }: x = d * scale * q, q the two
// low bits less 4 where the hmask bit is clear.
void q3_k_to_f32(const void* src, float* dst, std::int64_t n) {
  const auto* block = static_cast<const std::uint8_t*>(src);
  for (std::int64_t b = 0; b < n / kQkK; ++b, block += 110, dst += kQkK) {
    const float d = half_at(reinterpret_cast<const std::byte*>(block + 108));
    for (std::int64_t e = 0; e < kQkK; ++e) {
      const std::int64_t half = e / 128, j = e % 128 / 32, l = e % 32;
      const int low = block[32 + half * 32 + l] >> (2 * j) & 3;
      const int high = block[l] >> (4 * half + j) & 1;
      dst[e] = d * static_cast<float>(scale_k3(e / 16, block + 96)) * static_cast<float>((low | high << 2) - 4);
    }
  }
}

// Q2_K { uint8 scales[16]; uint8 qs[64]; f16 d; f16 dmin; }: x = d * (scale & 15) * q - dmin *
// (scale >> 4).
void q2_k_to_f32(const void* src, float* dst, std::int64_t n) {
  const auto* block = static_cast<const std::uint8_t*>(src);
  for (std::int64_t b = 0; b < n / kQkK; ++b, block += 84, dst += kQkK) {
    const float d = half_at(reinterpret_cast<const std::byte*>(block + 80));
    const float dmin = half_at(reinterpret_cast<const std::byte*>(block + 82));
    for (std::int64_t e = 0; e < kQkK; ++e) {
      const std::int64_t half = e / 128, j = e % 128 / 32, l = e % 32;
      const int q = block[16 + half * 32 + l] >> (2 * j) & 3, scale = block[e / 16];
      dst[e] = d * static_cast<float>(scale & 15) * static_cast<float>(q) - dmin * static_cast<float>(scale >> 4);
    }
  }
}

// (int8)value as C's conversion gives it for every value in range; NaN (0 * inf, when a block's d
// is so small that 1 / d overflows) and values out of range, undefined behaviour there, give 0
// and the nearest end instead.
std::int8_t to_int8(float value) {
  if (!(value == value)) return 0;
  return static_cast<std::int8_t>(std::clamp(value, -128.0f, 127.0f));
}

// GGML's quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d) (halves away from zero), with
// the reciprocal of the unrounded d, and d stored f16.
void f32_to_q8_0(const float* src, void* dst, std::int64_t n) {
  auto* block = static_cast<std::byte*>(dst);
  for (std::int64_t b = 0; b < n / kQk; ++b, block += 2 + kQk, src += kQk) {
    float amax = 0.0f;
    for (std::int64_t j = 0; j < kQk; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_half(d, block);
    auto* qs = reinterpret_cast<std::int8_t*>(block + 2);
    for (std::int64_t j = 0; j < kQk; ++j) qs[j] = to_int8(std::round(src[j] * id));
  }
}

// GGML's quantize_row_q4_0_ref: d = m / -8 where m is the value of largest magnitude (the first
// one on a tie), so m itself maps to 0; nibble = min(15, trunc(x / d + 8.5)).
void f32_to_q4_0(const float* src, void* dst, std::int64_t n) {
  auto* block = static_cast<std::byte*>(dst);
  for (std::int64_t b = 0; b < n / kQk; ++b, block += 2 + kQk / 2, src += kQk) {
    float amax = 0.0f, max = 0.0f;
    for (std::int64_t j = 0; j < kQk; ++j) {
      if (amax < std::fabs(src[j])) {
        amax = std::fabs(src[j]);
        max = src[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_half(d, block);
    auto* qs = reinterpret_cast<std::uint8_t*>(block + 2);
    const auto nibble = [&](float x) {
      return static_cast<std::uint8_t>(std::clamp(static_cast<int>(to_int8(x * id + 8.5f)), 0, 15));
    };
    for (std::int64_t j = 0; j < kQk / 2; ++j)
      qs[j] = static_cast<std::uint8_t>(nibble(src[j]) | (nibble(src[j + kQk / 2]) << 4));
  }
}

// GGML's quantize_row_q4_1_ref: m = the block's minimum, d = (max - min) / 15, nibble =
// min(15, trunc((x - m) / d + 0.5)), both stored f16 (the quants from the unrounded d and m).
void f32_to_q4_1(const float* src, void* dst, std::int64_t n) {
  auto* block = static_cast<std::byte*>(dst);
  for (std::int64_t b = 0; b < n / kQk; ++b, block += 4 + kQk / 2, src += kQk) {
    float min = src[0], max = src[0];  // the first of equal values, as GGML's loop keeps (0 and -0)
    for (std::int64_t j = 1; j < kQk; ++j) {
      if (src[j] < min) min = src[j];
      if (src[j] > max) max = src[j];
    }
    const float d = (max - min) / 15.0f, m = min;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_half(d, block);
    store_half(m, block + 2);
    auto* qs = reinterpret_cast<std::uint8_t*>(block + 4);
    const auto nibble = [&](float x) {
      return static_cast<std::uint8_t>(std::clamp(static_cast<int>(to_int8((x - m) * id + 0.5f)), 0, 15));
    };
    for (std::int64_t j = 0; j < kQk / 2; ++j)
      qs[j] = static_cast<std::uint8_t>(nibble(src[j]) | (nibble(src[j + kQk / 2]) << 4));
  }
}

// Stores 32 quants of 5 bits as Q5 does: low nibbles in qs, the fifth bits in the word qh.
void store_quant5(const int* q, std::byte* qh_at, std::uint8_t* qs) {
  std::uint32_t qh = 0;
  for (std::int64_t j = 0; j < kQk / 2; ++j) qs[j] = static_cast<std::uint8_t>((q[j] & 15) | (q[j + kQk / 2] & 15) << 4);
  for (std::int64_t j = 0; j < kQk; ++j) qh |= static_cast<std::uint32_t>(q[j] >> 4) << j;
  std::memcpy(qh_at, &qh, sizeof qh);
}

// GGML's quantize_row_q5_0_ref: Q4_0's rounding with 32 levels, d = m / -16 for the value m of
// largest magnitude (the first one on a tie); q = min(31, trunc(x / d + 16.5)).
void f32_to_q5_0(const float* src, void* dst, std::int64_t n) {
  auto* block = static_cast<std::byte*>(dst);
  for (std::int64_t b = 0; b < n / kQk; ++b, block += 6 + kQk / 2, src += kQk) {
    float amax = 0.0f, max = 0.0f;
    for (std::int64_t j = 0; j < kQk; ++j) {
      if (amax < std::fabs(src[j])) {
        amax = std::fabs(src[j]);
        max = src[j];
      }
    }
    const float d = max / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_half(d, block);
    int q[kQk];
    for (std::int64_t j = 0; j < kQk; ++j) q[j] = std::clamp(static_cast<int>(to_int8(src[j] * id + 16.5f)), 0, 31);
    store_quant5(q, block + 2, reinterpret_cast<std::uint8_t*>(block + 6));
  }
}

// GGML's quantize_row_q5_1_ref: Q4_1's rounding with 32 levels, d = (max - min) / 31.
void f32_to_q5_1(const float* src, void* dst, std::int64_t n) {
  auto* block = static_cast<std::byte*>(dst);
  for (std::int64_t b = 0; b < n / kQk; ++b, block += 8 + kQk / 2, src += kQk) {
    float min = src[0], max = src[0];
    for (std::int64_t j = 1; j < kQk; ++j) {
      if (src[j] < min) min = src[j];
      if (src[j] > max) max = src[j];
    }
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_half(d, block);
    store_half(min, block + 2);
    int q[kQk];
    for (std::int64_t j = 0; j < kQk; ++j)
      q[j] = std::clamp(static_cast<int>(to_int8((src[j] - min) * id + 0.5f)), 0, 31);
    store_quant5(q, block + 4, reinterpret_cast<std::uint8_t*>(block + 8));
  }
}

using Half = Eigen::half;
using Brain = Eigen::bfloat16;

using gguf::TensorType;
constexpr int kNoGgml = -1;
constexpr int ggml(TensorType type) { return static_cast<int>(type); }

// Indexed by the DType's code.
constexpr std::array<DTypeTraits, 17> kTraits = {{
    {DType::f32, "f32", 1, 4, widen<float>, narrow<float>, LinearKernel::f32, ActivationBlocks::none, ggml(TensorType::f32)},
    {DType::f16, "f16", 1, 2, widen<Half>, narrow<Half>, LinearKernel::f16, ActivationBlocks::none, ggml(TensorType::f16)},
    {DType::bf16, "bf16", 1, 2, widen<Brain>, narrow<Brain>, LinearKernel::bf16, ActivationBlocks::none, ggml(TensorType::bf16)},
    {DType::i32, "i32", 1, 4, nullptr, nullptr, LinearKernel::none, ActivationBlocks::none, kNoGgml},
    {DType::i64, "i64", 1, 8, nullptr, nullptr, LinearKernel::none, ActivationBlocks::none, kNoGgml},
    {DType::i8, "i8", 1, 1, widen<std::int8_t>, nullptr, LinearKernel::i8, ActivationBlocks::none, kNoGgml},
    {DType::u8, "u8", 1, 1, nullptr, nullptr, LinearKernel::none, ActivationBlocks::none, kNoGgml},
    {DType::q8_0, "q8_0", kQk, 2 + kQk, q8_0_to_f32, f32_to_q8_0, LinearKernel::q8_0, ActivationBlocks::q8_0, ggml(TensorType::q8_0)},
    {DType::q4_0, "q4_0", kQk, 2 + kQk / 2, q4_0_to_f32, f32_to_q4_0, LinearKernel::q4_0, ActivationBlocks::q8_0, ggml(TensorType::q4_0)},
    {DType::q4_1, "q4_1", kQk, 4 + kQk / 2, q4_1_to_f32, f32_to_q4_1, LinearKernel::q4_1, ActivationBlocks::q8_1, ggml(TensorType::q4_1)},
    {DType::q5_0, "q5_0", kQk, 6 + kQk / 2, q5_0_to_f32, f32_to_q5_0, LinearKernel::q5_0, ActivationBlocks::q8_0, ggml(TensorType::q5_0)},
    {DType::q5_1, "q5_1", kQk, 8 + kQk / 2, q5_1_to_f32, f32_to_q5_1, LinearKernel::q5_1, ActivationBlocks::q8_1, ggml(TensorType::q5_1)},
    {DType::q6_k, "q6_k", kQkK, 210, q6_k_to_f32, nullptr, LinearKernel::q6_k, ActivationBlocks::q8_k, ggml(TensorType::q6_k)},
    {DType::q4_k, "q4_k", kQkK, 144, q4_k_to_f32, nullptr, LinearKernel::q4_k, ActivationBlocks::q8_k, ggml(TensorType::q4_k)},
    {DType::q5_k, "q5_k", kQkK, 176, q5_k_to_f32, nullptr, LinearKernel::q5_k, ActivationBlocks::q8_k, ggml(TensorType::q5_k)},
    {DType::q3_k, "q3_k", kQkK, 110, q3_k_to_f32, nullptr, LinearKernel::q3_k, ActivationBlocks::q8_k, ggml(TensorType::q3_k)},
    {DType::q2_k, "q2_k", kQkK, 84, q2_k_to_f32, nullptr, LinearKernel::q2_k, ActivationBlocks::q8_k, ggml(TensorType::q2_k)},
}};

}  // namespace

const DTypeTraits& dtype_traits(DType dtype) { return kTraits[static_cast<std::size_t>(dtype)]; }

std::string_view dtype_name(DType dtype) { return dtype_traits(dtype).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const DTypeTraits& t : kTraits)
    if (t.name == name) return t.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_code(std::uint8_t code) {
  if (code < kTraits.size()) return static_cast<DType>(code);
  return std::nullopt;
}

std::optional<DType> dtype_from_gguf(gguf::TensorType type) {
  for (const DTypeTraits& t : kTraits)
    if (t.ggml_type == static_cast<int>(type)) return t.dtype;
  return std::nullopt;
}

std::size_t dtype_size(DType dtype) {
  const DTypeTraits& t = dtype_traits(dtype);
  if (t.block != 1) fail<ShapeError>("dtype {} stores blocks of {} values, not single values", t.name, t.block);
  return t.block_bytes;
}

std::size_t row_bytes(DType dtype, std::int64_t cols, std::string_view tensor) {
  const DTypeTraits& t = dtype_traits(dtype);
  if (cols < 0 || cols % t.block != 0)
    fail<ShapeError>("tensor '{}': rows of {} values, not a multiple of {}'s block of {}", tensor, cols, t.name,
                     t.block);
  return static_cast<std::size_t>(cols / t.block) * t.block_bytes;
}

}  // namespace ecr
