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
// [{"label", "prob"}]: the (at most 3) labels a turn's emotions gave the prompt.
nlohmann::json emotions_json(const TurnEmotions& emotions);
// What `ecr recommend --json` prints (and `ecr serve` answers /v1/recommend with): {"items",
//  "turns", "context_entities", "prompt_entities", "emotion_fusion", "user_emotions", "feedback",
//  "context_ids", "prompt_ids"} and "all_scores" when requested.
nlohmann::json recommendation_json(const Recommendation& r);
// One line: "Sleepless in Seattle: disliked ("did not like")", or "" when nothing was read.
std::string feedback_text(const std::vector<Feedback>& feedback);

}  // namespace ecr::cli
