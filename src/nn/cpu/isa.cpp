#include "isa.hpp"

#include <cstdlib>

#include "ecr/core/error.hpp"

namespace ecr::nn::cpu {

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::avx512bf16: return "avx512bf16";
    case Isa::portable: break;
  }
  return "portable";
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::portable: return true;
#if defined(ECR_X86_KERNELS)
    // __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0).
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case Isa::avx512:
      return isa_supported(Isa::avx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
    case Isa::avx512bf16: return isa_supported(Isa::avx512) && __builtin_cpu_supports("avx512bf16");
#else
    default: return false;
#endif
  }
  return false;
}

const LinearKernels& kernels(Isa isa) {
  if (!isa_supported(isa))
    fail<ConfigError>("CPU kernels '{}' are not supported by this CPU or this build", isa_name(isa));
#if defined(ECR_X86_KERNELS)
  if (isa == Isa::avx512bf16) return avx512bf16_kernels();
  if (isa == Isa::avx512) return avx512_kernels();
  if (isa == Isa::avx2) return avx2_kernels();
#endif
  return portable_kernels();
}

Isa select_isa(std::optional<std::string_view> requested) {
  constexpr Isa kLevels[] = {Isa::avx512bf16, Isa::avx512, Isa::avx2, Isa::portable};  // best first
  if (!requested) {
    for (Isa isa : kLevels)
      if (isa_supported(isa)) return isa;
  }
  for (Isa isa : kLevels) {
    if (isa_name(isa) != *requested) continue;
    if (!isa_supported(isa))
      fail<ConfigError>("ECR_ISA={}: this CPU (or this build) lacks it; it supports {}", *requested,
                        isa_name(select_isa(std::nullopt)));
    return isa;
  }
  fail<ConfigError>("ECR_ISA={}: unknown level (portable, avx2, avx512, avx512bf16)", *requested);
}

Isa active_isa() {
  static const Isa isa = [] {
    const char* env = std::getenv("ECR_ISA");
    return select_isa(env && *env ? std::optional<std::string_view>(env) : std::nullopt);
  }();
  return isa;
}

const LinearKernels& active_kernels() { return kernels(active_isa()); }

}  // namespace ecr::nn::cpu
