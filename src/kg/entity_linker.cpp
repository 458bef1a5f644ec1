// The entity linker: an index from word sequences ("the shining 1980") to entities, built once,
// and a left-to-right longest match over the words of a text.
#include "ecr/kg/entity_linker.hpp"

#include <algorithm>
#include <unordered_map>

#include "ecr/core/error.hpp"
#include "ecr/core/utf8.hpp"
#include "words.hpp"

namespace ecr {

namespace {

using kg_words::Word;

// When a written name may link (entity_linker.hpp explains the rules).
enum class Rule : std::uint8_t {
  always,         // genres, titles with their year
  never,          // too short, or one common word
  capitalised,    // the name's capitalised words capitalised in the text
  proper_noun,    // one word: capitalised, and not the first of a sentence
  any_case,       // names of several words that are not all common
};

// Adjective and other written forms of genres, linked to the genre of that name when the KG has
// one. Plurals need no entry ("comedies"), nor hyphen-less spellings ("scifi").
constexpr std::pair<std::string_view, std::string_view> kGenreForms[] = {
    {"romantic", "romance"}, {"science fiction", "sci-fi"}, {"animated", "animation"},
    {"biopic", "biography"}, {"scarier", "scary"},          {"scariest", "scary"},
    {"documentaries", "documentary"}, {"musicals", "musical"}, {"comedic", "comedy"},
};

// Leading words a title may write in lower case ("the Hunger Games").
bool is_article(std::string_view w) { return w == "the" || w == "a" || w == "an"; }

struct Entry {
  std::int64_t id = -1;
  Rule rule = Rule::never;
  // Per word: 0 any case, 1 capitalised, 2 all capitals ("DMX").
  std::vector<std::uint8_t> caps;
  // Ranking among entities with the same words: the name itself beats an alias (a title
  // without its year), then items, then better connected entities, then the lower id.
  bool exact = false;
  bool item = false;
  std::int64_t degree = 0;

  bool beats(const Entry& o) const {
    if (exact != o.exact) return exact;
    if (item != o.item) return item;
    if (degree != o.degree) return degree > o.degree;
    return id < o.id;
  }
};

std::string join(const std::vector<Word>& words) {
  std::string key;
  for (const auto& w : words) {
    if (!key.empty()) key.push_back(' ');
    key += w.lower;
  }
  return key;
}

bool is_year(std::string_view w) {
  return w.size() == 4 && w.find_first_not_of("0123456789") == std::string_view::npos &&
         (w[0] == '1' || w[0] == '2');
}

// A trailing "(...)" of a name: "The Shining (1980)" -> ("The Shining", "1980").
std::pair<std::string_view, std::string_view> split_parenthetical(std::string_view name) {
  if (name.empty() || name.back() != ')') return {name, {}};
  const auto open = name.rfind('(');
  if (open == std::string_view::npos || open == 0) return {name, {}};
  std::string_view base = name.substr(0, open);
  while (!base.empty() && base.back() == ' ') base.remove_suffix(1);
  return {base, name.substr(open + 1, name.size() - open - 2)};
}

}  // namespace

std::string_view link_source_name(LinkedEntity::Source source) {
  switch (source) {
    case LinkedEntity::Source::mention: return "mention";
    case LinkedEntity::Source::text: return "text";
    case LinkedEntity::Source::host: return "host";
  }
  return "text";
}

struct EntityLinker::Impl {
  KnowledgeGraph kg;
  LinkerOptions options;
  // Word sequence -> the entity it links to. Every proper prefix of a key is also present with
  // entry -1, so that matching can stop as soon as the words read so far lead nowhere.
  std::unordered_map<std::string, std::int32_t> names;
  std::vector<Entry> entries;
  // Movies only, for resolve_title: the full name's words and the words without "(...)".
  std::unordered_map<std::string, Entry> titles;
  std::vector<std::int64_t> degree;

  Impl(KnowledgeGraph graph, LinkerOptions opts) : kg(std::move(graph)), options(opts) {}

  bool is_movie(std::int64_t id) const { return kg.entity_type(id) == EntityType::movie || kg.is_item(id); }

  Entry make_entry(std::int64_t id, const std::vector<Word>& words, Rule rule, bool exact) const {
    Entry e;
    e.id = id;
    e.rule = rule;
    e.exact = exact;
    e.item = kg.is_item(id);
    e.degree = degree[static_cast<std::size_t>(id)];
    for (std::size_t k = 0; k < words.size(); ++k) {
      const auto& w = words[k];
      e.caps.push_back(k == 0 && is_article(w.lower) ? 0 : w.all_caps ? 2 : w.capitalised ? 1 : 0);
    }
    return e;
  }

  Rule rule_for(std::int64_t id, const std::vector<Word>& words) const {
    std::size_t letters = 0;
    bool all_common = true;
    for (const auto& w : words) {
      letters += w.lower.size();
      all_common = all_common && kg_words::is_common(w.lower);
    }
    if (letters < 3) return Rule::never;
    if (kg.entity_type(id) == EntityType::genre || !options.ambiguity_rules) return Rule::any_case;
    if (words.size() == 1) return all_common ? Rule::never : Rule::proper_noun;
    if (all_common || is_movie(id)) return Rule::capitalised;
    return Rule::any_case;
  }

  void add_name(std::string key, Entry entry) {
    if (key.empty() || entry.rule == Rule::never) return;
    auto [it, fresh] = names.try_emplace(key, -1);
    if (it->second >= 0) {
      if (entry.beats(entries[static_cast<std::size_t>(it->second)])) entries[static_cast<std::size_t>(it->second)] = std::move(entry);
    } else {
      it->second = static_cast<std::int32_t>(entries.size());
      entries.push_back(std::move(entry));
    }
    for (auto space = key.rfind(' '); space != std::string::npos; space = key.rfind(' ', space - 1)) {
      names.try_emplace(key.substr(0, space), -1);
      if (space == 0) break;
    }
  }

  void add_title(const std::string& key, Entry entry) {
    auto [it, fresh] = titles.try_emplace(key, entry);
    if (!fresh && entry.beats(it->second)) it->second = std::move(entry);
  }

  void build() {
    const std::int64_t n = kg.num_entities();
    degree.assign(static_cast<std::size_t>(n), 0);
    const auto indptr = kg.edge_indptr();
    for (std::int64_t s = 0; s + 1 < static_cast<std::int64_t>(indptr.size()); ++s)
      degree[static_cast<std::size_t>(s % n)] += indptr[s + 1] - indptr[s];

    for (std::int64_t id = 0; id < kg.pad_entity(); ++id) {
      const std::string_view name = kg.entity_name(id);
      if (name.empty()) continue;
      const bool movie = is_movie(id);
      const auto words = kg_words::split(name);
      if (words.empty()) continue;
      const auto [base, paren] = split_parenthetical(name);
      if (movie && !paren.empty()) {
        // "The Shining (1980)": the name with its year always links; without, by the rules.
        const auto base_words = kg_words::split(base);
        add_title(join(words), make_entry(id, words, Rule::always, true));
        add_title(join(base_words), make_entry(id, base_words, Rule::always, false));
        if (!options.movies_in_text) continue;
        std::vector<Word> with_year = base_words;
        for (const auto& w : kg_words::split(paren))
          if (is_year(w.lower)) with_year.push_back(w);
        if (with_year.size() > base_words.size()) add_name(join(with_year), make_entry(id, with_year, Rule::always, true));
        add_name(join(words), make_entry(id, words, Rule::always, true));
        add_name(join(base_words), make_entry(id, base_words, rule_for(id, base_words), false));
      } else {
        if (movie) add_title(join(words), make_entry(id, words, Rule::always, true));
        if (movie && !options.movies_in_text) continue;
        add_name(join(words), make_entry(id, words, rule_for(id, words), true));
      }
      // "Spider-Man" also as "spiderman", "sci-fi" as "scifi".
      if (name.find('-') != std::string_view::npos) {
        std::string joined(movie ? base : name);
        joined.erase(std::remove(joined.begin(), joined.end(), '-'), joined.end());
        const auto joined_words = kg_words::split(joined);
        add_name(join(joined_words), make_entry(id, joined_words, rule_for(id, joined_words), false));
      }
    }
    for (const auto& [form, genre] : kGenreForms) {
      const auto id = kg.entity_id(genre);
      if (!id || kg.entity_type(*id) != EntityType::genre) continue;
      const auto words = kg_words::split(form);
      add_name(join(words), make_entry(*id, words, Rule::any_case, false));
    }
  }

  bool allowed(const Entry& e, const std::vector<Word>& text, std::size_t first) const {
    switch (e.rule) {
      case Rule::always:
      case Rule::any_case: return true;
      case Rule::never: return false;
      case Rule::proper_noun:
        if (text[first].sentence_start) return false;
        [[fallthrough]];
      case Rule::capitalised:
        for (std::size_t k = 0; k < e.caps.size(); ++k) {
          const Word& w = text[first + k];
          if (e.caps[k] == 0) continue;
          if (!w.capitalised || (w.all_caps && e.caps[k] != 2)) return false;
        }
        return true;
    }
    return false;
  }

  // The longest allowed name starting at words[first]: (entry, words used), or (-1, 0). Each
  // word may match as written or as the singular of a plural ("comedies").
  std::pair<std::int32_t, std::size_t> longest(const std::vector<Word>& words, std::size_t first) const {
    std::pair<std::int32_t, std::size_t> best{-1, 0};
    struct State {
      std::size_t next;
      std::string key;
    };
    std::vector<State> stack{{first, {}}};
    while (!stack.empty()) {
      State s = std::move(stack.back());
      stack.pop_back();
      if (s.next >= words.size()) continue;
      const std::string& written = words[s.next].lower;
      const std::string single = kg_words::singular(written);
      for (const std::string* form : {&written, &single}) {
        if (form == &single && single == written) continue;
        std::string key = s.key.empty() ? *form : s.key + ' ' + *form;
        auto it = names.find(key);
        if (it == names.end()) continue;
        const std::size_t used = s.next - first + 1;
        if (it->second >= 0 && used > best.second && allowed(entries[static_cast<std::size_t>(it->second)], words, first))
          best = {it->second, used};
        stack.push_back({s.next + 1, std::move(key)});
      }
    }
    return best;
  }

  std::optional<std::int64_t> resolve(std::string_view title) const {
    const std::string clean = kg_words::collapse_spaces(kg_words::percent_decode(title));
    if (auto id = kg.entity_id(clean); id && is_movie(*id)) return id;
    if (auto it = titles.find(join(kg_words::split(clean))); it != titles.end()) return it->second.id;
    // Without the year only when the KG's name has none either: "The Ring (2017)" is not the
    // KG's "The Ring (2002)".
    const auto [base, paren] = split_parenthetical(clean);
    if (paren.empty()) return std::nullopt;
    if (auto it = titles.find(join(kg_words::split(base))); it != titles.end() && it->second.exact) return it->second.id;
    return std::nullopt;
  }
};

EntityLinker::EntityLinker(KnowledgeGraph kg, LinkerOptions options) {
  auto impl = std::make_shared<Impl>(std::move(kg), options);
  impl->build();
  impl_ = std::move(impl);
}

const KnowledgeGraph& EntityLinker::graph() const { return impl_->kg; }

std::optional<std::int64_t> EntityLinker::resolve_title(std::string_view title) const { return impl_->resolve(title); }

std::vector<LinkedEntity> EntityLinker::link(std::string_view text, const MovieMentions* mentions) const {
  if (auto bad = utf8_error_offset(text)) fail<InputError>("entity linker: text is not valid UTF-8 at byte {}", *bad);
  const Impl& g = *impl_;
  std::vector<kg_words::Mention> found;
  const auto words = kg_words::split(text, &found);
  std::vector<LinkedEntity> out;
  if (mentions) {
    for (const auto& m : found) {
      auto it = mentions->find(m.digits);
      if (it == mentions->end()) continue;
      if (auto id = g.resolve(it->second))
        out.push_back({*id, std::string(g.kg.entity_name(*id)), m.begin, m.end, LinkedEntity::Source::mention});
    }
  }
  for (std::size_t i = 0; i < words.size();) {
    const auto [entry, used] = g.longest(words, i);
    if (entry < 0) {
      ++i;
      continue;
    }
    const std::int64_t id = g.entries[static_cast<std::size_t>(entry)].id;
    const Word& last = words[i + used - 1];
    // "The Shining (1980)": the span takes the year's closing parenthesis too.
    const std::size_t end = is_year(last.lower) && last.end < text.size() && text[last.end] == ')' ? last.end + 1 : last.end;
    out.push_back({id, std::string(g.kg.entity_name(id)), words[i].begin, end, LinkedEntity::Source::text});
    i += used;
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.begin < b.begin; });
  return out;
}

std::vector<LinkedEntity> EntityLinker::from_ids(std::span<const std::int64_t> ids) const {
  const KnowledgeGraph& kg = impl_->kg;
  std::vector<LinkedEntity> out;
  for (std::size_t k = 0; k < ids.size(); ++k) {
    const std::int64_t id = ids[k];
    if (id < 0 || id >= kg.pad_entity())
      fail<InputError>("entity {}: id {} is not an entity of the knowledge graph (0..{})", k, id, kg.pad_entity() - 1);
    out.push_back({id, std::string(kg.entity_name(id)), 0, 0, LinkedEntity::Source::host});
  }
  return out;
}

}  // namespace ecr
