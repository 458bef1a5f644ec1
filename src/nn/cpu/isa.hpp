// Which level of the weight kernels (linear_kernels.hpp) this process runs: the best the CPU
// supports, or the one ECR_ISA names (portable, avx2, avx512, avx512bf16), chosen once at first use.
#pragma once

#include <optional>
#include <string_view>

#include "ecr/nn/linear.hpp"
#include "linear_kernels.hpp"

namespace ecr::nn::cpu {

enum class Isa { portable, avx2, avx512, avx512bf16 };

std::string_view isa_name(Isa isa);
bool isa_supported(Isa isa);
// The kernels of `isa`; ConfigError when this CPU (or this build) lacks it.
const LinearKernels& kernels(Isa isa);
// The level for an ECR_ISA value: the best supported one when `requested` is empty; ConfigError
// for an unknown name or a level the CPU lacks.
Isa select_isa(std::optional<std::string_view> requested);
// The level this process uses: select_isa(ECR_ISA), decided at the first call.
Isa active_isa();
const LinearKernels& active_kernels();

// nn::linear for an f16, bf16 or i8 weight (or an f32 one at decode) with the kernels of one
// level (nn::linear passes the active level's; the tests compare the levels through this).
void linear_stored(const LinearKernels& kernels, ConstMatrix x, const Linear& layer, Matrix y, ThreadPool& pool,
                   Activation activation, bool accumulate);

}  // namespace ecr::nn::cpu
