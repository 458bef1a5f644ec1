#include "ecr/models/lora.hpp"

#include <charconv>
#include <cmath>
#include <map>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ecr/core/dtype.hpp"

namespace ecr {

LoraSpec LoraSpec::parse(std::string_view arg) {
  // The scale follows the last ':' when what follows parses whole as a number; a path may
  // itself hold a ':'.
  const auto colon = arg.rfind(':');
  if (colon != std::string_view::npos) {
    const std::string_view tail = arg.substr(colon + 1);
    float scale = 0;
    const auto [end, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), scale);
    if (ec == std::errc() && end == tail.data() + tail.size() && !tail.empty()) {
      if (!std::isfinite(scale)) fail<InputError>("lora '{}': the scale {} is not a finite number", arg, tail);
      if (colon == 0) fail<InputError>("lora '{}': no file before the scale (FILE[:SCALE])", arg);
      return {std::filesystem::path(std::string(arg.substr(0, colon))), scale};
    }
  }
  if (arg.empty()) fail<InputError>("lora: an empty argument (FILE[:SCALE])");
  return {std::filesystem::path(std::string(arg)), 1.0f};
}

LoraAdapter LoraAdapter::open(const std::filesystem::path& path) { return from_gguf(gguf::File::open(path)); }

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string string_key(const gguf::File& file, std::string_view key) {
  if (!file.contains(key))
    fail<FormatError>("gguf '{}': no key '{}': not a LoRA adapter (llama.cpp's GGUF LoRA files have general.type "
                      "'adapter', adapter.type 'lora')", file.label(), key);
  return file.get<std::string>(key);
}

}  // namespace

LoraAdapter LoraAdapter::from_gguf(const gguf::File& file) {
  LoraAdapter adapter;
  adapter.label_ = file.label();
  if (const auto type = string_key(file, "general.type"); type != "adapter")
    fail<FormatError>("gguf '{}': general.type is '{}', expected 'adapter' (a LoRA adapter file, not a model)",
                      file.label(), type);
  if (const auto type = string_key(file, "adapter.type"); type != "lora")
    fail<FormatError>("gguf '{}': adapter.type is '{}', expected 'lora'", file.label(), type);
  adapter.architecture_ = string_key(file, "general.architecture");
  if (file.contains("adapter.alora.invocation_tokens"))
    fail<ConfigError>("gguf '{}': an aLoRA adapter (adapter.alora.invocation_tokens), which ecr does not run",
                      file.label());
  if (file.contains("adapter.lora.alpha")) {
    adapter.alpha_ = file.get<float>("adapter.lora.alpha");
    if (!std::isfinite(adapter.alpha_) || adapter.alpha_ < 0)
      fail<ConfigError>("gguf '{}': adapter.lora.alpha is {}, expected a finite number >= 0", file.label(),
                        adapter.alpha_);
  }

  // A and B of each adapted tensor, by its name; sorted, so pairs() has one order for one file.
  std::map<std::string, std::pair<const gguf::TensorInfo*, const gguf::TensorInfo*>> halves;
  for (const gguf::TensorInfo& t : file.tensors()) {
    const std::string_view name = t.name;
    if (ends_with(name, ".lora_a"))
      halves[std::string(name.substr(0, name.size() - 7))].first = &t;
    else if (ends_with(name, ".lora_b"))
      halves[std::string(name.substr(0, name.size() - 7))].second = &t;
    else if (!ends_with(name, "_norm.weight"))  // llama.cpp ignores norm vectors in adapters
      fail<FormatError>("gguf '{}': tensor '{}' is neither '<base tensor>.lora_a' nor '.lora_b'", file.label(), name);
  }
  for (const auto& [base, ab] : halves) {
    const auto [a, b] = ab;
    if (!a || !b)
      fail<FormatError>("gguf '{}': tensor '{}.{}' has no '{}.{}' beside it", file.label(), base,
                        a ? "lora_a" : "lora_b", base, a ? "lora_b" : "lora_a");
    for (const gguf::TensorInfo* t : {a, b}) {
      if (t->dims.size() != 2)
        fail<ShapeError>("gguf '{}': tensor '{}' has dims [{}], expected a matrix", file.label(), t->name,
                         fmt::join(t->dims, ", "));
      if (!dtype_from_gguf(t->type))
        fail<ConfigError>("gguf '{}': tensor '{}' has type {}, which ecr has no kernel for", file.label(), t->name,
                          t->traits().name);
    }
    // A: [in, r], B: [r, out] (llama.cpp's check; an A not transposed is the old finetune format).
    if (a->dims[1] != b->dims[0] || a->dims[1] < 1)
      fail<ShapeError>("gguf '{}': tensor '{}' has dims [{}] and '{}' [{}]: the rank (A's ne1, B's ne0) differs "
                       "(expected A [in, r], B [r, out])", file.label(), a->name, fmt::join(a->dims, ", "), b->name,
                       fmt::join(b->dims, ", "));
    adapter.pairs_.push_back({base, file.view(a->name), file.view(b->name)});
  }
  return adapter;
}

float LoraAdapter::factor(const Pair& pair, float scale) const {
  return alpha_ != 0 ? scale * alpha_ / static_cast<float>(pair.rank()) : scale;
}

}  // namespace ecr
