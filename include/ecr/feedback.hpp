// Feedback: what a user turn says about the movies (and other entities) it talks about, read
// with a small, documented rule rather than a model, so that a host can see why a ranking moved.
//
// Which entities a user turn talks about: the entities it names; when it names none but refers
// back ("it", "that one", "this movie", "them", "both"), the entities of the system turn before
// it. What it says about them, from cue phrases, case aside, whole words only:
// - disliked: "did not like", "not a fan", "hated", "boring", "too scary", "not for me", ...;
//   a liked cue with a negation in the three words before it ("did not really enjoy") too;
// - liked: "loved", "liked", "enjoyed", "favorite", "great", "a big fan", ...; the verb "like"
//   only after a subject or an adverb ("I like", "really like"), not in "would like" or "movies
//   like";
// - seen: "seen", "saw", "watched", "already".
// Polarity wins over seen, and disliked over liked when one clause has both. A turn is split into
// clauses at . ! ? ; and "but"; an entity whose name appears in a clause with cues takes that
// clause's cues, any other the whole turn's. "I feel sad today" names no entity and refers back
// to none: it is no feedback (its emotions are the classifier's business).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ecr/dialog.hpp"
#include "ecr/kg/knowledge_graph.hpp"

namespace ecr {

enum class Polarity : std::int8_t { disliked = -1, seen = 0, liked = 1 };
std::string_view polarity_name(Polarity polarity);

struct Feedback {
  std::int64_t id = 0;       // KG entity
  std::string name;          // its display name
  Polarity polarity = Polarity::seen;
  std::string cue;           // the words that decided it, as written ("did not like")
  std::size_t turn = 0;      // index of the user turn in the dialog (after merging)
  bool referred_back = false;  // the turn named no entity: these are the previous system turn's
};

// The feedback of every user turn of `dialog`, whose turns carry their entity ids (the
// Recommender passes the turns as the models see them). In turn order; an entity appears once
// per turn. Entities that are not in `kg` are skipped.
std::vector<Feedback> read_feedback(const Dialog& dialog, const KnowledgeGraph& kg);

}  // namespace ecr
