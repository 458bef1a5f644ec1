// UTF-8 decoding and the Unicode character classes the GPT-2 pre-split pattern uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ecr::text {

// One step of UTF-8 decoding at a byte offset. Valid sequences follow Unicode's table of
// well-formed bytes (no overlongs, no surrogates, nothing above U+10FFFF). For an invalid one,
// `size` is the maximal subpart that could have started a valid sequence (at least 1), which is
// what one U+FFFD replaces in Python's and the WHATWG decoders.
struct Utf8Step {
  char32_t code_point;
  std::uint8_t size;
  bool valid;
};
Utf8Step decode_utf8(std::string_view s, std::size_t offset);

// Byte offset of the first invalid sequence, or npos when `s` is valid UTF-8.
std::size_t find_invalid_utf8(std::string_view s);
// `s` with every invalid sequence replaced by U+FFFD.
std::string replace_invalid_utf8(std::string_view s);
void append_utf8(std::string& out, char32_t code_point);

// \p{L}, \p{N} (generated tables, unicode_tables.cpp) and \s (the White_Space property, as
// Python's `regex` and HuggingFace's tokenizers read \s).
bool is_letter(char32_t cp);
bool is_number(char32_t cp);
bool is_whitespace(char32_t cp);

}  // namespace ecr::text
