// The row-wise ops of the transformer engine on the device; CPU twins in ecr/nn/ops.hpp, same
// formulas (eps, GELU forms, max-subtracted softmax), fp32 arithmetic. Tensors are device
// matrices (rank >= 1, read as rows x last dim) stored as f32, f16 or bf16; norm parameters and
// biases are f32. Outputs are written in place into the given device tensors. Work is enqueued
// on `stream`; nothing here waits for it.
//
// Private to the library (src/, not installed): the building blocks of the device models in
// src/models/*_cuda.cpp and of the kernel tests, which pair each one with its CPU twin. Hosts use
// the models (ecr/models/*_cuda.hpp), ecr/nn/linear_cuda.hpp and ecr/nn/rank_cuda.hpp.
#pragma once

#ifndef ECR_WITH_CUDA
#error "nn/ops_cuda.hpp needs a build of ecr with ECR_WITH_CUDA=ON"
#endif

#include <cstdint>
#include <span>

#include "ecr/core/tensor.hpp"
#include "ecr/device/cuda.hpp"
#include "ecr/nn/ops.hpp"

namespace ecr::cuda {

// A LayerNorm's parameters in device memory (f32).
struct LayerNorm {
  Tensor weight;
  Tensor bias;
  float eps = 1e-5f;
  static LayerNorm upload(const nn::LayerNorm& norm, Stream& stream);
};

// y = layer_norm(x); y may be x.
void layer_norm(Stream& stream, const Tensor& x, const LayerNorm& norm, Tensor y);
// x += delta + delta_bias (delta_bias f32 (cols) or undefined), then y = layer_norm(x).
void residual_layer_norm(Stream& stream, Tensor x, const Tensor& delta, const Tensor& delta_bias,
                         const LayerNorm& norm, Tensor y);

// y = act(y + bias), bias f32 (cols) or undefined.
void bias_activation(Stream& stream, Tensor y, const Tensor& bias, nn::Activation activation);

// Row i becomes softmax(scale * x[i, :valid[i]]) and zeros after; `valid` is a device i32
// tensor (rows) or undefined (every entry).
void softmax_rows(Stream& stream, Tensor x, float scale = 1.0f, const Tensor& valid = {});

// out[i] = table[ids[i]]; InputError naming `what` when an id is outside the table.
void gather_rows(Stream& stream, const Tensor& table, std::span<const std::int32_t> ids, Tensor out,
                 const char* what);

// GPT-2's input: out[i] = wte[ids[i]] + wpe[first_position + i]. InputError for an id or a
// position outside its table.
void embed(Stream& stream, const Tensor& wte, const Tensor& wpe, std::span<const std::int32_t> ids,
           std::int64_t first_position, Tensor out);

}  // namespace ecr::cuda
