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
//
// What the recommender listens to, after the model has scored every item (a host's defaults;
// `ecr eval` turns both off to keep the paper's protocol):
// - dialog state: every entity of every turn (user or system, linked or host-given) is
//   "mentioned", and mentioned items leave the ranking (exclude_mentioned), so a movie the dialog
//   already named never comes back;
// - feedback (ecr/feedback.hpp): what the user said about the entities of a turn (liked,
//   disliked, seen). Each liked or disliked entity f moves the items near it in the rec prompt's
//   entity table E:
//       s'(i) = s(i) + beta * sd(s) * sum_f polarity_f * max(0, cos(E_i - m, E_f - m))^2
//   with polarity +1 (liked) or -1 (disliked; an entity's latest feedback counts), m the mean
//   item row of E (the direction all rows share would make every item a neighbour), sd(s) the
//   standard deviation of the model's item scores for this dialog (so beta is in units of the
//   ranking's own spread) and beta = feedback_strength (0: off). The square keeps far items
//   almost where they were.
//   RecommendedItem::feedback is the term added; Recommendation::feedback lists what was read;
// - explanations: each recommended item's reasons (Reason), the KG links between it and the
//   entities the user liked or mentioned (sources: entities of user turns that were not read as
//   disliked and whose turn's strongest emotion is not `negative`, and system-named movies the
//   user said they liked): a person or genre the user named that the item has ("stars Tom
//   Hanks, whom you mentioned"), an entity the item shares with a source movie ("directed by
//   Nora Ephron, like Sleepless in Seattle"), and the bundle's co-occurrence of the item with a
//   source movie. explain() makes a sentence of each source's reasons. The KG's adjacency is the graph's CSR,
//   built at load; nothing is built per request.
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
#include "ecr/feedback.hpp"
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
  // Leave items already mentioned in the dialog out of the ranking (off: the paper's setting,
  // which `ecr eval` keeps). A request may say otherwise (RecommendRequest).
  bool exclude_mentioned = true;
  // beta of the feedback rule above; 0 reads the feedback but leaves the scores alone.
  float feedback_strength = 1.0f;
  // ECR's emotions (host-given or the classifier's). Off: every turn is taken as unlabelled, so
  // the rec prompt runs without emotion fusion and global entities (the paper's "w/o emotion"
  // ablation; `ecr eval --no-emotions`).
  bool emotions = true;
  // Run the linker on the text of turns that carry no entity ids; off: only the dialog's ids
  // count (ecr eval uses ReDial's annotations this way).
  bool link_text = true;
  LinkerOptions linker;
};

// One reason to recommend an item: a link between it and an entity the user liked or mentioned
// (the source).
struct Reason {
  enum class Kind : std::uint8_t {
    has,           // the item is linked by `relation` to the source itself (a person, a genre)
    shares,        // the item and the source movie are both linked by `relation` to `via`
    cooccurrence,  // the item and the source movie are talked about together (weight: C[source, item])
  };
  Kind kind = Kind::has;
  std::int64_t source = 0;
  std::string source_name;
  bool source_liked = false;  // read as liked (else: mentioned)
  std::string relation;       // the KG relation ("star", "director", "writer", "genre"); empty for cooccurrence
  std::int64_t via = 0;       // the shared entity (shares); the source (has); unused for cooccurrence
  std::string via_name;
  float weight = 0;
  // "stars Tom Hanks, like Sleepless in Seattle (1993)"; "is a comedy, which you mentioned"
  std::string text() const;
};
std::string_view reason_kind_name(Reason::Kind kind);

struct RecommendedItem {
  std::int64_t id = 0;  // KG entity id
  std::string name;     // display name
  float score = 0;      // z . E[id], plus `feedback`
  float feedback = 0;   // what the feedback rule added to the score
  std::vector<Reason> reasons;  // ranked items only: the strongest first, at most kMaxReasons
};
inline constexpr std::size_t kMaxReasons = 3;
// At most two sentences of an item's reasons, one per source, the strongest first ("Like
// Sleepless in Seattle (1993), it is a romance film and stars Tom Hanks, and the two are often
// talked about together."; "It stars Tom Hanks, whom you mentioned."), "" without reasons.
std::string explain(const RecommendedItem& item);

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
  // Scores of every entity (N), filled when requested: the model's z . E, before feedback.
  std::optional<std::vector<float>> all_scores;
  // What the user turns said about the entities they talk about (ecr/feedback.hpp).
  std::vector<Feedback> feedback;
};

struct RecommendRequest {
  std::size_t top_k = 10;
  bool all_scores = false;
  // Unset: the RecommenderOptions' (so a server can serve both kinds of request from one load).
  std::optional<bool> exclude_mentioned;
  std::optional<float> feedback_strength;
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
