// Word-level text handling for the entity linker (and the KG's display names): splitting UTF-8
// text into comparable words with their byte spans, and the small English lexicon the linker's
// ambiguity rules need. Internal to src/kg.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ecr::kg_words {

struct Word {
  std::string lower;          // lower case, accents folded ("Beyoncé" -> "beyonce"), apostrophes dropped
  std::size_t begin = 0;      // byte span in the text
  std::size_t end = 0;
  bool capitalised = false;   // first letter upper case
  bool all_caps = false;      // two letters or more, none lower case
  bool sentence_start = false;
};

// A ReDial `@<digits>` movie mention.
struct Mention {
  std::string_view digits;
  std::size_t begin = 0;
  std::size_t end = 0;
};

// Words are runs of letters and digits (any non-ASCII letter counts); an apostrophe inside a
// word is dropped ("Ferrell's" -> "ferrells"), '&' is the word "and", everything else
// separates. A word starts a sentence when it is the first, or follows '.', '!', '?', a line
// break or a mention. With `mentions`, `@<digits>` are collected there instead of being words.
// `text` must be valid UTF-8.
std::vector<Word> split(std::string_view text, std::vector<Mention>* mentions = nullptr);

// The singular a plural may come from: "comedies" -> "comedy", "thrillers" -> "thriller".
// Returns the word itself when it does not look plural.
std::string singular(std::string_view lower);

// A common English word (or an inflection of one: "loved", "holidays"), or a number.
bool is_common(std::string_view lower);

// %XX escapes decoded, when the result is valid UTF-8; otherwise `s` unchanged.
std::string percent_decode(std::string_view s);

// Runs of ASCII whitespace as one space, none at the ends.
std::string collapse_spaces(std::string_view s);

}  // namespace ecr::kg_words
