// Dialog: what a host sends to the recommender, and the model-free part of turning it into model
// inputs (docs/math.md section 2).
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
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ecr/kg/entity_linker.hpp"
#include "ecr/kg/knowledge_graph.hpp"

namespace ecr {

class Tokenizer;

// docs/math.md section 0: the emotion labels in id order; id 9 pads.
inline constexpr std::array<std::string_view, 9> kEmotionLabels = {
    "like", "curious", "happy", "grateful", "negative", "neutral", "nostalgia", "agreement", "surprise"};
inline constexpr std::int32_t kPadEmotion = 9;
// Section 2: a label counts when its probability exceeds the threshold; 3 per turn at most.
inline constexpr float kEmotionThreshold = 0.1f;
inline constexpr std::size_t kEmotionsPerTurn = 3;
// Section 2: entity_max_length.
inline constexpr std::size_t kMaxContextEntities = 32;
// The largest dialog JSON Dialog::parse (and `ecr --dialog`) takes: 64 MiB, some 400,000 turns
// of chat. Its arrays and objects may nest kMaxJsonDepth levels (core/json_depth.hpp).
inline constexpr std::size_t kMaxDialogBytes = std::size_t{64} << 20;

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
  // Also InputError for text over kMaxDialogBytes or nested deeper than kMaxJsonDepth, and for
  // text that is not JSON (the parser's message, with bytes a terminal would act on escaped).
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

// --- docs/math.md section 2: context building (no model involved) ----------------------------------

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
// The context strings as the models read them: each turn's "User: "/"System: " and text encoded
// as plain text (ControlText::as_text: a user who types "<|endoftext|>" neither ends a turn nor
// injects a control token), then `eos` as its control token. For text that spells no control
// token this is tokenizer.encode(context_text(dialog, eos)), id for id.
std::vector<std::int32_t> encode_context(const Tokenizer& tokenizer, const Dialog& dialog, std::string_view eos);

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

// The newest turns of a long dialog that still decide its model inputs, for hosts that keep a
// conversation going (Responder::recent_turns measures them for both models; `ecr chat` sends
// every turn this way): the shortest suffix, never splitting a run of one role's turns, whose
// turns give every context at least the tokens its model reads, with `max_entities` entity ids,
// and with a turn that has emotions when any turn has them. For it the Recommender and the
// Responder give what the whole dialog gives (items, contexts, prompt entities, reply) at a cost
// that stops growing with the dialog, provided the older turns carry the entity ids the linker
// gave them; Recommendation::turns then covers the suffix only, and exclude_mentioned sees only
// its entities. Each turn's string of context_strings() ends with its eos, a special token, so
// a suffix of turns tokenizes to a suffix of the tokens.
struct ContextBudget {
  const Tokenizer* tokenizer = nullptr;  // the context's tokenizer
  std::string_view eos;                  // its end-of-turn token ("<|endoftext|>", "</s>")
  std::size_t max_tokens = 0;            // the newest tokens its model reads
};
Dialog recent_turns(const Dialog& dialog, std::span<const ContextBudget> contexts,
                    std::size_t max_entities = kMaxContextEntities);
// Without a tokenizer: `max_tokens` turns with text (each adds at least its eos token).
Dialog recent_turns(const Dialog& dialog, std::size_t max_tokens, std::size_t max_entities = kMaxContextEntities);

}  // namespace ecr
