#include "decode_state.cuh"

namespace ecr::kernels {

namespace {

__global__ void commit_kernel(DecodeState* state, const std::int32_t* token, std::int32_t* ids, std::int32_t* context,
                              std::int64_t context_capacity, std::int32_t* generated,
                              std::int64_t generated_capacity) {
  const std::int32_t t = *token;
  ids[0] = t;
  if (state->context < context_capacity) context[state->context] = t;
  if (state->step < generated_capacity) generated[state->step] = t;
  state->past += state->q_count;
  state->position += state->q_count;
  state->q_count = 1;
  state->context += 1;
  state->step += 1;
}

}  // namespace

cudaError_t commit_token(DecodeState* state, const std::int32_t* token, std::int32_t* ids, std::int32_t* context,
                         std::int64_t context_capacity, std::int32_t* generated, std::int64_t generated_capacity,
                         cudaStream_t stream) {
  commit_kernel<<<1, 1, 0, stream>>>(state, token, ids, context, context_capacity, generated, generated_capacity);
  return cudaGetLastError();
}

}  // namespace ecr::kernels
