// LoRA adapters for Llama models, in llama.cpp's GGUF form (docs/llama.md, "LoRA adapters"):
// general.type = "adapter", adapter.type = "lora", adapter.lora.alpha (f32; absent or 0: no
// alpha), and for each adapted matrix W (ggml dims [in, out]) a pair of tensors named after it,
// `<W's name>.lora_a` (ggml dims [in, r]) and `<W's name>.lora_b` ([r, out]), f32, f16, bf16 or
// a block type. Applied with a user scale s, the matrix computes
//
//   y = W x + s * alpha / r * B (A x)        (s itself when alpha is 0, as llama.cpp does)
//
// A PEFT adapter directory becomes such a file through tools/convert_peft_lora.py.
//
// LoraAdapter reads and checks one file on its own (what it is, its pairs' shapes agreeing with
// each other); LlamaModel::load checks each pair against the matrix it adapts and keeps A and
// B, widened to f32 with the whole factor folded into B, beside the untouched base weights.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "ecr/core/tensor.hpp"
#include "ecr/io/gguf.hpp"

namespace ecr {

// One adapter to apply and its scale: `FILE[:SCALE]` on command lines (scale 1 when absent).
struct LoraSpec {
  std::filesystem::path path;
  float scale = 1.0f;
  // "adapter.gguf", "adapter.gguf:0.5"; InputError for a scale that is not a finite number.
  static LoraSpec parse(std::string_view arg);
};

class LoraAdapter {
 public:
  // The pair of one adapted matrix, as stored (the file's map keeps them alive).
  struct Pair {
    std::string base;  // the adapted tensor's name, "blk.0.attn_q.weight"
    Tensor a;          // (r, in): ggml dims [in, r]
    Tensor b;          // (out, r): ggml dims [r, out]
    std::int64_t rank() const { return a.dim(0); }
  };

  // Reads `path`; FormatError naming the file for one that is not a LoRA adapter (general.type,
  // adapter.type), a tensor that is neither .lora_a nor .lora_b (norm vectors excepted: llama.cpp
  // skips them too, and so does ecr), a pair missing one half; ShapeError naming the tensor for
  // a non-matrix or an A whose rank differs from its B's; ConfigError for a tensor type ecr has
  // no kernel for, or an aLoRA (invocation tokens), which ecr does not run.
  static LoraAdapter open(const std::filesystem::path& path);
  static LoraAdapter from_gguf(const gguf::File& file);

  const std::string& label() const { return label_; }
  const std::string& architecture() const { return architecture_; }
  float alpha() const { return alpha_; }
  const std::vector<Pair>& pairs() const { return pairs_; }
  // The factor B (A x) is multiplied by under the user's `scale`: scale * alpha / r, or scale
  // when alpha is 0 (llama.cpp's llama_adapter_lora_weight::get_scale).
  float factor(const Pair& pair, float scale) const;

 private:
  std::string label_, architecture_;
  float alpha_ = 0;
  std::vector<Pair> pairs_;
};

}  // namespace ecr
