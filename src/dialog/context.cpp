// docs/math.md section 2 without a model: the alternating turns, the context strings, the turn
// emotions and the entity list with the emotions each entity carries.
#include <algorithm>
#include <functional>
#include <numeric>

#include "ecr/dialog.hpp"
#include "ecr/text/tokenizer.hpp"

namespace ecr {

std::vector<Turn> context_turns(const Dialog& dialog) {
  std::vector<Turn> turns;
  if (!dialog.turns.empty() && dialog.turns.front().role == Role::system) turns.push_back(Turn{Role::user, {}, {}, {}});
  turns.insert(turns.end(), dialog.turns.begin(), dialog.turns.end());
  return turns;
}

namespace {

// A turn's context string without its eos: "User: " or "System: " and the text.
std::string speaker_text(const Turn& turn) {
  return (turn.role == Role::user ? "User: " : "System: ") + turn.text;
}

// One turn's ids: its text as plain text, then the eos control token(s).
void append_turn(const Tokenizer& tokenizer, const Turn& turn, const std::vector<std::int32_t>& eos_ids,
                 std::vector<std::int32_t>& out) {
  const std::vector<std::int32_t> ids = tokenizer.encode(speaker_text(turn), ControlText::as_text);
  out.insert(out.end(), ids.begin(), ids.end());
  out.insert(out.end(), eos_ids.begin(), eos_ids.end());
}

}  // namespace

std::vector<std::string> context_strings(const Dialog& dialog, std::string_view eos) {
  std::vector<std::string> out;
  for (const auto& turn : dialog.turns) {
    if (turn.text.empty()) continue;
    out.push_back(speaker_text(turn) + std::string(eos));
  }
  return out;
}

std::string context_text(const Dialog& dialog, std::string_view eos) {
  std::string out;
  for (const auto& s : context_strings(dialog, eos)) out += s;
  return out;
}

std::vector<std::int32_t> encode_context(const Tokenizer& tokenizer, const Dialog& dialog, std::string_view eos) {
  // The control token splits the text around it, so encoding turn by turn gives the ids one
  // encoding of the whole context would, less any control token the turns' text spells.
  const std::vector<std::int32_t> eos_ids = tokenizer.encode(eos);
  std::vector<std::int32_t> out;
  for (const auto& turn : dialog.turns)
    if (!turn.text.empty()) append_turn(tokenizer, turn, eos_ids, out);
  return out;
}

TurnEmotions select_emotions(const std::optional<EmotionProbs>& emotions) {
  TurnEmotions out;
  if (!emotions) return out;
  std::array<std::int32_t, kEmotionLabels.size()> order;
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) { return (*emotions)[a] > (*emotions)[b]; });
  std::size_t k = 0;
  for (std::int32_t label : order) {
    if (k == kEmotionsPerTurn || !((*emotions)[label] > kEmotionThreshold)) break;
    out.ids[k] = label;
    out.probs[k] = (*emotions)[label];
    ++k;
  }
  return out;
}

std::vector<ContextEntity> context_entities(const Dialog& dialog, std::size_t max_entities) {
  const auto& turns = dialog.turns;
  std::vector<ContextEntity> out;
  for (std::size_t i = 0; i < turns.size(); ++i) {
    // The user's reaction: this turn's emotions for a user turn, else the next user turn's.
    std::size_t from = i;
    while (from < turns.size() && turns[from].role != Role::user) ++from;
    const TurnEmotions emotions = from < turns.size() ? select_emotions(turns[from].emotions) : TurnEmotions{};
    for (std::int64_t id : turns[i].entities) out.push_back({id, emotions});
  }
  if (out.size() > max_entities) out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(max_entities));
  return out;
}

namespace {

// The suffix of recent_turns(): `needed` tokens per context, `tokens(turn, k)` the tokens the
// merged turn (its text prepared) gives context k.
Dialog recent_suffix(const Dialog& dialog, std::vector<std::size_t> needed, std::size_t max_entities,
                     const std::function<std::size_t(const Turn&, std::size_t)>& tokens) {
  const auto& turns = dialog.turns;
  std::size_t begin = turns.size(), entities = 0;
  bool emotions = false;
  const auto enough = [&] {
    return entities >= max_entities && std::all_of(needed.begin(), needed.end(), [](auto n) { return n == 0; });
  };
  while (begin > 0 && !enough()) {
    // One run of a role's turns: the one turn the models see once they are merged.
    std::size_t first = begin - 1;
    while (first > 0 && turns[first - 1].role == turns[first].role) --first;
    Dialog run;
    for (std::size_t t = first; t < begin; ++t) run.add_turn(turns[t]);
    Turn& merged = run.turns.front();
    merged.text = redial_text(merged.text, dialog.movie_mentions);
    for (std::size_t k = 0; k < needed.size(); ++k) needed[k] -= std::min(needed[k], tokens(merged, k));
    entities += merged.entities.size();
    emotions = emotions || merged.emotions.has_value();
    begin = first;
  }
  // Emotion fusion is on when any turn has emotions: reach back to the newest one if need be.
  if (!emotions) {
    std::size_t t = begin;
    while (t > 0 && !turns[t - 1].emotions) --t;
    if (t > 0) {
      begin = t - 1;
      while (begin > 0 && turns[begin - 1].role == turns[begin].role) --begin;
    }
  }
  Dialog out;
  out.movie_mentions = dialog.movie_mentions;
  out.turns.assign(turns.begin() + static_cast<std::ptrdiff_t>(begin), turns.end());
  return out;
}

}  // namespace

Dialog recent_turns(const Dialog& dialog, std::span<const ContextBudget> contexts, std::size_t max_entities) {
  std::vector<std::size_t> needed;
  for (const ContextBudget& c : contexts) needed.push_back(c.max_tokens);
  return recent_suffix(dialog, std::move(needed), max_entities, [&](const Turn& turn, std::size_t k) -> std::size_t {
    if (turn.text.empty()) return 0;
    std::vector<std::int32_t> ids;
    append_turn(*contexts[k].tokenizer, turn, contexts[k].tokenizer->encode(contexts[k].eos), ids);
    return ids.size();
  });
}

Dialog recent_turns(const Dialog& dialog, std::size_t max_tokens, std::size_t max_entities) {
  return recent_suffix(dialog, {max_tokens}, max_entities,
                       [](const Turn& turn, std::size_t) -> std::size_t { return turn.text.empty() ? 0 : 1; });
}

}  // namespace ecr
