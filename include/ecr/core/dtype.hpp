// The stored types of tensors, in one table: per-element types (f32, f16, bf16, the integers,
// int8 weights with a per-row scale) and block types, where `block` consecutive values of a row
// share their scale (GGML's, byte for byte as GGUF files store them, so that those bytes can be
// used in place):
//
//   Q8_0: { f16 d; int8 qs[32]; }          x[j] = d * qs[j]
//   Q4_0: { f16 d; uint8 qs[16]; }         x[j] = d * ((qs[j] & 15) - 8), x[j + 16] = d * ((qs[j] >> 4) - 8)
//   Q4_1: { f16 d; f16 m; uint8 qs[16]; }  x[j] = d * (qs[j] & 15) + m,  x[j + 16] = d * (qs[j] >> 4) + m
//   Q5_0: { f16 d; uint8 qh[4]; uint8 qs[16]; }         x[j] = d * (q[j] - 16)
//   Q5_1: { f16 d; f16 m; uint8 qh[4]; uint8 qs[16]; }  x[j] = d * q[j] + m
//         where q[j] is Q4's nibble for j plus 16 times bit j of qh (a little-endian uint32)
//
// and the k-quants, super-blocks of 256 values in 16 or 8 sub-blocks with 6- or 8-bit scales
// (Q6_K, Q4_K, Q5_K, Q3_K, Q2_K: ggml-common.h has the layouts; src/core/dtype.cpp reads them).
//
// A block type stores rows whose length is a multiple of the block: a tensor of shape (..., n)
// takes prod(...) * (n / block) * block_bytes bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "ecr/core/error.hpp"

namespace ecr {

namespace gguf {
enum class TensorType : std::uint32_t;  // ggml's tensor type ids: include/ecr/io/gguf.hpp
}

// Stored in bundles as a byte: the numbers are part of the file format (docs/format.md), where
// the block types are not (yet) accepted.
enum class DType : std::uint8_t {
  f32 = 0, f16 = 1, bf16 = 2, i32 = 3, i64 = 4, i8 = 5, u8 = 6,
  q8_0 = 7, q4_0 = 8, q4_1 = 9, q5_0 = 10, q5_1 = 11, q6_k = 12, q4_k = 13, q5_k = 14, q3_k = 15, q2_k = 16,
};

// The family of nn::linear kernels that computes on a weight of a type (src/nn/cpu): none for the
// types that are never weights; i8's sums are scaled per row by the matrix's scale afterwards.
enum class LinearKernel : std::uint8_t {
  none, f32, f16, bf16, i8, q8_0, q4_0, q4_1, q5_0, q5_1, q6_k, q4_k, q5_k, q3_k, q2_k,
};

// The blocks ggml quantizes a matmul's activations into before its integer dot products with a
// weight of a type (ggml's vec_dot_type), when nn::Linear computes with Activations::q8:
//   q8_0: { f16 d; int8 qs[32]; }          for Q8_0, Q4_0, Q5_0 weights
//   q8_1: { f16 d; f16 s; int8 qs[32]; }   for Q4_1, Q5_1 (s = d * sum(qs): the minimum's term)
//   q8_k: { f32 d; int8 qs[256]; int16 bsums[16]; }   for the k-quants (ecr keeps f32 activations
//         there: no q8_k kernels yet)
// none for the per-element types, which ggml multiplies in floating point.
enum class ActivationBlocks : std::uint8_t { none, q8_0, q8_1, q8_k };

struct DTypeTraits {
  DType dtype;
  std::string_view name;
  std::int64_t block;        // values per block: 1 for the per-element types
  std::size_t block_bytes;   // bytes of one block (of one value for the per-element types)
  // n values (a multiple of `block`) from `src` to f32, exactly; null for i32, i64 and u8.
  // i8 gives the unscaled integers.
  void (*to_f32)(const void* src, float* dst, std::int64_t n);
  // n values (a multiple of `block`) from f32, rounded to nearest: f16 and bf16 to even, the
  // blocks as GGML's reference quantize_row_q8_0 / q4_0 / q4_1 / q5_0 / q5_1 do (the same bytes).
  // Null where a rounding needs more than the values (i8 takes a per-row scale: nn::cast_matrix),
  // makes no sense, or has no reference that the gguf package repeats (the k-quants).
  void (*from_f32)(const float* src, void* dst, std::int64_t n);
  LinearKernel linear;
  ActivationBlocks activations;
  // ggml's id of the tensor type that stores these bytes in a GGUF file, or -1 for none (i8's
  // rows need their scales, the integers are never weights).
  int ggml_type;
};

const DTypeTraits& dtype_traits(DType dtype);
std::string_view dtype_name(DType dtype);
std::optional<DType> dtype_from_name(std::string_view name);
std::optional<DType> dtype_from_code(std::uint8_t code);
// The type that holds a GGUF tensor's bytes as they are, computed on in place; nullopt for a type
// ecr has no kernels for. The one mapping from GGUF tensor types to DType.
std::optional<DType> dtype_from_gguf(gguf::TensorType type);
inline bool is_block_type(DType dtype) { return dtype_traits(dtype).block > 1; }

// Bytes of one value of a per-element type; for a block type, ShapeError (a value has no bytes of
// its own there: use row_bytes).
std::size_t dtype_size(DType dtype);
// Bytes of a row of `cols` values; ShapeError naming the tensor when `cols` is not a multiple of
// the type's block.
std::size_t row_bytes(DType dtype, std::int64_t cols, std::string_view tensor);

}  // namespace ecr
