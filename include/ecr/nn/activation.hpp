// The activations of the engine's dense layers, one enum for the CPU ops (nn::activate), the
// device ops (cuda::linear, cuda::bias_activation) and the kernels (kernels/activation.cu). Plain
// C++ with no Eigen or CUDA headers, so .cu files include it too; passing the same value
// everywhere leaves no conversion that could map one form to another.
#pragma once

#include <string_view>

namespace ecr::nn {

// gelu_tanh is HF's "gelu_new" (GPT-2), gelu_erf the exact one (RoBERTa); relu is KGPrompt's
// projection MLPs.
enum class Activation : int { none, relu, gelu_tanh, gelu_erf };

// Every value, for tests that must cover each one.
inline constexpr Activation kActivations[] = {Activation::none, Activation::relu, Activation::gelu_tanh,
                                              Activation::gelu_erf};

constexpr std::string_view activation_name(Activation activation) {
  switch (activation) {
    case Activation::none: return "none";
    case Activation::relu: return "relu";
    case Activation::gelu_tanh: return "gelu_tanh";
    case Activation::gelu_erf: return "gelu_erf";
  }
  return "?";
}

}  // namespace ecr::nn
