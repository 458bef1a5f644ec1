// UTF-8 validation shared by everything that takes text from outside (bundle names, dialogs,
// tokenizer input): one definition of "valid", so a string accepted in one place is accepted in all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ecr {

// One step of UTF-8 decoding at a byte offset. Valid sequences follow Unicode's table of
// well-formed bytes (no overlongs, no surrogates, nothing above U+10FFFF). For an invalid one,
// `size` is the maximal subpart that could have started a valid sequence (at least 1), which is
// what one U+FFFD replaces in Python's and the WHATWG decoders.
struct Utf8Step {
  char32_t code_point;
  std::uint8_t size;
  bool valid;
};
Utf8Step decode_utf8(std::string_view s, std::size_t offset) noexcept;
void append_utf8(std::string& out, char32_t code_point);
// `s` with every invalid sequence replaced by U+FFFD.
std::string replace_invalid_utf8(std::string_view s);

// Offset of the first byte that is not part of a well-formed UTF-8 sequence (overlong forms,
// surrogates and code points above U+10FFFF are rejected), or nullopt when `text` is valid.
std::optional<std::size_t> utf8_error_offset(std::string_view text) noexcept;
inline bool is_valid_utf8(std::string_view text) noexcept { return !utf8_error_offset(text); }

// `text` made safe to show on a terminal: control characters (C0, DEL; ESC starts terminal
// commands, CR and backspace rewrite what is shown) and bytes that are not UTF-8 become \xNN,
// C1 controls \u00NN; everything else is kept. `keep_layout` keeps newlines and tabs.
std::string printable(std::string_view text, bool keep_layout = false);

}  // namespace ecr
