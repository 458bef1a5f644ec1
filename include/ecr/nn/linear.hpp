// Dense layers: y = act(x W^T + b) with W stored (out, in) as torch's nn.Linear stores it.
// GPT-2's Conv1D weights, stored (in, out), are transposed once at load so that every layer,
// and the tied LM head, runs through this one function.
//
// Threads split the OUTPUT columns into chunks of a fixed width. A chunk's values come from one
// computation whose shape depends only on the problem, so the reduction order of every output
// element, and hence every bit of the result, is the same for any number of threads.
//
// Weights may be stored f32, f16, bf16, int8 (weight-only, symmetric, one f32 scale per output
// row: W = scale[j] * q[j, :]) or in GGML's blocks, the bytes GGUF files hold
// (include/ecr/core/dtype.hpp): Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (32 values of a row sharing an f16
// scale) and the k-quants Q6_K, Q4_K, Q5_K, Q3_K, Q2_K (super-blocks of 256 whose sub-blocks of 16
// or 32 have small integer scales; a kernel works out each sub-block's d * scale, exactly, into
// a small array on the stack once per super-block, then reads the quants in registers). The
// activations stay f32 for every type. f32 runs one Eigen GEMM per chunk. The other types are widened to f32 exactly and
// summed in f32: up to kDotRows rows of x (decode) by a kernel that streams the stored weights
// once (a block is dequantized in registers, never in memory), more rows (prefill) by widening
// the chunk's weight rows into scratch and running the same Eigen GEMM; so a block-quantized
// matrix computes bit for bit what its dequantized f32 matrix does. The exception is bf16
// weights on a CPU with AVX-512 BF16, where prefill rounds x to bf16 and runs a GEMM on the bf16
// dot-product instruction (twice the arithmetic per instruction). Those kernels are built per
// instruction-set level and the best one the CPU has is picked at run time
// (linear_kernel_level(); ECR_ISA=portable|avx2|avx512|avx512bf16 forces one).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

#include "ecr/core/tensor.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/nn/ops.hpp"

namespace ecr::nn {

// How a layer's weight meets the activations:
//   f32    f32 activations (the default of a Linear). Exact for every type but one: prefill with
//          bf16 weights on a CPU with a bf16 dot product (AVX-512 BF16) rounds x to bf16 once per
//          call, the speed a bf16 weight is stored for (ggml rounds x to bf16 for bf16 weights too).
//   exact  f32 activations on every CPU and type: the product with the dequantized matrix, summed
//          in f32 -- what a float64 reference of the same weights computes.
//   q8     as llama.cpp computes a weight in GGML's blocks of 32 (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1):
//          each row of x quantized once per call to ggml's 8-bit blocks (q8_0, or q8_1 for Q4_1 /
//          Q5_1: dtype.hpp's ActivationBlocks), then integer dot products scaled per block, with
//          ggml's rounding and summation order (src/nn/cpu/q8_kernels.inl), so the logits follow
//          llama.cpp's rather than the exact ones. Faster: 8-bit products. Other types: as f32.
enum class Activations : std::uint8_t { f32, exact, q8 };

// A weight matrix of any stored type, and its bias: a block-type weight is one (out, in) tensor
// whose rows are blocks (in a multiple of the block), an i8 one comes with its scales.
struct Linear {
  Linear() = default;
  Linear(Tensor weight, Tensor bias, Tensor scale = {})
      : weight(std::move(weight)), bias(std::move(bias)), scale(std::move(scale)) {}
  Tensor weight;  // (out, in) f32, f16, bf16, i8 or a block type
  Tensor bias;    // (out) f32, or undefined for a bias-free layer
  Tensor scale;   // (out) f32 for an i8 weight, else undefined
  Activations activations = Activations::f32;
  std::int64_t in() const { return weight.dim(1); }
  std::int64_t out() const { return weight.dim(0); }
};

// Width of the output chunks one thread computes at a time.
inline constexpr std::int64_t kLinearChunk = 128;

// y = act(x W^T + b); with `accumulate`, y += x W^T + b instead (a residual connection; no
// activation then). x: (rows, in), y: (rows, out), not overlapping.
void linear(ConstMatrix x, const Linear& layer, Matrix y, ThreadPool& pool,
            Activation activation = Activation::none, bool accumulate = false);

// out[i] = row ids[i] of the layer's weight as f32 (scaled for i8, dequantized for block types):
// the embedding table that is also GPT-2's tied LM head. InputError when an id is outside [0, out()); `what` names it.
void gather_rows(const Linear& table, std::span<const std::int32_t> ids, Matrix out, const char* what);

// Whether linear() computes `layer` with 8-bit activations: asked for, and a kernel for its type.
bool uses_q8_activations(const Linear& layer);

// The instruction-set level of the 16-bit, int8 and block kernels: "portable", "avx2", "avx512" or
// "avx512bf16".
// ConfigError when ECR_ISA names a level this CPU lacks.
std::string_view linear_kernel_level();

}  // namespace ecr::nn
