// What `ecr respond` and `ecr chat` share: loading the Recommender and the Responder from one
// bundle, the options that tune a reply, and printing a turn as text or JSON.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/recommender.hpp"
#include "ecr/responder.hpp"

namespace ecr::cli {

struct Conversation {
  Bundle bundle;
  Recommender recommender;
  Responder responder;
  RecommendRequest request;
  // Metadata "untrained": true, which tools/make_random_bundle.py writes: random weights.
  bool untrained = false;
};

// What the options of declare_conversation_options() ask for.
struct ConversationOptions {
  std::filesystem::path bundle;
  EngineOptions engine;
  RecommenderOptions recommender;
  ResponderOptions responder;
  std::size_t top_k = 5;
};

// Declares the options below on `args`.
void declare_conversation_options(Args& args);
// The parsed options, every one checked (InputError on a bad value) before anything is read.
ConversationOptions conversation_options(const Args& args);
// Loads both models as `options` say.
Conversation open_conversation(const ConversationOptions& options);

// The warning a bundle of random weights deserves, or "" for a trained one.
std::string untrained_note(const Conversation& c);

// {"untrained", "items" (listening.hpp's item_json), "user_emotions", "feedback", "generator" (gpt2 or llm), "reply", "template", "first_sentence", "reply_items",
//  "review_entities", "knowledge", "prompt_text", "template_ids", "reply_ids"}
nlohmann::json turn_json(const Conversation& c, const Responder::Turn& turn);
// The ranked items with one explanation each, the user's emotions as the prompt took them and
// the feedback read from the last turn.
void print_items(const Recommendation& r);
// One line for emotions: "curious 0.60, like 0.20" or "none over 0.1".
std::string emotions_text(const TurnEmotions& e);
// Prints one JSON value on one line (invalid UTF-8 replaced).
void print_json(const nlohmann::json& j);

// One user turn of a dialog the host keeps (`ecr chat`, `ecr serve`'s sessions): `text` joins
// `dialog` as the user's turn; the models read its recent turns (Responder::recent_turns);
// `ranked` sees the recommendation before the reply streams to `stream`; the reply then joins the
// dialog as the system's turn, with the ids of the items it names, so they stay out of later
// rankings. What the models found for the turns (emotions, linked entities) is kept in the
// dialog, so no later turn computes it again. On an error the dialog is left as it was.
Responder::Turn converse_turn(const Conversation& c, Dialog& dialog, std::string text,
                              const std::function<void(const Recommendation&)>& ranked, const ReplyStream& stream);

// One turn for `dialog`: the JSON object of turn_json, or the items, the streamed reply and its
// template and knowledge as text. Used by respond and chat.
int respond_once(const Conversation& c, const Dialog& dialog, bool as_json);

}  // namespace ecr::cli
