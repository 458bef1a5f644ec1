#include "listening.hpp"

#include <fmt/format.h>

namespace ecr::cli {

using nlohmann::json;

json item_json(const RecommendedItem& item) {
  json reasons = json::array();
  for (const Reason& r : item.reasons) {
    json j = {{"kind", reason_kind_name(r.kind)}, {"source", r.source}, {"source_name", r.source_name},
              {"source_liked", r.source_liked}, {"text", r.text()}};
    if (r.kind == Reason::Kind::cooccurrence)
      j["weight"] = r.weight;
    else
      j.update({{"relation", r.relation}, {"via", r.via}, {"via_name", r.via_name}});
    reasons.push_back(std::move(j));
  }
  return {{"id", item.id},           {"name", item.name},         {"score", item.score},
          {"feedback", item.feedback}, {"reasons", std::move(reasons)}, {"explanation", explain(item)}};
}

json feedback_json(const std::vector<Feedback>& feedback) {
  json out = json::array();
  for (const Feedback& f : feedback)
    out.push_back({{"id", f.id}, {"name", f.name}, {"polarity", polarity_name(f.polarity)}, {"cue", f.cue},
                   {"turn", f.turn}, {"referred_back", f.referred_back}});
  return out;
}

json emotions_json(const TurnEmotions& e) {
  json out = json::array();
  for (std::size_t k = 0; k < e.ids.size(); ++k)
    if (e.ids[k] != kPadEmotion) out.push_back({{"label", kEmotionLabels[e.ids[k]]}, {"prob", e.probs[k]}});
  return out;
}

json recommendation_json(const Recommendation& r) {
  json items = json::array(), turns = json::array(), context = json::array(), entities = json::array();
  for (const auto& item : r.items) items.push_back(item_json(item));
  for (const auto& item : r.context_entities)
    context.push_back({{"id", item.id}, {"name", item.name}, {"score", item.score}});
  for (const auto& t : r.turns) {
    json linked = json::array();
    for (const auto& e : t.entities)
      linked.push_back({{"id", e.id}, {"name", e.name}, {"begin", e.begin}, {"end", e.end},
                        {"source", link_source_name(e.source)}});
    json turn = {{"role", role_name(t.role)}, {"text", t.text}, {"entities", std::move(linked)}};
    if (t.emotions) {
      json probs = json::object();
      for (std::size_t l = 0; l < kEmotionLabels.size(); ++l) probs[std::string(kEmotionLabels[l])] = (*t.emotions)[l];
      turn["emotions"] = std::move(probs);
      turn["emotions_from"] = t.emotions_from_classifier ? "classifier" : "host";
      turn["selected"] = emotions_json(t.selected);
    }
    turns.push_back(std::move(turn));
  }
  for (const auto& e : r.prompt_entities) entities.push_back({{"id", e.id}, {"emotions", emotions_json(e.emotions)}});
  json out = {{"items", std::move(items)},
              {"turns", std::move(turns)},
              {"context_entities", std::move(context)},
              {"prompt_entities", std::move(entities)},
              {"emotion_fusion", r.emotion_fusion},
              {"user_emotions", emotions_json(r.user_emotions)},
              {"feedback", feedback_json(r.feedback)},
              {"context_ids", r.context_ids},
              {"prompt_ids", r.prompt_ids}};
  if (r.all_scores) out["all_scores"] = *r.all_scores;
  return out;
}

std::string feedback_text(const std::vector<Feedback>& feedback) {
  std::string s;
  for (const Feedback& f : feedback)
    s += fmt::format("{}{}: {} (\"{}\")", s.empty() ? "" : "; ", f.name, polarity_name(f.polarity), f.cue);
  return s;
}

}  // namespace ecr::cli
