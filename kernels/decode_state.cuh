// The device-side state of one decoding sequence. Kernels read the token count, the keys before
// the new tokens and the first position from here rather than from launch arguments, so one
// captured CUDA graph of a decode step replays at every position.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace ecr::kernels {

struct DecodeState {
  std::int32_t q_start = 0;   // first row of the new tokens in the step's buffers (always 0)
  std::int32_t q_count = 0;   // tokens fed this step
  std::int32_t past = 0;      // keys cached before them: prefix rows and earlier tokens
  std::int32_t position = 0;  // position id of the first of them
  std::int32_t step = 0;      // tokens generated so far: the sampler's draw and the output slot
  std::int32_t context = 0;   // tokens in the context buffer (prompt + generated)
};

// Host code copies DecodeState byte for byte into device memory that kernels read as this struct.
static_assert(std::is_trivially_copyable_v<DecodeState> && std::is_standard_layout_v<DecodeState>);
static_assert(sizeof(DecodeState) == 6 * sizeof(std::int32_t) && alignof(DecodeState) == alignof(std::int32_t));
static_assert(offsetof(DecodeState, q_start) == 0 && offsetof(DecodeState, q_count) == 4 &&
              offsetof(DecodeState, past) == 8 && offsetof(DecodeState, position) == 12 &&
              offsetof(DecodeState, step) == 16 && offsetof(DecodeState, context) == 20);

// After a step has chosen `*token`: it becomes the next step's single input (ids[0]), joins the
// context and the generated tokens, and the state advances past the tokens just fed. Writes
// beyond context_capacity / generated_capacity are dropped (the host sizes both).
[[nodiscard]] cudaError_t commit_token(DecodeState* state, const std::int32_t* token, std::int32_t* ids,
                                       std::int32_t* context, std::int64_t context_capacity,
                                       std::int32_t* generated, std::int64_t generated_capacity,
                                       cudaStream_t stream);

}  // namespace ecr::kernels
