// Sizes that the kernels and their host wrappers both rely on, in one place. Plain C++ (no CUDA
// headers), so the .cpp wrappers include it as well as the .cu files.
#pragma once

namespace ecr::kernels {

inline constexpr int kWarpSize = 32;

// Threads per block of the element-wise, grid-stride kernels, and the most blocks they launch
// (each thread then strides over the rest).
inline constexpr int kElementwiseThreads = 256;
inline constexpr unsigned kMaxGridBlocks = 65536;

// Attention (kernels/attention.cu): head dimensions up to kMaxHeadDim (GPT-2, DialoGPT and
// RoBERTa use 64), each lane owning kMaxHeadDim / kWarpSize output columns; kAttentionWarps warps
// per block, each scoring kWarpSize keys per step (one per lane); prefill blocks take
// kPrefillTileQueries queries of one head.
inline constexpr int kMaxHeadDim = 128;
inline constexpr int kAttentionWarps = 4;
inline constexpr int kPrefillTileQueries = 16;
// Decode splits a context into runs of keys that are multiples of this (one step of every warp
// of a block): the smallest split plan_decode chooses, so at most ceil(keys / this) splits.
inline constexpr int kDecodeKeysPerBlock = kAttentionWarps * kWarpSize;

static_assert(kMaxHeadDim % kWarpSize == 0, "a lane owns a whole number of output columns");
static_assert(kPrefillTileQueries % kAttentionWarps == 0, "each warp owns the same number of queries");

}  // namespace ecr::kernels
