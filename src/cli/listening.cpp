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

std::string feedback_text(const std::vector<Feedback>& feedback) {
  std::string s;
  for (const Feedback& f : feedback)
    s += fmt::format("{}{}: {} (\"{}\")", s.empty() ? "" : "; ", f.name, polarity_name(f.polarity), f.cue);
  return s;
}

}  // namespace ecr::cli
