// What the recommender listened to, as `ecr recommend`, `ecr respond` and `ecr chat` show it:
// the feedback it read, and each item's feedback term and reasons (ecr/recommender.hpp).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ecr/recommender.hpp"

namespace ecr::cli {

// {"id", "name", "score", "feedback", "reasons": [{"kind", "source", "source_name",
//  "source_liked", "relation", "via", "via_name", "weight", "text"}], "explanation"}
nlohmann::json item_json(const RecommendedItem& item);
// [{"id", "name", "polarity", "cue", "turn", "referred_back"}]
nlohmann::json feedback_json(const std::vector<Feedback>& feedback);
// One line: "Sleepless in Seattle: disliked ("did not like")", or "" when nothing was read.
std::string feedback_text(const std::vector<Feedback>& feedback);

}  // namespace ecr::cli
