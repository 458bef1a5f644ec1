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

const PreTokenizer& pre_tokenizer(std::string_view name) {
  // The pre-tokenizers are stateless: one of each serves every tokenizer.
  static const Gpt2PreTokenizer gpt2;
  static const std::array<const PreTokenizer*, 1> known = {&gpt2};
  for (const PreTokenizer* p : known)
    if (p->name() == name) return *p;
  std::string names;
  for (const PreTokenizer* p : known) names += fmt::format("{}\"{}\"", names.empty() ? "" : ", ", p->name());
  fail<ConfigError>("pre-tokenizer '{}' is not supported (expected one of {})", printable(name), names);
}

}  // namespace ecr::text
