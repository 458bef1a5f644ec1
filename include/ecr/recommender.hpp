// ecr::Recommender: ECR's emotion-aware item recommendation (docs/math.md sections 2, 4, 5, 6).
//
// One request, top to bottom (Recommender::recommend):
//   dialog -> turn emotions (host's, or the emotion classifier on each user turn)
//          -> entities (host's ids, or the linker on each turn's text and @mentions)
//          -> contexts (GPT-2 and RoBERTa token ids, context entities with their emotions)
//          -> text encoder -> rec prompt (KGPrompt: local + global entities, emotion fusion)
//          -> backbone with the prefix -> z -> scores z E^T over all entities -> ranked items.
// Everything that depends on the bundle alone (entity table, emotion table, global entity
// table, linker index) is built once, by the Engine the Recommender is a view of (ecr/engine.hpp);
// a loaded Recommender is immutable and serves any number of threads at once.
//
// Where the inputs come from, turn by turn (after merging consecutive turns of one role):
// - entities: the turn's ids when it has any (each must be a KG entity: InputError naming the
//   turn and the id), else the linker on its text and @mentions (unless link_text is off);
// - emotions: the turn's when the host gave them, else, for user turns with text, the bundle's
//   emotion classifier. With neither anywhere in the dialog the request has no emotions, and
//   the rec prompt runs as KGPrompt does without emotion ids: no emotion fusion, no global
//   entities (Recommendation::emotion_fusion says which way it went);
// - text: prepared as ECR's process_utt (redial_text: @<id> -> title, spaces, HTML entities)
//   before tokenizing; the contexts keep their newest tokens past the limits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ecr/core/tensor.hpp"
#include "ecr/dialog.hpp"
#include "ecr/engine.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/kg/entity_linker.hpp"
#include "ecr/kg/knowledge_graph.hpp"

namespace ecr {

// The engine's options (components, threads, checksums, device) come first: they apply when
// Recommender::load makes its own Engine. Loaded from a shared Engine, the Engine's apply, and
// these must be left as they are or equal the Engine's (ConfigError otherwise).
struct RecommenderOptions : EngineOptions {
  // docs/math.md section 2: context_max_length (GPT-2) and the RoBERTa prompt length (including <s>).
  std::size_t context_tokens = 200;
  std::size_t prompt_tokens = 200;
  std::size_t max_entities = kMaxContextEntities;
  // Append the global (co-occurrence) entities to the prompt when the bundle has the matrix.
  bool global_entities = true;
  // Leave items already mentioned in the dialog out of the ranking (off: the paper's setting).
  bool exclude_mentioned = false;
  // ECR's emotions (host-given or the classifier's). Off: every turn is taken as unlabelled, so
  // the rec prompt runs without emotion fusion and global entities (the paper's "w/o emotion"
  // ablation; `ecr eval --no-emotions`).
  bool emotions = true;
  // Run the linker on the text of turns that carry no entity ids; off: only the dialog's ids
  // count (ecr eval uses ReDial's annotations this way).
  bool link_text = true;
  LinkerOptions linker;
};

struct RecommendedItem {
  std::int64_t id = 0;  // KG entity id
  std::string name;     // display name
  float score = 0;      // z . E[id]
};

// What the request was made of, turn by turn (after merging consecutive turns of one role).
struct TurnAnalysis {
  Role role = Role::user;
  std::string text;                      // as the host gave it (the linker's offsets refer to it)
  std::vector<LinkedEntity> entities;   // host ids (source host) or linked from the text
  std::optional<EmotionProbs> emotions;  // user turns: the host's or the classifier's
  bool emotions_from_classifier = false;
  TurnEmotions selected;                 // user turns: the (at most 3) labels the prompt used
};

struct Recommendation {
  std::vector<RecommendedItem> items;  // top_k, best first
  std::vector<TurnAnalysis> turns;
  // The context entities (at most max_entities) ranked by the model's affinity z . E[e]:
  // the entities that weighed most for this ranking.
  std::vector<RecommendedItem> context_entities;
  // The user's latest emotions (the last user turn's selection), for the Responder.
  TurnEmotions user_emotions;
  // Inputs as the models saw them, for debugging and the torch parity test.
  std::vector<std::int32_t> context_ids;  // GPT-2
  std::vector<std::int32_t> prompt_ids;   // RoBERTa
  std::vector<ContextEntity> prompt_entities;  // the rec prompt's entities, with their emotions
  // False when no turn had emotions: the prompt then ran without emotion fusion and global
  // entities, as KGPrompt does without emotion ids.
  bool emotion_fusion = false;
  // Scores of every entity (N), filled when requested.
  std::optional<std::vector<float>> all_scores;
};

struct RecommendRequest {
  std::size_t top_k = 10;
  bool all_scores = false;
};

class Recommender {
 public:
  // Throws FormatError / ShapeError / ConfigError naming the bundle, component and tensor.
  static Recommender load(const std::filesystem::path& bundle, RecommenderOptions options = {});
  static Recommender load(const Bundle& bundle, RecommenderOptions options = {});
  // A view over a loaded engine, sharing its models with every other view.
  static Recommender load(const Engine& engine, RecommenderOptions options = {});

  // InputError for an empty dialog, entity ids that are not in the KG, a top_k of 0.
  // Contexts longer than the limits keep their newest tokens (docs/math.md section 2); never an error.
  Recommendation recommend(const Dialog& dialog, const RecommendRequest& request = {}) const;
  std::vector<Recommendation> recommend_batch(std::span<const Dialog> dialogs, const RecommendRequest& request = {}) const;

  const KnowledgeGraph& graph() const;
  const EntityLinker& linker() const;
  const RecommenderOptions& options() const;
  const Bundle& bundle() const;
  const Engine& engine() const;
  // The static entity table E (N, H) of the rec prompt.
  const Tensor& entity_table() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ecr
