// The inner loops of nn::linear for weights stored f16, bf16, int8 or GGML blocks (src/nn/linear.cpp), built
// once per instruction-set level (linear_kernels_<level>.cpp, each with its own -m flags in
// src/CMakeLists.txt) and picked at run time by isa.cpp.
//
// This header is the whole interface between the levels: plain pointers, no Eigen, no std
// templates. Code compiled with -mavx512f must not leak into the rest of the library through an
// inline function that the linker might keep from the wrong object file.
#pragma once

#include <cstdint>

namespace ecr::nn::cpu {

// The stored types of a weight matrix, the index into the tables below. f32 weights use the dot
// kernels only (decode: they stream the weights with fewer instructions than Eigen's GEMV); their
// prefill is Eigen's GEMM on the weights in place. The block types' rows are GGML blocks
// (include/ecr/core/dtype.hpp), `in` a multiple of the block; each block is dequantized in
// registers to the values its to_f32 gives, so they sum bit for bit as the same values stored f32.
enum class WeightType : std::uint8_t { f16 = 0, bf16 = 1, i8 = 2, f32 = 3, q8_0 = 4, q4_0 = 5, q4_1 = 6, q5_0 = 7,
                                       q5_1 = 8, q6_k = 9, q4_k = 10, q5_k = 11, q3_k = 12, q2_k = 13 };
inline constexpr int kWeightTypes = 14;

// The most activation rows the dot kernels take at once (decode); more rows go through a GEMM.
inline constexpr int kDotRows = 4;

struct LinearKernels {
  const char* level;
  // y[r * ldy + j] = sum_k x[r * ldx + k] * w[j * in + k] for r < rows (1 .. kDotRows) and
  // j < count: `count` weight rows of `in` elements each, widened exactly to f32, summed in f32 in
  // an order fixed by the level (never by the thread count). int8 rows give the unscaled sum.
  void (*dot[kWeightTypes])(const float* x, std::int64_t ldx, int rows, const void* w, std::int64_t in,
                            std::int64_t count, float* y, std::int64_t ldy);
  // dst[i] = src[i] as f32 for i < n: exact for every type, so every level gives the same bits.
  void (*widen[kWeightTypes])(const void* src, float* dst, std::int64_t n);

  // Prefill (more than kDotRows rows) with bf16 weights on CPUs with a bf16 dot-product
  // instruction; both null on the levels without one, which widen the weights for an f32 GEMM.
  // The activations are rounded to bf16 once per call (to_bf16: row r of x, `in` values, to
  // x16 + r * ldx16, ldx16 = in rounded up to even, the pad zeroed); then
  //   y[r * ldy + j] = sum_k x16[r, k] * w[j * in + k]   for r < rows, j < count,
  // every product exact and summed in f32 in an order fixed by the shape. `packed` is scratch of
  // bf16_packed_words(in, count) words for the weights in the instruction's pair layout.
  void (*to_bf16)(const float* x, std::int64_t ldx, std::int64_t rows, std::int64_t in, std::uint16_t* x16,
                  std::int64_t ldx16);
  void (*gemm_bf16)(const std::uint16_t* x16, std::int64_t ldx16, std::int64_t rows, const void* w, std::int64_t in,
                    std::int64_t count, std::uint32_t* packed, float* y, std::int64_t ldy);

  // The 8-bit activation path (Activations::q8; q8_kernels.inl has ggml's numerics, the same bits
  // on every level). quantize_q8_0 / quantize_q8_1: n values of x (a multiple of 32) to blocks of
  // q8_block_bytes(false / true) bytes at dst. dot_q8[type] (null where the type has none):
  //   y[r * ldy + j] = dot(row r of the activation blocks, ldxq bytes apart, weight row j)
  // for r < rows and j < count, the integer sums scaled per block as ggml's vec_dot does.
  void (*quantize_q8_0)(const float* x, std::int64_t n, void* dst);
  void (*quantize_q8_1)(const float* x, std::int64_t n, void* dst);
  void (*dot_q8[kWeightTypes])(const void* xq, std::int64_t ldxq, std::int64_t rows, const void* w, std::int64_t in,
                               std::int64_t count, float* y, std::int64_t ldy);
};

// Bytes of a row of `in` activations (a multiple of 32) quantized to q8_0 (34 per block) or q8_1
// (36: the sum's term as well).
inline std::int64_t q8_row_bytes(std::int64_t in, bool with_sum) { return in / 32 * (with_sum ? 36 : 34); }

// Scratch words gemm_bf16 packs `count` weight rows of `in` bf16 values into: panels of 64 columns
// (four 16-column tiles), each holding every pair (w[j, 2p], w[j, 2p + 1]) as one 32-bit word.
inline std::int64_t bf16_packed_words(std::int64_t in, std::int64_t count) {
  return (count + 63) / 64 * 64 * ((in + 1) / 2);
}

const LinearKernels& portable_kernels();
#if defined(ECR_X86_KERNELS)
const LinearKernels& avx2_kernels();
const LinearKernels& avx512_kernels();
const LinearKernels& avx512bf16_kernels();
#endif

}  // namespace ecr::nn::cpu
