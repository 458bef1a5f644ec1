// What passes between the Recommender's host stages and its model stages (CPU, recommender.cpp;
// device, recommender_cuda.cpp).
#pragma once

#include <cstdint>
#include <set>
#include <vector>

#include "ecr/recommender.hpp"

namespace ecr::pipeline {

// One dialog's inputs to the models, as the host stages prepare them.
struct RecModelInput {
  std::vector<std::int32_t> prompt_ids, context_ids;  // RoBERTa, GPT-2
  std::vector<std::int32_t> entities, emotion_ids;    // the rec prompt's (emotions empty: no fusion)
  std::vector<float> emotion_probs;
  std::set<std::int64_t> excluded;  // ids left out of the ranking
};

// What the models give for one dialog: its ranked items (best first: higher score, then lower
// id; at most top_k; names empty) and, when asked for, the scores of every entity (N).
struct RecModelOutput {
  std::vector<RecommendedItem> items;
  std::vector<float> scores;
};

}  // namespace ecr::pipeline
