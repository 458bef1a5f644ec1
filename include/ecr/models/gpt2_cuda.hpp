// GPT-2 on a CUDA device (CPU twin: ecr::Gpt2Model, same HuggingFace semantics and the same
// loaders, so the same bundle gives the same weights; docs/math.md section 3).
//
//   Gpt2Device   the LM's weights in device memory, loaded once and immutable: sessions on any
//                number of threads may share it.
//   Gpt2Session  one sequence's decoding: its own stream (and cuBLAS handle), KV cache, buffers
//                and decode state, all on the device. One thread at a time.
//
// Batches: Gpt2Device::generate_batch decodes several sequences at once, each with its own cache.
//
// A forward pass is embed -> per layer (LayerNorm, QKV GEMM + bias, KV append, attention, proj
// GEMM, residual + LayerNorm, MLP GEMM + bias + GELU, proj GEMM, residual + LayerNorm) -> LM head.
// Kernels read the token count, cached keys and position from device memory, so generate()
// captures one decode step (forward, logits processors, token choice, state update) in a CUDA
// graph and replays it for every further token: one launch per token.
//
// Storage f32 (default) matches the CPU engine to fp32 rounding; f16 / bf16 store weights,
// activations and the KV cache in half precision and accumulate in fp32 (LayerNorm parameters
// and biases stay f32). The classifier head (gpt2_classifier's `score`) is not run here.
//
// Needs a build with ECR_WITH_CUDA=ON (the classes exist only there).
#pragma once

#ifndef ECR_WITH_CUDA
#error "ecr/models/gpt2_cuda.hpp needs a build of ecr with ECR_WITH_CUDA=ON"
#endif

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ecr/core/tensor.hpp"
#include "ecr/device/cuda.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/lm/generate.hpp"
#include "ecr/models/gpt2.hpp"
#include "ecr/nn/linear_cuda.hpp"

namespace ecr::cuda {

struct Gpt2DeviceOptions {
  DType storage = DType::f32;       // f32, f16 or bf16
  GemmMath math = GemmMath::exact;  // tensor_cores: TF32 for f32, tensor-core f16 / bf16 GEMMs
};

class Gpt2Session;

class Gpt2Device {
 public:
  // Component `name` (type gpt2 or gpt2_classifier) of `bundle`, read and checked exactly as
  // Gpt2Model::load reads it (ConfigError / ShapeError naming the field or tensor), then copied
  // to the current device.
  static Gpt2Device load(const Component& component, Gpt2DeviceOptions options = {});
  static Gpt2Device load(const Bundle& bundle, std::string_view name, Gpt2DeviceOptions options = {});

  const Gpt2Config& config() const;
  const std::string& name() const;
  DType storage() const;

  // A session whose KV cache holds `capacity` rows: the prefix rows plus every token it will be
  // fed. prefix: (S, prefix_width()) read as (S, layer, key|value, head, head_dim), as
  // Gpt2Model::start takes it: a CPU f32 tensor, or a device tensor (f32, f16 or bf16, e.g.
  // PromptDevice's) whose writer has synchronized its stream; undefined for none.
  Gpt2Session start(std::int64_t capacity, const Tensor& prefix = {}) const;

  // Decodes several sequences together (lm::generate_batch's requests; prefixes as start()
  // takes them). Each step runs the running sequences' new tokens through every GEMM and the LM
  // head as one batch; each sequence attends over its own KV cache and stops on its own (the
  // shared stop rule, accept_token), and leaves the batch when it does. Request i's tokens and
  // stop reason are those of start(prefix rows + prompt + max_new_tokens, prefix_i)
  // .generate(prompt_i, options_i), for greedy and for seeded sampling alike (the same draws:
  // the request's seed, its step, row 0), up to GEMM rounding where two candidates tie. No CUDA
  // graph; its own stream, so threads may call it at once.
  std::vector<lm::Generation> generate_batch(std::span<const lm::GenerateRequest> requests) const;

  struct Weights;  // the device tensors (defined in gpt2_cuda.cpp)

 private:
  std::shared_ptr<const Weights> weights_;
};

struct Gpt2DeviceOutput {
  // Views of the session's device buffers, valid until its next forward() or generate().
  Tensor hidden;  // (n, n_embd), storage dtype: final hidden states (after ln_f) of the tokens fed
  Tensor logits;  // f32: (1, vocab) for Logits::last, (n, vocab) for Logits::all; undefined for none
};

class Gpt2Session {
 public:
  Gpt2Session(Gpt2Session&&) noexcept;
  Gpt2Session& operator=(Gpt2Session&&) noexcept;
  ~Gpt2Session();

  std::int64_t capacity() const;
  std::int64_t prefix_length() const;
  // Tokens fed so far: the position of the next one.
  std::int64_t tokens() const;
  Stream& stream();

  // Feeds `tokens` after what the session holds (Gpt2Model::forward on a state). InputError for
  // an id outside the vocabulary, a position past n_positions or a cache past its capacity.
  Gpt2DeviceOutput forward(std::span<const std::int32_t> tokens, Logits logits = Logits::last);

  // Continues after what the session holds with `prompt` (non-empty), choosing tokens on the
  // device with the options' processors (lm::generate's semantics; see generate_cuda.hpp for
  // how device sampling relates to the CPU's). A fresh session with a prefix equals
  // lm::generate(model, prompt, options, prefix): greedy tokens are the same. The prompt keeps
  // its newest tokens that leave room for max_new_tokens in n_positions after the tokens the
  // session holds (lm::fit_prompt).
  lm::Generation generate(std::span<const std::int32_t> prompt, const lm::GenerateOptions& options);

 private:
  friend class Gpt2Device;
  struct Impl;
  explicit Gpt2Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ecr::cuda
