#include "llm_prompt.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "ecr/core/error.hpp"

namespace ecr::responder {

namespace {

// How a fact reads after the title: "directed by Jan de Bont". A relation without a phrase here
// reads by its name ("genre: action").
std::string fact_phrase(const std::string& relation) {
  if (relation == "director") return "directed by";
  if (relation == "writer") return "written by";
  if (relation == "starring" || relation == "star") return "starring";
  if (relation == "productionCompany") return "made by";
  if (relation == "musicComposer") return "music by";
  return relation + ":";
}

std::string joined(std::span<const std::string> items, std::string_view last_sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? last_sep : std::string_view(", ");
    out += items[i];
  }
  return out;
}

// "The Matrix (1999): directed by Lana Wachowski; starring Keanu Reeves, Carrie-Anne Moss."
// The facts of one movie grouped by relation, in the order chosen.
std::string movie_facts(const std::string& movie, std::span<const KnowledgeTriple> knowledge) {
  std::vector<std::pair<std::string, std::vector<std::string>>> by_relation;
  for (const KnowledgeTriple& t : knowledge) {
    if (t.movie != movie) continue;
    auto it = std::find_if(by_relation.begin(), by_relation.end(), [&](const auto& r) { return r.first == t.relation; });
    if (it == by_relation.end()) it = by_relation.insert(by_relation.end(), {t.relation, {}});
    it->second.push_back(t.entity);
  }
  std::string out;
  for (const auto& [relation, entities] : by_relation)
    out += fmt::format("{}{} {}", out.empty() ? "" : "; ", fact_phrase(relation), joined(entities, " and "));
  return out;
}

}  // namespace

// How the instruction names an emotion label (ecr::kEmotionLabels): "The user feels sad".
std::string feeling(const std::string& label) {
  if (label == "like") return "enthusiastic";
  if (label == "negative") return "sad or upset";
  if (label == "neutral") return "calm";
  if (label == "nostalgia") return "nostalgic";
  if (label == "agreement") return "agreeable";
  if (label == "surprise") return "surprised";
  return label;  // curious, happy, grateful
}

// What the reply should do for the user's strongest emotion, in words a small model follows:
// "match that feeling" alone left a sad user with "I'm glad" (docs/llm-replies.md).
std::string register_for(const std::string& label) {
  if (label == "negative") return "Be gentle: say you are sorry they feel down, and how this movie could cheer them up.";
  if (label == "like" || label == "happy") return "Share their enthusiasm.";
  if (label == "curious") return "Answer their curiosity with something interesting about it.";
  if (label == "nostalgia") return "Speak to their fond memories.";
  if (label == "surprise") return "Share their surprise.";
  if (label == "grateful") return "Be glad to help.";
  return "Be warm and friendly.";  // neutral, agreement
}

std::string llm_instruction(const LlmPromptFacts& facts) {
  std::string s = "You are a kind movie recommender talking with a friend.";
  for (const std::string& movie : facts.movies)
    if (const std::string f = movie_facts(movie, facts.knowledge); !f.empty()) s += fmt::format(" {} is {}.", movie, f);
  if (!facts.review_entities.empty())
    s += fmt::format(" Its reviews talk about {}.", joined(facts.review_entities, " and "));
  if (!facts.emotions.empty()) {
    std::vector<std::string> feelings;
    for (const std::string& e : facts.emotions) feelings.push_back(feeling(e));
    s += fmt::format(" The user feels {}. {}", joined(feelings, " and "), register_for(facts.emotions.front()));
  }
  s += " Say in 2 or 3 sentences why they would enjoy it, using one of the facts above; invent nothing.";
  return s;
}

std::string llm_reply_opening(const LlmPromptFacts& facts) {
  if (facts.movies.empty()) return "";
  const std::string& movie = facts.movies.front();
  // Its best-known people: the stars, else the director, else the first fact; two at most.
  std::vector<std::string> people;
  std::string relation;
  for (const char* wanted : {"starring", "star", "director"}) {
    for (const KnowledgeTriple& t : facts.knowledge)
      if (t.movie == movie && t.relation == wanted && people.size() < 2) people.push_back(t.entity);
    if (!people.empty()) {
      relation = wanted;
      break;
    }
  }
  if (people.empty())
    for (const KnowledgeTriple& t : facts.knowledge)
      if (t.movie == movie) {
        relation = t.relation;
        people.push_back(t.entity);
        break;
      }
  // A sad user hears that first: the model, left to itself, went on with "I'm glad".
  const std::string comfort =
      !facts.emotions.empty() && facts.emotions.front() == "negative" ? "I'm sorry you're feeling down. " : "";
  if (people.empty()) return fmt::format("{}I think you would like {}.", comfort, movie);
  return fmt::format("{}I think you would like {}, {} {}.", comfort, movie, fact_phrase(relation),
                     joined(people, " and "));
}

std::vector<text::ChatMessage> llm_prompt_messages(const LlmPromptFacts& facts, bool system_turn) {
  std::vector<text::ChatMessage> messages;
  const std::string instruction = llm_instruction(facts);
  if (system_turn) messages.push_back({"system", instruction});
  // Chat templates want the conversation to open with the user (Llama 2, Mistral).
  auto first_user = std::find_if(facts.turns.begin(), facts.turns.end(), [](const auto& m) { return m.role == "user"; });
  if (first_user == facts.turns.end()) fail<InputError>("llm prompt: the dialog has no user turn to answer");
  messages.insert(messages.end(), first_user, facts.turns.end());
  if (!system_turn) messages[0].content = instruction + "\n\n" + messages[0].content;
  return messages;
}

}  // namespace ecr::responder
