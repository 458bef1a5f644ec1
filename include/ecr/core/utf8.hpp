// UTF-8 validation shared by everything that takes text from outside (bundle names, dialogs,
// tokenizer input): one definition of "valid", so a string accepted in one place is accepted in all.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace ecr {

// Offset of the first byte that is not part of a well-formed UTF-8 sequence (overlong forms,
// surrogates and code points above U+10FFFF are rejected), or nullopt when `text` is valid.
std::optional<std::size_t> utf8_error_offset(std::string_view text) noexcept;
inline bool is_valid_utf8(std::string_view text) noexcept { return !utf8_error_offset(text); }

}  // namespace ecr
