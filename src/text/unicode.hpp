// The Unicode character classes the GPT-2 pre-split pattern uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ecr/core/utf8.hpp"

namespace ecr::text {

// \p{L}, \p{N} (generated tables, unicode_tables.cpp) and \s (the White_Space property, as
// Python's `regex` and HuggingFace's tokenizers read \s).
bool is_letter(char32_t cp);
bool is_number(char32_t cp);
bool is_whitespace(char32_t cp);

}  // namespace ecr::text
