// EntityLinker: finds the knowledge graph's entities in raw user text.
//
// Three ways in: ReDial `@<movieId>` mentions resolved through the dialog's movieMentions
// (title -> KG movie, with or without the year); names written in the text (movies, people,
// genres; case, punctuation, accents and plural tolerant, whole words only, the longest match
// wins); and ids a host already has. Built once from the KG; const and safe to share between
// threads.
//
// When a written name counts (the rules keep common words from turning into entities):
// - genres always, in any case, and a few of their adjective forms ("romantic", "animated");
// - a movie title followed by its year ("the shining 1980", "The Shining (1980)") always;
// - names of fewer than 3 letters, and one-word names that are common English words
//   ("Up", "Her", "Split", "Frozen"), never without the year;
// - other one-word names ("Inception", "Eminem") only capitalised and not at the start of a
//   sentence (ReDial users start sentences with a capital);
// - movie titles, and names made only of common words ("The Others", "Get Out"), only when
//   their capitalised words are capitalised in the text ("the Hunger Games", not "the others");
// - other names of several words (people) in any case ("reese witherspoon").
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ecr/kg/knowledge_graph.hpp"

namespace ecr {

// ReDial's movieMentions: movie id (the digits after '@') -> title, "The Shining  (1980)".
using MovieMentions = std::map<std::string, std::string, std::less<>>;

struct LinkedEntity {
  enum class Source : std::uint8_t { mention, text, host };
  std::int64_t id = 0;
  std::string name;  // the KG display name
  // Byte offsets [begin, end) into the UTF-8 text: the `@123` of a mention; for a written name
  // its first to its last word ("tom   hanks", "The Shining (1980)" with the year's closing
  // parenthesis). Both 0 for ids a host passed in.
  std::size_t begin = 0;
  std::size_t end = 0;
  Source source = Source::text;
};
std::string_view link_source_name(LinkedEntity::Source source);

struct LinkerOptions {
  // Link movie titles written out in the text; off leaves movies to @mentions and host ids.
  bool movies_in_text = true;
  // Apply the common-word and capitalisation rules above; off links every name of 3 letters
  // or more in any case (for measuring what the rules buy).
  bool ambiguity_rules = true;

  bool operator==(const LinkerOptions&) const = default;
};

class EntityLinker {
 public:
  explicit EntityLinker(KnowledgeGraph kg, LinkerOptions options = {});

  // The entities of `text` in order of appearance (a name is reported each time it appears).
  // `@<digits>` resolves through `mentions` when given; unresolved mentions are skipped.
  // Throws InputError on invalid UTF-8.
  std::vector<LinkedEntity> link(std::string_view text, const MovieMentions* mentions = nullptr) const;
  // A ReDial title -> KG movie: exact name, else the same words (case and punctuation aside,
  // %XX decoded), else the title without its year when the KG's name has no year either.
  std::optional<std::int64_t> resolve_title(std::string_view title) const;
  // Ids a host already has, checked (InputError naming the id unless it is a real entity).
  std::vector<LinkedEntity> from_ids(std::span<const std::int64_t> ids) const;

  const KnowledgeGraph& graph() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ecr
