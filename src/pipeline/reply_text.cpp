#include "reply_text.hpp"

#include <array>

#include "ecr/core/utf8.hpp"

namespace ecr::responder {

namespace {

constexpr std::array<std::string_view, 2> kMarkers = {"<pad>", kEndOfText};
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Python's str.isspace(): Unicode White_Space plus the separators \x1c..\x1f.
bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

std::string join(std::span<const std::string> parts, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out += separator;
    out += parts[i];
  }
  return out;
}

// Where the text starts and ends without its leading and trailing whitespace (begin == size
// and end == 0 when it is all whitespace).
struct Bounds {
  std::size_t begin, end;
};
Bounds space_bounds(std::string_view text) {
  Bounds b{text.size(), 0};
  for (std::size_t at = 0; at < text.size();) {
    const Utf8Step step = decode_utf8(text, at);
    if (!step.valid || !is_python_space(step.code_point)) {
      b.begin = std::min(b.begin, at);
      b.end = at + step.size;
    }
    at += step.size;
  }
  return b;
}

// Length of the longest end of `text` that is a proper beginning of a marker.
std::size_t partial_marker(std::string_view text) {
  std::size_t longest = 0;
  for (const std::string_view marker : kMarkers)
    for (std::size_t n = std::min(text.size(), marker.size() - 1); n > longest; --n)
      if (text.ends_with(marker.substr(0, n))) {
        longest = n;
        break;
      }
  return longest;
}

// The end of `text` minus what a later token may still change (see ReplyTextStream).
std::size_t settled_end(std::string_view text) {
  for (;;) {
    const std::size_t before = text.size();
    while (text.ends_with(kReplacement)) text.remove_suffix(kReplacement.size());
    text = text.substr(0, space_bounds(text).end);
    text.remove_suffix(partial_marker(text));
    if (text.size() == before) return text.size();
  }
}

}  // namespace

std::string_view strip(std::string_view text) {
  const Bounds b = space_bounds(text);
  return b.begin < b.end ? text.substr(b.begin, b.end - b.begin) : std::string_view();
}

std::string clean_decoded(std::string_view decoded) {
  std::string text(decoded);
  for (const std::string_view marker : kMarkers) text = replace_all(std::move(text), marker, "");
  return std::string(strip(text));
}

std::string template_from_decoded(std::string_view decoded) {
  const std::string text = clean_decoded(decoded);
  constexpr std::string_view kSystem = "System: ";
  const std::size_t at = text.rfind(kSystem);
  return at == std::string::npos ? text : text.substr(at + kSystem.size());
}

std::string fill_template(std::string_view template_text, std::span<const std::string> names) {
  return replace_all(std::string(template_text), "<movie>", join(names, ", "));
}

std::string without_parenthetical(std::string_view name) {
  const std::string_view whole = strip(name);
  const std::string_view head = strip(whole.substr(0, whole.find('(')));
  return std::string(head.empty() ? whole : head);
}

std::string generator_prompt_text(std::span<const std::string> movies, std::span<const std::string> review_entities,
                                  std::span<const KnowledgeTriple> knowledge, std::string_view first_sentence) {
  const auto list = [](std::span<const std::string> parts) {
    return parts.empty() ? std::string(kNone) : join(parts, ", ");
  };
  std::vector<std::string> triples;
  for (const KnowledgeTriple& t : knowledge) triples.push_back(t.text());
  std::string text = "Movie Name: " + join(movies, ", ");
  text += kEndOfText;
  text += "Related Entities: " + list(review_entities);
  text += kEndOfText;
  text += "Related Knowledge from KG: " + list(triples);
  text += kEndOfText;
  text += "First Sentence: ";
  text += first_sentence;
  text += kEndOfText;
  return text;
}

std::vector<std::int32_t> generator_prompt_ids(const Tokenizer& tokenizer, std::string_view prompt_text,
                                               std::size_t max_tokens, std::int32_t eos) {
  std::string_view body = prompt_text;
  if (body.ends_with(kEndOfText)) body.remove_suffix(kEndOfText.size());
  std::vector<std::int32_t> ids = tokenizer.encode(body);
  if (ids.size() > max_tokens) ids.resize(max_tokens);
  ids.push_back(eos);
  return ids;
}

bool ReplyTextStream::push(std::int32_t token) {
  tokens_.push_back(token);
  if (!sink_ || diverged_ || stopped_) return !stopped_;
  std::string text(tokenizer_.decode(tokens_));
  for (const std::string_view marker : kMarkers) text = replace_all(std::move(text), marker, "");
  // Leading whitespace goes, as the final strip drops it.
  const std::string_view body = std::string_view(text).substr(space_bounds(text).begin);
  return emit(body.substr(0, settled_end(body)));
}

bool ends_sentence(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '"' || text.back() == '\'' || text.back() == ')'))
    text.remove_suffix(1);
  if (text.empty()) return false;
  const char last = text.back();
  if (last == '!' || last == '?') return true;
  if (last != '.') return false;
  const std::size_t n = text.size();
  const bool initial = n >= 2 && text[n - 2] >= 'A' && text[n - 2] <= 'Z' && (n == 2 || text[n - 3] == ' ');
  return !initial;
}

void ReplyTextStream::finish(std::string_view reply) {
  if (sink_ && !diverged_ && !stopped_) emit(reply);
}

bool ReplyTextStream::emit(std::string_view text) {
  if (!text.starts_with(sent_)) {
    diverged_ = true;
    return true;
  }
  if (text.size() == sent_.size()) return true;
  const std::string_view piece = text.substr(sent_.size());
  sent_.append(piece);
  stopped_ = !sink_(piece);
  return !stopped_;
}

}  // namespace ecr::responder
