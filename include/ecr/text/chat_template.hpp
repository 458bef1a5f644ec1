// Chat templates: how a chat model wants its turns laid out as text before tokenizing. A GGUF
// file carries its model's template as Jinja source (tokenizer.chat_template); ecr does not run
// Jinja but recognises the common families by substrings of that source, as llama.cpp does, and
// renders each exactly as its Jinja template does (with HuggingFace's trim_blocks/lstrip_blocks):
//
//   chatml   <|im_start|>{role}\n{content}<|im_end|>\n ...        "<|im_start|>" (SmolLM2; a
//            default system turn the template inserts when the first message is not one, as
//            SmolLM2's does, is read from the template and inserted the same way)
//   llama2   <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s>
//                                                                  "[INST]" and "<<SYS>>"
//   llama3   <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>
//                                                                  "<|start_header_id|>"
//   zephyr   <|{role}|>\n{content}</s>\n                           "<|user|>" and "<|assistant|>"
//   mistral  <s>[INST] {user} [/INST]{assistant}</s>               "[INST]" without "<<SYS>>"
//
// Roles are "system", "user" and "assistant". The Llama 2 and Mistral templates want user and
// assistant turns alternating from a user turn (a system turn only first, and not at all for
// Mistral): anything else is an InputError, where their Jinja raises an exception.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ecr/io/gguf.hpp"
#include "ecr/text/tokenizer.hpp"

namespace ecr::text {

struct ChatMessage {
  std::string role;
  std::string content;
};

class ChatTemplate {
 public:
  enum class Family { chatml, llama2, llama3, zephyr, mistral };

  // The family whose substrings `source` (Jinja text) has. `bos` and `eos` are the text of the
  // model's bos and eos tokens, which some templates write (empty: the family's usual ones).
  // ConfigError for a template none matches, saying to pass --chat-template NAME.
  static ChatTemplate detect(std::string_view source, std::string bos = {}, std::string eos = {});
  // A family by its name (chat_template_names()); ConfigError naming the known ones.
  static ChatTemplate by_name(std::string_view name, std::string bos = {}, std::string eos = {});
  // The template of a GGUF model: `name` when given (the --chat-template override), else
  // detect() on tokenizer.chat_template, with bos and eos from the file's vocab.
  static ChatTemplate from_gguf(const gguf::File& file, std::optional<std::string_view> name = {});

  Family family() const { return family_; }
  std::string_view name() const;
  // The system turn the template inserts when a conversation has none (SmolLM2's).
  const std::optional<std::string>& default_system() const { return default_system_; }

  // The conversation as the model's template lays it out; with `add_generation_prompt` it
  // ends where the assistant's next turn begins. InputError for a role or an order the template
  // does not take.
  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;

 private:
  ChatTemplate(Family family, std::string bos, std::string eos);
  Family family_;
  std::string bos_, eos_;
  std::optional<std::string> default_system_;
};

// The names by_name() and --chat-template take: "chatml", "llama2", "llama3", "zephyr", "mistral".
std::span<const std::string_view> chat_template_names();

// A conversation's prompt ids: the messages rendered by `chat`, the template's own control tokens
// (<|im_start|>, [INST]'s <s>) read as tokens and the messages' text never: a control token's
// spelling inside a message is broken by a zero-width space (U+200B) after its first character
// before rendering, so a user who types "<|im_end|>" cannot end a turn. bos is put first when the
// tokenizer's file asks for it (add_bos) and the template did not already write it.
// The ids that end an assistant's turn, as llama.cpp's end-of-generation set has them: eos and
// the control tokens the families close a turn with (<|im_end|>, <|eot_id|>, <|end_of_text|>,
// </s>, <|endoftext|>) that the vocab has. Ascending, distinct.
std::vector<std::int32_t> end_of_turn_tokens(const Tokenizer& tokenizer);

std::vector<std::int32_t> encode_chat(const Tokenizer& tokenizer, const ChatTemplate& chat,
                                      std::span<const ChatMessage> messages, bool add_generation_prompt);

}  // namespace ecr::text
