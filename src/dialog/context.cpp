// ECR_SPEC section 2 without a model: the alternating turns, the context strings, the turn
// emotions and the entity list with the emotions each entity carries.
#include <algorithm>
#include <numeric>

#include "ecr/dialog.hpp"

namespace ecr {

std::vector<Turn> context_turns(const Dialog& dialog) {
  std::vector<Turn> turns;
  if (!dialog.turns.empty() && dialog.turns.front().role == Role::system) turns.push_back(Turn{Role::user, {}, {}, {}});
  turns.insert(turns.end(), dialog.turns.begin(), dialog.turns.end());
  return turns;
}

std::vector<std::string> context_strings(const Dialog& dialog, std::string_view eos) {
  std::vector<std::string> out;
  for (const auto& turn : dialog.turns) {
    if (turn.text.empty()) continue;
    std::string s = turn.role == Role::user ? "User: " : "System: ";
    s += turn.text;
    s += eos;
    out.push_back(std::move(s));
  }
  return out;
}

std::string context_text(const Dialog& dialog, std::string_view eos) {
  std::string out;
  for (const auto& s : context_strings(dialog, eos)) out += s;
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

}  // namespace ecr
