// ECR's retrieval-augmented prompt for an LLM reply (docs/llm-replies.md): what the Responder
// retrieved for the recommended movie, and the last turns of the dialog, as chat messages for
// text::encode_chat. One function builds it, for the engine and for Python (a trainer that
// fine-tunes the LLM must show it the same text).
//
//   system     the instruction (recommend THAT title, in the user's emotional register, in 2-3
//              sentences, from the given facts only), the user's emotions and the facts
//   user/...   the dialog's last turns, the user's and the system's (assistant), oldest first
#pragma once

#include <span>
#include <string>
#include <vector>

#include "ecr/responder.hpp"
#include "ecr/text/chat_template.hpp"

namespace ecr::responder {

struct LlmPromptFacts {
  std::vector<std::string> emotions;         // the user's, strongest first ("sad", "like")
  std::vector<std::string> movies;           // KG titles; the reply recommends these
  std::vector<KnowledgeTriple> knowledge;    // one-hop KG facts of the movies
  std::vector<std::string> review_entities;  // what the movies' reviews talk about
  std::vector<text::ChatMessage> turns;      // the dialog's last turns, roles "user" / "assistant"
};

// The messages: a system turn, then the turns from the first user turn on. With `system_turn`
// false (a template without one, Mistral's) the instruction opens the first user turn instead.
// InputError when no user turn is left.
std::vector<text::ChatMessage> llm_prompt_messages(const LlmPromptFacts& facts, bool system_turn = true);

// The words the assistant's turn opens with, after the generation prompt: the reply starts by
// naming the first movie (as ECR's template sentence does), and the LLM goes on from there. A
// small model told to name a title often talks about the user's movies instead.
std::string llm_reply_opening(const LlmPromptFacts& facts);

// The instruction and facts alone (the system turn's text).
std::string llm_instruction(const LlmPromptFacts& facts);

}  // namespace ecr::responder
