// The kernels for AVX-512 F/BW/VL (Skylake-SP and later, Zen 4): 16 lanes. Weights are widened
// to f32 and the activations stay f32: AVX-512 BF16's dot product would round the activations to
// bf16 as well, which costs accuracy that decode (bound by reading the weights) cannot buy back.
// Prefill, bound by arithmetic, does buy it: see linear_kernels_avx512bf16.cpp.
// Built with its own -m flags (src/CMakeLists.txt); isa.cpp calls it only on CPUs that have them.
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

#include "avx512_vector.inl"

}  // namespace

const LinearKernels& avx512_kernels() {
  static const LinearKernels kernels = [] {
    LinearKernels k = make_kernels<Avx512>("avx512");
    add_q8_kernels<Q8Avx2>(k);
    return k;
  }();
  return kernels;
}

}  // namespace ecr::nn::cpu
