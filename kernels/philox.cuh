// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator, so draw (seed, step, row) is a pure function and a device sampler
// needs no state. Compiles for the host too, so the host can reproduce any device draw.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define ECR_HOST_DEVICE __host__ __device__
#else
#define ECR_HOST_DEVICE
#endif

namespace ecr::kernels {

struct Philox4x32 {
  std::uint32_t v[4];
};

ECR_HOST_DEVICE inline Philox4x32 philox4x32_10(Philox4x32 counter, std::uint32_t key0, std::uint32_t key1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key0 += 0x9E3779B9u;
      key1 += 0xBB67AE85u;
    }
    const std::uint64_t p0 = static_cast<std::uint64_t>(0xD2511F53u) * counter.v[0];
    const std::uint64_t p1 = static_cast<std::uint64_t>(0xCD9E8D57u) * counter.v[2];
    counter = {{static_cast<std::uint32_t>(p1 >> 32) ^ counter.v[1] ^ key0, static_cast<std::uint32_t>(p1),
                static_cast<std::uint32_t>(p0 >> 32) ^ counter.v[3] ^ key1, static_cast<std::uint32_t>(p0)}};
  }
  return counter;
}

// A uniform double in [0, 1) with 53 random bits (the CPU sampler's construction) for draw
// `step` of row `row` under `seed`.
ECR_HOST_DEVICE inline double philox_uniform(std::uint64_t seed, std::uint64_t step, std::uint32_t row) {
  const Philox4x32 r = philox4x32_10({{static_cast<std::uint32_t>(step), static_cast<std::uint32_t>(step >> 32), row, 0u}},
                                     static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
  const std::uint64_t bits = (static_cast<std::uint64_t>(r.v[0]) << 32) | r.v[1];
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

}  // namespace ecr::kernels
