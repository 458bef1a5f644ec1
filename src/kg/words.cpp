// The words of the entity linker: splitting, folding, plurals and the common-word lexicon.
#include "words.hpp"

#include <array>
#include <cstdint>
#include <unordered_set>

#include "ecr/core/utf8.hpp"

namespace ecr::kg_words {

namespace {

struct Folded {
  const char* ascii;  // "" for a symbol (x, division sign): it separates words
  bool upper;
};

// U+00C0..U+017F (Latin-1 letters and Latin Extended-A) -> lower-case ASCII, so that
// "Beyoncé" and "Beyonce" are one word.
constexpr std::array<Folded, 0x180 - 0xC0> kLatinFold = {{
    {"a", true}, {"a", true}, {"a", true}, {"a", true}, {"a", true}, {"a", true}, {"ae", true}, {"c", true},
    {"e", true}, {"e", true}, {"e", true}, {"e", true}, {"i", true}, {"i", true}, {"i", true}, {"i", true},
    {"d", true}, {"n", true}, {"o", true}, {"o", true}, {"o", true}, {"o", true}, {"o", true}, {"", false},
    {"o", true}, {"u", true}, {"u", true}, {"u", true}, {"u", true}, {"y", true}, {"th", true}, {"ss", false},
    {"a", false}, {"a", false}, {"a", false}, {"a", false}, {"a", false}, {"a", false}, {"ae", false},
    {"c", false}, {"e", false}, {"e", false}, {"e", false}, {"e", false}, {"i", false}, {"i", false},
    {"i", false}, {"i", false}, {"d", false}, {"n", false}, {"o", false}, {"o", false}, {"o", false},
    {"o", false}, {"o", false}, {"", false}, {"o", false}, {"u", false}, {"u", false}, {"u", false},
    {"u", false}, {"y", false}, {"th", false}, {"y", false}, {"a", true}, {"a", false}, {"a", true},
    {"a", false}, {"a", true}, {"a", false}, {"c", true}, {"c", false}, {"c", true}, {"c", false}, {"c", true},
    {"c", false}, {"c", true}, {"c", false}, {"d", true}, {"d", false}, {"d", true}, {"d", false}, {"e", true},
    {"e", false}, {"e", true}, {"e", false}, {"e", true}, {"e", false}, {"e", true}, {"e", false}, {"e", true},
    {"e", false}, {"g", true}, {"g", false}, {"g", true}, {"g", false}, {"g", true}, {"g", false}, {"g", true},
    {"g", false}, {"h", true}, {"h", false}, {"h", true}, {"h", false}, {"i", true}, {"i", false}, {"i", true},
    {"i", false}, {"i", true}, {"i", false}, {"i", true}, {"i", false}, {"i", true}, {"i", false}, {"ij", true},
    {"ij", false}, {"j", true}, {"j", false}, {"k", true}, {"k", false}, {"k", false}, {"l", true}, {"l", false},
    {"l", true}, {"l", false}, {"l", true}, {"l", false}, {"l", true}, {"l", false}, {"l", true}, {"l", false},
    {"n", true}, {"n", false}, {"n", true}, {"n", false}, {"n", true}, {"n", false}, {"n", false}, {"n", true},
    {"n", false}, {"o", true}, {"o", false}, {"o", true}, {"o", false}, {"o", true}, {"o", false}, {"oe", true},
    {"oe", false}, {"r", true}, {"r", false}, {"r", true}, {"r", false}, {"r", true}, {"r", false}, {"s", true},
    {"s", false}, {"s", true}, {"s", false}, {"s", true}, {"s", false}, {"s", true}, {"s", false}, {"t", true},
    {"t", false}, {"t", true}, {"t", false}, {"t", true}, {"t", false}, {"u", true}, {"u", false}, {"u", true},
    {"u", false}, {"u", true}, {"u", false}, {"u", true}, {"u", false}, {"u", true}, {"u", false}, {"u", true},
    {"u", false}, {"w", true}, {"w", false}, {"y", true}, {"y", false}, {"y", true}, {"z", true}, {"z", false},
    {"z", true}, {"z", false}, {"z", true}, {"z", false}, {"s", false},
}};

// Frequent English words (function words, everyday nouns, verbs and adjectives). A one-word
// name that is one of these is too ambiguous to link ("Up", "Split", "Frozen"); a name made only
// of them needs capitals ("The Others"). Generic English, not tuned to any data set.
constexpr std::string_view kCommonWords =
    "a about above across act action add after again against age ago agree ah air all almost alone "
    "along already also although always am among an and anger angry animal another answer any anyone "
    "anything anyway apart are area arm around art as ask at away awesome awful baby back bad bag "
    "ball bank bar base be beach bear beat beautiful because become bed been before began begin "
    "behind being believe below best better between beyond big bill bird bit black blood blue board "
    "boat body book born boss both bottom box boy brain break bright bring broken brother brown "
    "build burn business busy but buy by call came can car care carry case cat catch cause center "
    "certain chance change character charge check chief child children choice choose city class "
    "clean clear climb close cold color come common cook cool copy corner cost could count country "
    "couple course cover crazy cross cry cut dad dance dark date daughter day dead deal dear death "
    "decide deep did die different dinner do doctor does dog done door double down draw dream dress "
    "drink drive drop dry during each ear early earth easy eat edge effect eight either else end "
    "enemy enjoy enough even evening event ever every everyone everything evil exactly example eye "
    "face fact fair fall family famous far fast father fear feel feet fell felt few field fight "
    "figure fill final find fine fire first fish five fly follow food foot for force forever forget "
    "form four free friend friends from front full fun funny game gave get gift girl give glad go "
    "god going gold gone good got great green ground group grow guess guy had hair half hand happen "
    "happy hard has hate have he head hear heart heat heaven hell hello help her here hero hey hi "
    "high him his history hit hold hole holiday home honey hope horse hot hour house how however "
    "huge human hundred hunt hurt husband i ice idea if ill in inside instead into is it its jack "
    "job join joy judge jump just keep kept key kid kids kill kind king kiss knew know lady land "
    "large last late later laugh law lay lead learn least leave left less let lie life light like "
    "line list listen little live long look lord lose lost lot loud love loved low luck lucky mad "
    "made magic main make man many mark market mars matter may maybe me mean meet men middle might "
    "mind mine minute miss mom money month moon more morning most mother move movie movies much "
    "music must my name near need never new news next nice night nine no none nor normal north not "
    "note nothing now number of off office oh ok okay old on once one only open or order other "
    "others our out outside over own page pain paper parent part party pass past pay peace people "
    "perfect perhaps person pick picture piece place plan play please point police poor power pretty "
    "problem pull push put queen question quick quiet quite race rain raise ran rather reach read "
    "ready real really reason red remember rest rich ride right ring rise river road robot rock room "
    "round rule run rush sad safe said same santa save saw say school sea second secret see seem "
    "seen sell send sense serious set seven several shall she ship shoot short should show side sign "
    "silence simple since sing single sister sit six size sky sleep slow small smile so soft some "
    "someone something sometimes son song soon sorry sort sound south space speak special spirit "
    "split spring spy stand star start state stay step still stop story strange street strong "
    "student such summer sun sunday super sure surprise sweet table take taken talk tall teacher "
    "team tell ten than thank thanks that the their them then there these they thing things think "
    "third this those though thought three through time to today together told too took top touch "
    "toward town trade train tree trip trouble true truth try turn twelve twenty twisted two under "
    "until up upon us use very voice wait waiting walk wall want wanted war warm was watch water way "
    "we wear weather week well went were what when where which while white who whole why wife wild "
    "will win wind window winter wish with without woman women wonder word words work world worry "
    "would wow write wrong yeah year years yellow yes yet you young your yours ";

std::uint32_t decode(std::string_view s, std::size_t i, std::size_t& length) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return length = 1, b;
  const int n = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
  std::uint32_t cp = b & (0x3F >> (n - 1));
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  length = static_cast<std::size_t>(n);
  return cp;
}

bool is_apostrophe(std::uint32_t cp) { return cp == '\'' || cp == 0x2019 || cp == 0x2018; }

// Letters and digits: ASCII alphanumerics and every code point above U+007F that is not
// punctuation, a symbol or a space in the blocks users type them from.
bool is_word_char(std::uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  if (cp <= 0xBF || cp == 0xD7 || cp == 0xF7) return false;
  if (cp >= 0x2000 && cp <= 0x2BFF) return false;   // punctuation, symbols, arrows, dingbats
  if (cp >= 0x3000 && cp <= 0x303F) return false;   // CJK punctuation
  if (cp >= 0xFE30 && cp <= 0xFE4F) return false;
  if (cp >= 0xFF00 && cp <= 0xFF0F) return false;
  if (cp >= 0x1F000 && cp <= 0x1FAFF) return false; // emoji
  return true;
}

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

// A '.' after these does not end a sentence.
bool is_abbreviation(std::string_view lower) {
  return lower.size() == 1 || lower == "mr" || lower == "mrs" || lower == "ms" || lower == "dr" || lower == "st" ||
         lower == "jr" || lower == "sr" || lower == "vs";
}

const std::unordered_set<std::string_view>& common_words() {
  static const std::unordered_set<std::string_view> words = [] {
    std::unordered_set<std::string_view> set;
    std::string_view all = kCommonWords;
    while (!all.empty()) {
      const auto space = all.find(' ');
      if (space != 0) set.insert(all.substr(0, space));
      if (space == std::string_view::npos) break;
      all.remove_prefix(space + 1);
    }
    return set;
  }();
  return words;
}

}  // namespace

std::vector<Word> split(std::string_view text, std::vector<Mention>* mentions) {
  std::vector<Word> words;
  bool boundary = true;
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (mentions && c == '@' && i + 1 < text.size() && text[i + 1] >= '0' && text[i + 1] <= '9') {
      std::size_t j = i + 1;
      while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
      mentions->push_back({text.substr(i + 1, j - i - 1), i, j});
      boundary = true;
      i = j;
      continue;
    }
    if (c == '&') {
      words.push_back({"and", i, i + 1, false, false, boundary});
      boundary = false;
      ++i;
      continue;
    }
    std::size_t length = 0;
    const std::uint32_t cp = decode(text, i, length);
    if (!is_word_char(cp)) {
      if (c == '.') boundary = words.empty() || words.back().end != i || !is_abbreviation(words.back().lower);
      if (c == '!' || c == '?' || c == '\n') boundary = true;
      i += length;
      continue;
    }
    Word w;
    w.begin = i;
    w.sentence_start = boundary;
    int upper = 0, lower = 0;
    bool first = true;
    while (i < text.size()) {
      const std::uint32_t ch = decode(text, i, length);
      if (is_apostrophe(ch)) {
        std::size_t next_length = 0;
        if (i + length < text.size() && is_word_char(decode(text, i + length, next_length))) {
          i += length;
          continue;
        }
        break;
      }
      if (!is_word_char(ch)) break;
      bool is_upper = false, is_lower = false;
      if (ch < 0x80) {
        const char a = static_cast<char>(ch);
        is_upper = a >= 'A' && a <= 'Z';
        is_lower = a >= 'a' && a <= 'z';
        w.lower.push_back(is_upper ? static_cast<char>(a - 'A' + 'a') : a);
      } else if (ch >= 0xC0 && ch < 0x180 && kLatinFold[ch - 0xC0].ascii[0] != '\0') {
        is_upper = kLatinFold[ch - 0xC0].upper;
        is_lower = !is_upper;
        w.lower += kLatinFold[ch - 0xC0].ascii;
      } else {
        w.lower.append(text.substr(i, length));
      }
      if (first) w.capitalised = is_upper;
      first = false;
      upper += is_upper;
      lower += is_lower;
      i += length;
    }
    w.end = i;
    w.all_caps = upper >= 2 && lower == 0;
    boundary = false;
    words.push_back(std::move(w));
  }
  return words;
}

std::string singular(std::string_view w) {
  if (w.size() <= 3) return std::string(w);
  if (ends_with(w, "ies")) return std::string(w.substr(0, w.size() - 3)) + "y";
  if (ends_with(w, "sses") || ends_with(w, "xes") || ends_with(w, "ches") || ends_with(w, "shes"))
    return std::string(w.substr(0, w.size() - 2));
  if (ends_with(w, "s") && !ends_with(w, "ss") && !ends_with(w, "us") && !ends_with(w, "is"))
    return std::string(w.substr(0, w.size() - 1));
  return std::string(w);
}

bool is_common(std::string_view w) {
  if (w.empty()) return true;
  if (w.find_first_not_of("0123456789") == std::string_view::npos) return true;
  const auto& words = common_words();
  auto known = [&](std::string_view x) { return !x.empty() && words.count(x) != 0; };
  if (known(w) || known(singular(w))) return true;
  // Regular inflections: loved -> love, played -> play, watching -> watch, writing -> write.
  for (std::string_view suffix : {"ed", "ing", "er", "est", "ly"}) {
    if (!ends_with(w, suffix) || w.size() < suffix.size() + 3) continue;
    const std::string_view stem = w.substr(0, w.size() - suffix.size());
    if (known(stem) || known(std::string(stem) + "e")) return true;
  }
  return false;
}

std::string percent_decode(std::string_view s) {
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
  };
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return is_valid_utf8(out) ? out : std::string(s);
}

std::string collapse_spaces(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    while (i < s.size() && space(s[i])) ++i;
    std::size_t j = i;
    while (j < s.size() && !space(s[j])) ++j;
    if (j > i) {
      if (!out.empty()) out.push_back(' ');
      out.append(s.substr(i, j - i));
    }
    i = j;
  }
  return out;
}

}  // namespace ecr::kg_words
