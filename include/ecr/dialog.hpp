// Dialog: what a host sends to the recommender, and the model-free part of turning it into model
// inputs (ECR_SPEC section 2).
//
// JSON form (`Dialog::parse`, `to_json`):
//   {"turns": [{"role": "user" | "system", "text": "...",
//               "entities": [entity ids],              optional
//               "emotions": {"like": 0.7, ...}}],      optional; labels of section 0
//    "movieMentions": {"202190": "The Shining (1980)"}}  optional; ReDial's @<id> titles
// Consecutive turns of one role are one turn (section 2); `add_turn` is the one place that
// merges them, for JSON and for ReDial records alike.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ecr/kg/entity_linker.hpp"
#include "ecr/kg/knowledge_graph.hpp"

namespace ecr {

// ECR_SPEC section 0: the emotion labels in id order; id 9 pads.
inline constexpr std::array<std::string_view, 9> kEmotionLabels = {
    "like", "curious", "happy", "grateful", "negative", "neutral", "nostalgia", "agreement", "surprise"};
inline constexpr std::int32_t kPadEmotion = 9;
// Section 2: a label counts when its probability exceeds the threshold; 3 per turn at most.
inline constexpr float kEmotionThreshold = 0.1f;
inline constexpr std::size_t kEmotionsPerTurn = 3;
// Section 2: entity_max_length.
inline constexpr std::size_t kMaxContextEntities = 32;

std::optional<std::int32_t> emotion_id(std::string_view label);

enum class Role : std::uint8_t { user, system };
std::string_view role_name(Role role);

// A probability per label of kEmotionLabels (0 for labels not given).
using EmotionProbs = std::array<float, kEmotionLabels.size()>;

struct Turn {
  Role role = Role::user;
  std::string text;
  std::vector<std::int64_t> entities;    // KG entity ids, in mention order
  std::optional<EmotionProbs> emotions;  // absent: not labelled
};

struct Dialog {
  std::vector<Turn> turns;
  MovieMentions movie_mentions;

  // Throws InputError naming the field and turn: not an object, no turns, a bad role, text
  // that is not a string or not UTF-8, an entity id that is not a non-negative integer, an
  // unknown emotion label or a probability outside [0, 1].
  static Dialog from_json(const nlohmann::json& j);
  static Dialog parse(std::string_view json_text);
  nlohmann::json to_json() const;

  // A ReDial record (the shared dialogs.jsonl format): the seeker (initiatorWorkerId) is the
  // user. Text is prepared as ECR does: `@<id>` replaced by the movie's title, whitespace
  // collapsed, HTML entities decoded. With a KG, each message's annotated `item` (or `movie`)
  // then `entity` names become entity ids (names the KG lacks are skipped, as in ECR); messages
  // may carry "emotions" (or ECR's "emotion") {label: prob}. Throws InputError naming the field.
  static Dialog from_redial(const nlohmann::json& record, const KnowledgeGraph* kg = nullptr);

  // Appends a turn, merging it into the last one when the role is the same: texts joined by a
  // space, entities concatenated, emotions by the larger probability per label.
  void add_turn(Turn turn);

  // InputError naming the turn unless every entity id is an entity of `kg` (not the padding).
  void validate(const KnowledgeGraph& kg) const;
};

// --- ECR_SPEC section 2: context building (no model involved) ----------------------------------

// Text prepared as ECR's process_utt does: `@<id>` -> the title from `mentions` (spaces
// collapsed), whitespace collapsed, HTML entities decoded. from_redial applies it to every
// message; the Recommender applies it to host turns before tokenizing.
std::string redial_text(std::string_view text, const MovieMentions& mentions);

// The turns the context alternates over: an empty user turn first when the system speaks first.
std::vector<Turn> context_turns(const Dialog& dialog);

// One string per turn: "User: " or "System: ", the text, then `eos` ("<|endoftext|>" for
// GPT-2, "</s>" for RoBERTa). Turns with empty text give nothing, as in ECR's dataset code (so
// the implied first user turn adds no "User: "). Truncation to the last 200 (199) tokens is the
// tokenizer's part.
std::vector<std::string> context_strings(const Dialog& dialog, std::string_view eos);
std::string context_text(const Dialog& dialog, std::string_view eos);

// A turn's emotions as the prompt takes them: labels with probability > 0.1, strongest first
// (ties: lower id), at most 3, padded with kPadEmotion and probability 0.
struct TurnEmotions {
  std::array<std::int32_t, kEmotionsPerTurn> ids{kPadEmotion, kPadEmotion, kPadEmotion};
  std::array<float, kEmotionsPerTurn> probs{0.f, 0.f, 0.f};
  bool operator==(const TurnEmotions&) const = default;
};
TurnEmotions select_emotions(const std::optional<EmotionProbs>& emotions);

// Entities of all turns in order (the last `max_entities`), each with the emotions of the user's
// reaction: an entity from a user turn takes that turn's emotions, one from a system turn the
// next user turn's (none, i.e. all padding, when there is no later user turn yet).
struct ContextEntity {
  std::int64_t id = 0;
  TurnEmotions emotions;
};
std::vector<ContextEntity> context_entities(const Dialog& dialog, std::size_t max_entities = kMaxContextEntities);

}  // namespace ecr
