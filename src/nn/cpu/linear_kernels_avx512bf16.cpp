// The kernels for AVX-512 BF16 (Cooper Lake, Sapphire Rapids, Zen 4): the avx512 level's decode
// kernels, plus a GEMM for prefill with bf16 weights on VDPBF16PS, which multiplies 32 bf16 pairs
// and adds them into 16 f32 lanes: twice the f32 FMA's arithmetic per instruction. Prefill is
// bound by arithmetic, so rounding the activations to bf16 buys speed there; decode keeps the
// avx512 level's f32 activations (linear_kernels_avx512.cpp says why).
//
// The GEMM is the usual register-blocked one (as in BLIS and oneDNN's brgemm): the weights of one
// output chunk are packed so that each 64-byte load holds one pair (w[j, 2p], w[j, 2p + 1]) for 16
// columns j, and a tile of up to 6 rows x 64 columns keeps its 24 sums in registers across the
// whole of k, each row's pair (x[r, 2p], x[r, 2p + 1]) broadcast to all lanes. Every sum runs
// over p in order, so the result depends on the shape only, never on the thread count.
//
// Built with its own -m flags (src/CMakeLists.txt); isa.cpp calls it only on CPUs that have them.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "linear_kernels.hpp"

namespace ecr::nn::cpu {
namespace {

#include "linear_kernels.inl"

#include "q8_kernels.inl"
#include "q8_avx2.inl"

#include "avx512_vector.inl"

constexpr int kTileRows = 6;   // rows of x in one register tile
constexpr int kPanelTiles = 4;  // 16-column tiles in one panel: 6 x 4 sums + 4 weights + 1 broadcast <= 32 registers
constexpr std::int64_t kPanelColumns = 16 * kPanelTiles;

__mmask16 first_lanes(std::int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }

void to_bf16(const float* x, std::int64_t ldx, std::int64_t rows, std::int64_t in, std::uint16_t* x16,
             std::int64_t ldx16) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* src = x + r * ldx;
    std::uint16_t* dst = x16 + r * ldx16;
    for (std::int64_t k = 0; k < in; k += 16) {
      const __mmask16 mask = first_lanes(in - k);
      const __m256bh rounded = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src + k));  // to nearest even
      _mm256_mask_storeu_epi16(dst + k, mask, reinterpret_cast<const __m256i&>(rounded));
    }
    if (ldx16 > in) dst[in] = 0;  // an odd `in`: the last pair's second half
  }
}

// r[i] = word column i of the 16 x 16 words r[0..15] held: 16 unpacks of words, 16 of
// double words, then a 4 x 4 transpose of the 128-bit lanes in 32 shuffles.
void transpose_16x16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // r[i + m], lane L: column 4L + m of rows i .. i + 3
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int m = 0; m < 4; ++m) {
    const __m512i s0 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0x44), s1 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0xee);
    const __m512i s2 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0x44);
    const __m512i s3 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0xee);
    t[m] = _mm512_shuffle_i32x4(s0, s2, 0x88);
    t[4 + m] = _mm512_shuffle_i32x4(s0, s2, 0xdd);
    t[8 + m] = _mm512_shuffle_i32x4(s1, s3, 0x88);
    t[12 + m] = _mm512_shuffle_i32x4(s1, s3, 0xdd);
  }
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// Packs `count` rows of w (each `in` bf16 values) into panels: panel q holds columns
// 64q .. 64q + 16 nt - 1 (nt tiles), and pair p of tile t at words (p * nt + t) * 16 .. + 15, one
// word per column, so that a tile's loop over p reads the panel front to back. Columns past
// `count` are zero. A full tile reads its 16 rows a cache line at a time and transposes 16 x 16
// words in registers (the weights come from memory once per call, so the reads must stream);
// the ragged edges gather.
void pack_pairs(const std::uint16_t* w, std::int64_t in, std::int64_t count, std::uint32_t* packed) {
  const std::int64_t pairs = (in + 1) / 2, whole = in / 2, tiles = (count + 15) / 16;
  // Row jj of a tile starts jj * in values (2 * in bytes) after the tile's first row.
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(static_cast<int>(in)));
  for (std::int64_t q = 0; q * kPanelTiles < tiles; ++q) {
    const std::int64_t nt = std::min<std::int64_t>(kPanelTiles, tiles - q * kPanelTiles);
    std::uint32_t* panel = packed + q * kPanelColumns * pairs;
    for (std::int64_t t = 0; t < nt; ++t) {
      const std::int64_t j0 = (q * kPanelTiles + t) * 16, valid = std::min<std::int64_t>(16, count - j0);
      const __mmask16 mask = first_lanes(valid);
      const std::uint16_t* first = w + j0 * in;
      std::int64_t p = 0;
      if (valid == 16) {
        for (; p + 16 <= whole; p += 16) {
          __m512i block[16];
          for (int jj = 0; jj < 16; ++jj) block[jj] = _mm512_loadu_si512(first + jj * in + 2 * p);
          transpose_16x16(block);
          for (int c = 0; c < 16; ++c) _mm512_storeu_si512(panel + ((p + c) * nt + t) * 16, block[c]);
        }
      }
      for (; p < whole; ++p) {
        const __m512i words = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, rows, first + 2 * p, 2);
        _mm512_storeu_si512(panel + (p * nt + t) * 16, words);
      }
      if (pairs > whole) {  // odd `in`: the last value alone, paired with zero
        std::uint32_t* last = panel + (whole * nt + t) * 16;
        for (std::int64_t jj = 0; jj < 16; ++jj) last[jj] = jj < valid ? first[jj * in + in - 1] : 0u;
      }
    }
  }
}

// One register tile: R rows of x16 by NT 16-column tiles of a panel, over all `pairs`.
template <int R, int NT>
void tile(const std::uint16_t* x16, std::int64_t ldx16, const std::uint32_t* panel, std::int64_t pairs, float* y,
          std::int64_t ldy, __mmask16 last_columns) {
  __m512 sum[R][NT];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t) sum[r][t] = _mm512_setzero_ps();
  for (std::int64_t p = 0; p < pairs; ++p) {
    __m512bh w[NT];
    for (int t = 0; t < NT; ++t) {
      const __m512i words = _mm512_loadu_si512(panel + (p * NT + t) * 16);
      w[t] = reinterpret_cast<const __m512bh&>(words);
    }
    for (int r = 0; r < R; ++r) {
      std::int32_t pair;
      std::memcpy(&pair, x16 + r * ldx16 + 2 * p, sizeof pair);
      const __m512i broadcast = _mm512_set1_epi32(pair);
      const __m512bh x = reinterpret_cast<const __m512bh&>(broadcast);
      for (int t = 0; t < NT; ++t) sum[r][t] = _mm512_dpbf16_ps(sum[r][t], x, w[t]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t + 1 < NT; ++t) _mm512_storeu_ps(y + r * ldy + t * 16, sum[r][t]);
    _mm512_mask_storeu_ps(y + r * ldy + (NT - 1) * 16, last_columns, sum[r][NT - 1]);
  }
}

using TileFn = void (*)(const std::uint16_t*, std::int64_t, const std::uint32_t*, std::int64_t, float*,
                        std::int64_t, __mmask16);

template <int R, int... NT>
constexpr auto tiles_of_rows(std::integer_sequence<int, NT...>) {
  return std::array<TileFn, sizeof...(NT)>{tile<R, NT + 1>...};
}

template <int... R>
constexpr auto all_tiles(std::integer_sequence<int, R...>) {
  return std::array<std::array<TileFn, kPanelTiles>, sizeof...(R)>{
      tiles_of_rows<R + 1>(std::make_integer_sequence<int, kPanelTiles>{})...};
}

// kTiles[R - 1][NT - 1] = tile<R, NT>.
constexpr auto kTiles = all_tiles(std::make_integer_sequence<int, kTileRows>{});

void gemm_bf16(const std::uint16_t* x16, std::int64_t ldx16, std::int64_t rows, const void* weights, std::int64_t in,
               std::int64_t count, std::uint32_t* packed, float* y, std::int64_t ldy) {
  pack_pairs(static_cast<const std::uint16_t*>(weights), in, count, packed);
  const std::int64_t pairs = (in + 1) / 2, tiles = (count + 15) / 16;
  for (std::int64_t q = 0; q * kPanelTiles < tiles; ++q) {
    const std::int64_t nt = std::min<std::int64_t>(kPanelTiles, tiles - q * kPanelTiles);
    const std::int64_t column = q * kPanelColumns;
    const __mmask16 last = first_lanes(count - (column + (nt - 1) * 16));
    const std::uint32_t* panel = packed + q * kPanelColumns * pairs;
    for (std::int64_t r = 0; r < rows; r += kTileRows) {
      const std::int64_t height = std::min<std::int64_t>(kTileRows, rows - r);
      kTiles[height - 1][nt - 1](x16 + r * ldx16, ldx16, panel, pairs, y + r * ldy + column, ldy, last);
    }
  }
}

}  // namespace

const LinearKernels& avx512bf16_kernels() {
  static const LinearKernels kernels = [] {
    LinearKernels k = make_kernels<Avx512>("avx512bf16");
    k.to_bf16 = to_bf16;
    k.gemm_bf16 = gemm_bf16;
    add_q8_kernels<Q8Avx2>(k);
    return k;
  }();
  return kernels;
}

}  // namespace ecr::nn::cpu
