// The feedback rule of ecr/feedback.hpp: cue phrases over a turn's lowercased words, clause by
// clause.
#include "ecr/feedback.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>

namespace ecr {

namespace {

struct Cue {
  std::vector<std::string_view> words;
  Polarity polarity;
};

// Longer phrases first where one starts another ("not a fan" before any single word).
const std::vector<Cue>& cues() {
  static const std::vector<Cue> table = [] {
    std::vector<Cue> t;
    auto add = [&](Polarity p, std::initializer_list<std::string_view> phrases) {
      for (std::string_view phrase : phrases) {
        Cue cue{{}, p};
        for (std::size_t at = 0; at < phrase.size();) {
          const std::size_t end = std::min(phrase.find(' ', at), phrase.size());
          cue.words.push_back(phrase.substr(at, end - at));
          at = end + 1;
        }
        t.push_back(std::move(cue));
      }
    };
    add(Polarity::disliked,
        {"not a fan", "not a big fan", "not my thing", "not my type", "not for me", "not into", "not good",
         "not great", "not that good", "not very good", "can not stand", "could not stand", "too scary",
         "too violent", "too long", "too slow", "too sad", "too dark", "too gory", "too much", "hated", "hate",
         "hates", "disliked", "dislike", "boring", "bored", "awful", "terrible", "horrible", "worst", "bad",
         "overrated", "disappointing", "disappointed", "stupid", "lame", "meh"});
    add(Polarity::liked,
        {"a big fan", "big fan", "fan of", "loved", "love", "loves", "liked", "likes", "like", "enjoyed", "enjoy",
         "enjoys", "favorite", "favourite", "great", "awesome", "amazing", "fantastic", "excellent", "brilliant",
         "adore", "adored", "good"});
    add(Polarity::seen, {"seen", "saw", "watched", "already"});
    std::stable_sort(t.begin(), t.end(), [](const Cue& a, const Cue& b) { return a.words.size() > b.words.size(); });
    return t;
  }();
  return table;
}

constexpr std::array<std::string_view, 6> kNegations = {"not", "never", "no", "didnt", "dont", "wasnt"};
// "like" is a verb of liking only after these ("I like", "really like", "did not like").
constexpr std::array<std::string_view, 17> kBeforeLike = {
    "i", "we", "you", "they", "really", "also", "just", "totally", "definitely", "do", "did", "not", "both",
    "all", "still", "actually", "never"};
constexpr std::array<std::string_view, 9> kReferBack = {"it", "that", "this", "them", "those", "both",
                                                        "these", "one", "either"};

template <std::size_t N>
bool one_of(std::string_view word, const std::array<std::string_view, N>& set) {
  return std::find(set.begin(), set.end(), word) != set.end();
}

struct Word {
  std::string text;
  std::size_t clause = 0;
};

// Lowercased ASCII words with the clause each belongs to; "n't" reads "not" ("can't" and
// "won't" as "can not", "will not"), a typographic apostrophe as '.
std::vector<Word> words_of(std::string_view text) {
  std::vector<Word> out;
  std::size_t clause = 0;
  std::string word;
  auto flush = [&] {
    if (word.empty()) return;
    if (word == "but") {
      ++clause;
    } else if (word.size() > 3 && word.ends_with("n't")) {
      std::string stem = word.substr(0, word.size() - 3);
      if (stem == "ca") stem = "can";
      if (stem == "wo") stem = "will";
      out.push_back({stem, clause});
      out.push_back({"not", clause});
    } else {
      out.push_back({word, clause});
    }
    word.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (std::isalnum(c)) {
      word += static_cast<char>(std::tolower(c));
    } else if (c == '\'' && !word.empty()) {
      word += '\'';
    } else if (text.substr(i, 3) == "\xE2\x80\x99" && !word.empty()) {  // U+2019
      word += '\'';
      i += 2;
    } else {
      flush();
      if (c == '.' || c == '!' || c == '?' || c == ';') ++clause;
    }
  }
  flush();
  return out;
}

struct Reading {
  std::optional<Polarity> polarity;
  std::string cue;
};

// Whether `cue` fits at `at` (with the rules for "like" and negations) and what it says.
std::optional<Reading> match(const std::vector<Word>& words, std::size_t at, const Cue& cue) {
  if (at + cue.words.size() > words.size()) return std::nullopt;
  for (std::size_t k = 0; k < cue.words.size(); ++k)
    if (words[at + k].text != cue.words[k] || words[at + k].clause != words[at].clause) return std::nullopt;
  if (cue.words.size() == 1 && cue.words[0] == "like" && (at == 0 || !one_of(words[at - 1].text, kBeforeLike)))
    return std::nullopt;
  // A negation among the three words before, in the same clause ("did not really enjoy").
  std::size_t first = at;
  if (cue.words[0] != "not")
    for (std::size_t back = 1; back <= 3 && back <= at; ++back) {
      const Word& w = words[at - back];
      if (w.clause != words[at].clause) break;
      if (one_of(w.text, kNegations)) first = at - back;
    }
  std::string text;
  for (std::size_t k = first; k < at + cue.words.size(); ++k) text += (text.empty() ? "" : " ") + words[k].text;
  if (first == at) return Reading{cue.polarity, std::move(text)};
  // A negated like is a dislike; a negated dislike or "seen" says nothing.
  if (cue.polarity == Polarity::liked) return Reading{Polarity::disliked, std::move(text)};
  return Reading{std::nullopt, std::move(text)};
}

// Disliked over liked over seen; the first cue of the winning polarity names it.
int strength(const Reading& r) {
  if (!r.polarity) return 0;
  return *r.polarity == Polarity::disliked ? 3 : *r.polarity == Polarity::liked ? 2 : 1;
}
void combine(Reading& into, const Reading& r) {
  if (strength(r) > strength(into)) into = r;
}

// The position of `name`'s words among `words`, ignoring a trailing "(year)".
std::optional<std::size_t> find_name(const std::vector<Word>& words, std::string_view name) {
  std::vector<Word> target = words_of(name);
  if (target.size() > 1 && target.back().text.size() == 4 &&
      std::all_of(target.back().text.begin(), target.back().text.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
    target.pop_back();
  if (target.empty()) return std::nullopt;
  for (std::size_t at = 0; at + target.size() <= words.size(); ++at) {
    std::size_t k = 0;
    while (k < target.size() && words[at + k].text == target[k].text) ++k;
    if (k == target.size()) return at;
  }
  return std::nullopt;
}

}  // namespace

std::string_view polarity_name(Polarity polarity) {
  switch (polarity) {
    case Polarity::disliked: return "disliked";
    case Polarity::liked: return "liked";
    case Polarity::seen: break;
  }
  return "seen";
}

std::vector<Feedback> read_feedback(const Dialog& dialog, const KnowledgeGraph& kg) {
  std::vector<Feedback> out;
  for (std::size_t t = 0; t < dialog.turns.size(); ++t) {
    const Turn& turn = dialog.turns[t];
    if (turn.role != Role::user || turn.text.empty()) continue;
    const std::vector<Word> words = words_of(turn.text);
    const std::size_t clauses = words.empty() ? 0 : words.back().clause + 1;
    std::vector<Reading> by_clause(clauses);
    Reading whole;
    for (std::size_t at = 0; at < words.size();) {
      std::size_t step = 1;
      for (const Cue& cue : cues())
        if (const auto r = match(words, at, cue)) {
          combine(by_clause[words[at].clause], *r);
          combine(whole, *r);
          step = cue.words.size();
          break;
        }
      at += step;
    }
    if (!whole.polarity) continue;

    std::vector<std::int64_t> about;
    bool referred_back = false;
    for (std::int64_t id : turn.entities)
      if (kg.contains(id) && id != kg.pad_entity() && std::find(about.begin(), about.end(), id) == about.end())
        about.push_back(id);
    const bool refers_back =
        std::any_of(words.begin(), words.end(), [](const Word& w) { return one_of(w.text, kReferBack); });
    if (about.empty() && refers_back && t > 0 && dialog.turns[t - 1].role == Role::system) {
      for (std::int64_t id : dialog.turns[t - 1].entities)
        if (kg.contains(id) && kg.entity_type(id) == EntityType::movie &&
            std::find(about.begin(), about.end(), id) == about.end())
          about.push_back(id);
      referred_back = true;
    }
    for (std::int64_t id : about) {
      const std::string name(kg.entity_name(id));
      const std::optional<std::size_t> at = referred_back ? std::nullopt : find_name(words, name);
      const Reading& r = at && by_clause[words[*at].clause].polarity ? by_clause[words[*at].clause] : whole;
      out.push_back({id, name, *r.polarity, r.cue, t, referred_back});
    }
  }
  return out;
}

}  // namespace ecr
