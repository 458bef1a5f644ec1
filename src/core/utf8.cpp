#include "ecr/core/utf8.hpp"

#include <fmt/format.h>

namespace ecr {

Utf8Step decode_utf8(std::string_view s, std::size_t offset) noexcept {
  const auto lead = static_cast<unsigned char>(s[offset]);
  if (lead < 0x80) return {lead, 1, true};
  std::size_t trail = 0;
  char32_t cp = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the next byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    trail = 1, cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    trail = 2, cp = lead & 0x0F;
    if (lead == 0xE0) lo = 0xA0;  // overlong
    if (lead == 0xED) hi = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    trail = 3, cp = lead & 0x07;
    if (lead == 0xF0) lo = 0x90;  // overlong
    if (lead == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return {0xFFFD, 1, false};
  }
  for (std::size_t k = 1; k <= trail; ++k) {
    if (offset + k >= s.size()) return {0xFFFD, static_cast<std::uint8_t>(k), false};
    const auto b = static_cast<unsigned char>(s[offset + k]);
    if (b < lo || b > hi) return {0xFFFD, static_cast<std::uint8_t>(k), false};
    cp = (cp << 6) | (b & 0x3F);
    lo = 0x80, hi = 0xBF;
  }
  return {cp, static_cast<std::uint8_t>(trail + 1), true};
}

std::optional<std::size_t> utf8_error_offset(std::string_view text) noexcept {
  for (std::size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const Utf8Step step = decode_utf8(text, i);
    if (!step.valid) return i;
    i += step.size;
  }
  return std::nullopt;
}

std::string replace_invalid_utf8(std::string_view s) {
  const auto bad = utf8_error_offset(s);
  if (!bad) return std::string(s);
  const std::size_t first = *bad;
  std::string out(s.substr(0, first));
  for (std::size_t i = first; i < s.size();) {
    const Utf8Step step = decode_utf8(s, i);
    if (step.valid) out.append(s.substr(i, step.size));
    else append_utf8(out, 0xFFFD);
    i += step.size;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string printable(std::string_view s, bool keep_layout) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const Utf8Step step = decode_utf8(s, i);
    const char32_t cp = step.code_point;
    if (!step.valid) {
      for (std::size_t k = 0; k < step.size; ++k)
        out += fmt::format("\\x{:02x}", static_cast<unsigned char>(s[i + k]));
    } else if (keep_layout && (cp == '\n' || cp == '\t')) {
      out += static_cast<char>(cp);
    } else if (cp < 0x20 || cp == 0x7F) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(cp));
    } else if (cp >= 0x80 && cp < 0xA0) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(cp));
    } else {
      out.append(s.substr(i, step.size));
    }
    i += step.size;
  }
  return out;
}

}  // namespace ecr
