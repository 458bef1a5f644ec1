// Inputs and outputs of the model subcommands (forward, generate): token id lists and .npy
// files, the form numpy exchanges tensors in (prefix prompts in, hidden states and logits out).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "ecr/core/tensor.hpp"

namespace ecr::cli {

// "1,2,3" -> {1, 2, 3}; InputError naming `option` on anything else.
std::vector<std::int32_t> parse_ids(std::string_view text, std::string_view option);

// .npy: little-endian f32, C order, format versions 1 to 3.

// Throws IoError when the file cannot be read, FormatError naming it when it is not a C-order
// little-endian f32 array.
Tensor read_npy_f32(const std::filesystem::path& path);
// Writes a f32 tensor as a version 1.0 .npy; IoError on failure.
void write_npy_f32(const std::filesystem::path& path, const Tensor& tensor);

}  // namespace ecr::cli
