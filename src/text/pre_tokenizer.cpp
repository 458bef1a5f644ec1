#include "ecr/text/pre_tokenizer.hpp"

#include <array>

#include <fmt/format.h>

#include "ecr/core/error.hpp"
#include "unicode.hpp"

namespace ecr::text {

namespace {

enum class CharClass : std::uint8_t { space, letter, number, other };

CharClass classify(char32_t cp) {
  if (is_whitespace(cp)) return CharClass::space;
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CharClass::letter;
    return cp >= '0' && cp <= '9' ? CharClass::number : CharClass::other;
  }
  if (is_letter(cp)) return CharClass::letter;
  return is_number(cp) ? CharClass::number : CharClass::other;
}

struct ClassAt {
  CharClass cls;
  std::size_t size;
};

ClassAt class_at(std::string_view s, std::size_t i) {
  const Utf8Step step = decode_utf8(s, i);  // `s` is valid UTF-8 (piece_end's contract)
  return {classify(step.code_point), step.size};
}

}  // namespace

// The alternatives of GPT-2's pattern, tried in order, with the backtracking they need written out.
std::size_t Gpt2PreTokenizer::piece_end(std::string_view s, std::size_t pos) const {
  const std::size_t n = s.size();
  // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, ASCII apostrophe only)
  if (s[pos] == '\'' && pos + 1 < n) {
    const char c = s[pos + 1];
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return pos + 2;
    if (pos + 2 < n) {
      const std::string_view two = s.substr(pos + 1, 2);
      if (two == "re" || two == "ve" || two == "ll") return pos + 3;
    }
  }
  // ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`: the optional space, then a run of one class.
  std::size_t start = pos;
  if (s[pos] == ' ' && pos + 1 < n && class_at(s, pos + 1).cls != CharClass::space) start = pos + 1;
  const ClassAt first = class_at(s, start);
  if (first.cls != CharClass::space) {
    std::size_t i = start + first.size;
    while (i < n) {
      const ClassAt c = class_at(s, i);
      if (c.cls != first.cls) break;
      i += c.size;
    }
    return i;
  }
  // `\s+(?!\S)|\s+`: a whitespace run, less its last character when something other than
  // whitespace follows (that character then joins the next piece as its optional space); a
  // single whitespace character stands alone.
  std::size_t i = pos, last = pos, count = 0;
  while (i < n) {
    const ClassAt c = class_at(s, i);
    if (c.cls != CharClass::space) break;
    last = i;
    i += c.size;
    ++count;
  }
  return i == n || count == 1 ? i : last;
}

// GPT-2's pattern on the text up to the next \p{N} character. The pattern looks at most past its
// piece's end through a whitespace run and one character more, so only a digit that starts
// within that reach can change where the piece ends: the scan stops there, which keeps a long
// text without digits linear.
std::size_t SmollmPreTokenizer::piece_end(std::string_view s, std::size_t pos) const {
  const ClassAt first = class_at(s, pos);
  if (first.cls == CharClass::number) return pos + first.size;
  static const Gpt2PreTokenizer gpt2;
  const std::size_t end = gpt2.piece_end(s, pos);
  for (std::size_t i = pos; i < s.size();) {
    const ClassAt c = class_at(s, i);
    if (c.cls == CharClass::number) return gpt2.piece_end(s.substr(0, i), pos);
    if (i >= end && c.cls != CharClass::space) break;
    i += c.size;
  }
  return end;
}

// llama.cpp's reading of the pattern, alternative by alternative.
std::size_t Llama3PreTokenizer::piece_end(std::string_view s, std::size_t pos) const {
  const std::size_t n = s.size();
  const auto lower = [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); };
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (s[pos] == '\'' && pos + 1 < n) {
    const char c = lower(s[pos + 1]);
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return pos + 2;
    if (pos + 2 < n) {
      const char d = lower(s[pos + 2]);
      if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return pos + 3;
    }
  }
  const ClassAt first = class_at(s, pos);
  const auto class_after = [&](std::size_t i) { return i < n ? class_at(s, i).cls : CharClass::space; };
  const auto run = [&](std::size_t i, CharClass cls) {
    while (i < n) {
      const ClassAt c = class_at(s, i);
      if (c.cls != cls) break;
      i += c.size;
    }
    return i;
  };
  // [^\r\n\p{L}\p{N}]?\p{L}+
  const bool newline = s[pos] == '\r' || s[pos] == '\n';
  if (!newline && first.cls != CharClass::number &&
      (first.cls == CharClass::letter || (pos + first.size < n && class_after(pos + first.size) == CharClass::letter)))
    return run(pos + first.size, CharClass::letter);
  // \p{N}{1,3}
  if (first.cls == CharClass::number) {
    std::size_t i = pos;
    for (int k = 0; k < 3 && i < n && class_at(s, i).cls == CharClass::number; ++k) i += class_at(s, i).size;
    return i;
  }
  // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
  const std::size_t start = s[pos] == ' ' ? pos + 1 : pos;
  if (start < n && class_at(s, start).cls == CharClass::other) {
    std::size_t i = run(start, CharClass::other);
    while (i < n && (s[i] == '\r' || s[i] == '\n')) ++i;
    return i;
  }
  // \s*[\r\n]+ (through the run's last newline), \s+(?!\S), \s+
  std::size_t i = pos, last = pos, after_newline = 0, count = 0;
  while (i < n) {
    const ClassAt c = class_at(s, i);
    if (c.cls != CharClass::space) break;
    if (s[i] == '\r' || s[i] == '\n') after_newline = i + 1;
    last = i;
    i += c.size;
    ++count;
  }
  if (after_newline > 0) return after_newline;
  if (count > 1 && i < n) return last;
  return count > 0 ? i : pos + first.size;
}

const PreTokenizer& pre_tokenizer(std::string_view name) {
  // The pre-tokenizers are stateless: one of each serves every tokenizer.
  static const Gpt2PreTokenizer gpt2;
  static const SmollmPreTokenizer smollm;
  static const Llama3PreTokenizer llama3;
  static const std::array<const PreTokenizer*, 3> known = {&gpt2, &smollm, &llama3};
  for (const PreTokenizer* p : known)
    if (p->name() == name) return *p;
  std::string names;
  for (const PreTokenizer* p : known) names += fmt::format("{}\"{}\"", names.empty() ? "" : ", ", p->name());
  fail<ConfigError>("pre-tokenizer '{}' is not supported (expected one of {})", printable(name), names);
}

}  // namespace ecr::text
