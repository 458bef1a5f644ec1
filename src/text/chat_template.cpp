#include "ecr/text/chat_template.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "ecr/core/error.hpp"
#include "ecr/core/utf8.hpp"
#include "unicode.hpp"

namespace ecr::text {

namespace {

constexpr std::array<std::string_view, 5> kNames = {"chatml", "llama2", "llama3", "zephyr", "mistral"};

std::string known_names() {
  std::string names;
  for (const std::string_view n : kNames) names += fmt::format("{}\"{}\"", names.empty() ? "" : ", ", n);
  return names;
}

// Python's str.strip() (Jinja's trim): whitespace off both ends, as str.isspace() reads it.
std::string_view strip(std::string_view s) {
  const auto space_at = [&](std::size_t i) -> std::size_t {  // its size in bytes, 0 when not space
    const Utf8Step step = decode_utf8(s, i);
    const char32_t c = step.code_point;
    const bool space = step.valid && ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || is_whitespace(c));
    return space ? step.size : 0;
  };
  std::size_t begin = 0;
  while (begin < s.size()) {
    const std::size_t n = space_at(begin);
    if (n == 0) break;
    begin += n;
  }
  std::size_t end = s.size();
  while (end > begin) {
    std::size_t start = end - 1;  // back to the start of the last character
    while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    const std::size_t n = space_at(start);
    if (n == 0 || start + n != end) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

// The default system text of a ChatML template that writes one when the first message is not a
// system turn: the literal between "<|im_start|>system" and "<|im_end|>" (newline written as
// itself or as \n). Nothing when the template has none or builds it from a variable.
std::optional<std::string> chatml_default_system(std::string_view source) {
  if (source.find("!= 'system'") == std::string_view::npos && source.find("!= \"system\"") == std::string_view::npos)
    return std::nullopt;
  constexpr std::string_view head = "<|im_start|>system";
  const std::size_t at = source.find(head);
  if (at == std::string_view::npos) return std::nullopt;
  std::size_t begin = at + head.size();
  if (source.substr(begin).starts_with("\n"))
    begin += 1;
  else if (source.substr(begin).starts_with("\\n"))
    begin += 2;
  else
    return std::nullopt;
  const std::size_t end = source.find("<|im_end|>", begin);
  if (end == std::string_view::npos) return std::nullopt;
  const std::string_view literal = source.substr(begin, end - begin);
  if (literal.find_first_of("'\"{}") != std::string_view::npos) return std::nullopt;
  std::string text;
  for (std::size_t i = 0; i < literal.size(); ++i) {
    if (literal[i] == '\\' && i + 1 < literal.size() && literal[i + 1] == 'n') {
      text += '\n';
      ++i;
    } else {
      text += literal[i];
    }
  }
  return text;
}

void check_role(const ChatMessage& m, std::size_t i) {
  if (m.role != "system" && m.role != "user" && m.role != "assistant")
    fail<InputError>("chat message {}: role '{}' is not one of \"system\", \"user\", \"assistant\"", i,
                     printable(m.role));
}

// Llama 2's and Mistral's rule: after an optional leading system turn, user and assistant alternate from user.
void check_alternating(std::span<const ChatMessage> turns, std::size_t first_index, std::string_view family) {
  for (std::size_t i = 0; i < turns.size(); ++i) {
    const bool user_expected = i % 2 == 0;
    if ((turns[i].role == "user") != user_expected || turns[i].role == "system")
      fail<InputError>("chat message {}: the {} template takes user and assistant turns alternating from a user "
                       "turn (a system turn only first), got '{}'",
                       first_index + i, family, printable(turns[i].role));
  }
}

}  // namespace

std::span<const std::string_view> chat_template_names() { return kNames; }

ChatTemplate::ChatTemplate(Family family, std::string bos, std::string eos) : family_(family) {
  const bool llama_like = family == Family::llama2 || family == Family::mistral || family == Family::zephyr;
  bos_ = !bos.empty() ? std::move(bos) : family == Family::llama3 ? "<|begin_of_text|>" : llama_like ? "<s>" : "";
  eos_ = !eos.empty() ? std::move(eos) : family == Family::llama3 ? "<|eot_id|>" : llama_like ? "</s>" : "";
}

std::string_view ChatTemplate::name() const { return kNames[static_cast<std::size_t>(family_)]; }

ChatTemplate ChatTemplate::by_name(std::string_view name, std::string bos, std::string eos) {
  for (std::size_t i = 0; i < kNames.size(); ++i)
    if (kNames[i] == name) return ChatTemplate(static_cast<Family>(i), std::move(bos), std::move(eos));
  fail<ConfigError>("chat template '{}' is not one ecr has (expected one of {})", printable(name), known_names());
}

ChatTemplate ChatTemplate::detect(std::string_view source, std::string bos, std::string eos) {
  const auto has = [&](std::string_view s) { return source.find(s) != std::string_view::npos; };
  std::optional<Family> family;
  if (has("<|im_start|>"))
    family = Family::chatml;
  else if (has("[INST]"))
    family = has("<<SYS>>") ? Family::llama2 : Family::mistral;
  else if (has("<|start_header_id|>") && has("<|end_header_id|>"))
    family = Family::llama3;
  else if (has("<|user|>") && has("<|assistant|>"))
    family = Family::zephyr;
  if (!family)
    fail<ConfigError>("the model's chat template is none that ecr recognises; pass --chat-template NAME (one of {})",
                      known_names());
  ChatTemplate t(*family, std::move(bos), std::move(eos));
  if (*family == Family::chatml) t.default_system_ = chatml_default_system(source);
  return t;
}

ChatTemplate ChatTemplate::from_gguf(const gguf::File& file, std::optional<std::string_view> name) {
  std::string bos, eos;
  if (file.contains("tokenizer.ggml.tokens")) {
    const auto tokens = file.get<std::vector<std::string_view>>("tokenizer.ggml.tokens");
    const auto token = [&](std::string_view key) {
      if (!file.contains(key)) return std::string();
      const std::uint32_t id = file.get<std::uint32_t>(key);
      if (id >= tokens.size())
        fail<FormatError>("gguf '{}': key '{}' is token id {}, but the vocab has {} tokens", file.label(), key, id,
                          tokens.size());
      return std::string(tokens[id]);
    };
    bos = token("tokenizer.ggml.bos_token_id");
    eos = token("tokenizer.ggml.eos_token_id");
  }
  if (name) return by_name(*name, std::move(bos), std::move(eos));
  if (!file.contains("tokenizer.chat_template"))
    fail<ConfigError>("gguf '{}' has no tokenizer.chat_template; pass --chat-template NAME (one of {})", file.label(),
                      known_names());
  return detect(file.get<std::string_view>("tokenizer.chat_template"), std::move(bos), std::move(eos));
}

std::string ChatTemplate::render(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  for (std::size_t i = 0; i < messages.size(); ++i) check_role(messages[i], i);
  std::string out;
  switch (family_) {
    case Family::chatml:
      if (default_system_ && !messages.empty() && messages[0].role != "system")
        out += fmt::format("<|im_start|>system\n{}<|im_end|>\n", *default_system_);
      for (const ChatMessage& m : messages) out += fmt::format("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content);
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      break;
    case Family::llama2: {
      // Its Jinja reads messages[0] before anything else, which fails on an empty conversation.
      if (messages.empty()) fail<InputError>("the Llama 2 chat template needs at least one message");
      const bool has_system = !messages.empty() && messages[0].role == "system";
      const auto turns = messages.subspan(has_system ? 1 : 0);
      check_alternating(turns, has_system ? 1 : 0, "Llama 2");
      for (std::size_t i = 0; i < turns.size(); ++i) {
        const std::string content = i == 0 && has_system ? fmt::format("<<SYS>>\n{}\n<</SYS>>\n\n{}", messages[0].content,
                                                                        turns[i].content)
                                                         : turns[i].content;
        if (turns[i].role == "user")
          out += fmt::format("{}[INST] {} [/INST]", bos_, strip(content));
        else
          out += fmt::format(" {} {}", strip(content), eos_);
      }
      break;  // the template has no generation prompt: "[/INST]" already ends where the reply starts
    }
    case Family::llama3:
      for (std::size_t i = 0; i < messages.size(); ++i)
        out += fmt::format("{}<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>", i == 0 ? bos_ : "",
                           messages[i].role, strip(messages[i].content));
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    case Family::zephyr:
      for (const ChatMessage& m : messages) out += fmt::format("<|{}|>\n{}{}\n", m.role, m.content, eos_);
      if (add_generation_prompt && !messages.empty()) out += "<|assistant|>\n";
      break;
    case Family::mistral:
      check_alternating(messages, 0, "Mistral");
      out += bos_;
      for (const ChatMessage& m : messages)
        out += m.role == "user" ? fmt::format("[INST] {} [/INST]", m.content) : fmt::format("{}{}", m.content, eos_);
      break;
  }
  return out;
}

std::vector<std::int32_t> end_of_turn_tokens(const Tokenizer& tokenizer) {
  std::vector<std::int32_t> ids;
  if (tokenizer.special_tokens().eos) ids.push_back(*tokenizer.special_tokens().eos);
  for (const std::string_view t : {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "</s>", "<|endoftext|>"})
    if (const auto id = tokenizer.token_to_id(t); id && tokenizer.is_control(*id)) ids.push_back(*id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::vector<std::int32_t> encode_chat(const Tokenizer& tokenizer, const ChatTemplate& chat,
                                      std::span<const ChatMessage> messages, bool add_generation_prompt) {
  std::vector<std::string> spellings;
  for (const std::int32_t id : tokenizer.special_tokens().control)
    if (std::string t = tokenizer.id_to_token(id); t.size() > 1) spellings.push_back(std::move(t));
  std::vector<ChatMessage> defused(messages.begin(), messages.end());
  for (ChatMessage& m : defused)
    for (const std::string& t : spellings)
      for (std::size_t at = m.content.find(t); at != std::string::npos; at = m.content.find(t, at + t.size() + 3))
        m.content.insert(at + 1, "\u200B");
  std::vector<std::int32_t> ids = tokenizer.encode(chat.render(defused, add_generation_prompt), ControlText::as_tokens);
  const SpecialTokens& special = tokenizer.special_tokens();
  if (special.add_bos && special.bos && (ids.empty() || ids.front() != *special.bos)) ids.insert(ids.begin(), *special.bos);
  return ids;
}

}  // namespace ecr::text
