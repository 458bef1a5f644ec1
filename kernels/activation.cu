// Element-wise, grid-stride. The GELU formulas are the CPU twin's, constant for constant
// (nn::activate): tanh form 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))), erf form
// 0.5 v (1 + erf(v / sqrt(2))), with the precise tanhf / erff (no fast-math intrinsics).
#include "activation.cuh"

#include <algorithm>

#include "common.cuh"

namespace ecr::kernels {

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;

template <Activation A>
__device__ __forceinline__ float activate(float v) {
  if constexpr (A == Activation::relu) return fmaxf(v, 0.0f);
  if constexpr (A == Activation::gelu_tanh) return 0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + 0.044715f * (v * v * v))));
  if constexpr (A == Activation::gelu_erf) return 0.5f * v * (1.0f + erff(v * kInvSqrt2));
  return v;
}

template <class T, Activation A>
__global__ void bias_activation_kernel(T* y, const float* bias, std::int64_t total, int cols) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    float v = to_float(y[i]);
    if (bias) v += bias[i % cols];
    y[i] = from_float<T>(activate<A>(v));
  }
}

template <class T, Activation A>
cudaError_t launch(T* y, const float* bias, std::int64_t total, int cols, cudaStream_t stream) {
  const unsigned blocks = std::min(ceil_div(total, kElementwiseThreads), kMaxGridBlocks);
  bias_activation_kernel<T, A><<<blocks, kElementwiseThreads, 0, stream>>>(y, bias, total, cols);
  return cudaGetLastError();
}

}  // namespace

template <class T>
cudaError_t bias_activation(T* y, const float* bias, std::int64_t rows, int cols, Activation activation,
                            cudaStream_t stream) {
  const std::int64_t total = rows * cols;
  if (total == 0 || (!bias && activation == Activation::none)) return cudaSuccess;
  switch (activation) {
    case Activation::none: return launch<T, Activation::none>(y, bias, total, cols, stream);
    case Activation::relu: return launch<T, Activation::relu>(y, bias, total, cols, stream);
    case Activation::gelu_tanh: return launch<T, Activation::gelu_tanh>(y, bias, total, cols, stream);
    case Activation::gelu_erf: return launch<T, Activation::gelu_erf>(y, bias, total, cols, stream);
  }
  return cudaErrorInvalidValue;
}

template cudaError_t bias_activation<float>(float*, const float*, std::int64_t, int, Activation, cudaStream_t);
template cudaError_t bias_activation<__half>(__half*, const float*, std::int64_t, int, Activation, cudaStream_t);
template cudaError_t bias_activation<__nv_bfloat16>(__nv_bfloat16*, const float*, std::int64_t, int, Activation,
                                                    cudaStream_t);

}  // namespace ecr::kernels
