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

std::string llm_instruction(const LlmPromptFacts& facts) {
  const std::string titles = joined(facts.movies, " and ");
  std::string s = "You are a warm, friendly movie recommender chatting with a user.";
  if (!facts.emotions.empty()) s += fmt::format(" The user feels {}.", joined(facts.emotions, " and "));
  for (const std::string& movie : facts.movies)
    if (const std::string f = movie_facts(movie, facts.knowledge); !f.empty()) s += fmt::format(" {}: {}.", movie, f);
  if (!facts.review_entities.empty())
    s += fmt::format(" Reviewers talk about {}.", joined(facts.review_entities, " and "));
  s += fmt::format(" Recommend {} by name in 2 or 3 sentences, in a tone that fits how the user feels. "
                   "Use only these facts.",
                   titles);
  return s;
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
