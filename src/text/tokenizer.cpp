#include "ecr/text/tokenizer.hpp"

#include <algorithm>
#include <array>

#include "ecr/core/error.hpp"
#include "ecr/core/utf8.hpp"
#include "ecr/text/byte_level_bpe.hpp"
#include "ecr/text/sentencepiece_bpe.hpp"
#include "tokenizer_spec.hpp"

namespace ecr {

namespace {

// Where the bytes of `s` stop forming whole characters: the start of a sequence at the very end
// that a later byte may still complete (a lead byte and fewer trail bytes than it needs, all
// well-formed so far); s.size() when there is none. Before it, nothing changes when bytes are
// appended, so replace_invalid_utf8 of the part before it is final.
std::size_t complete_end(std::string_view s) {
  // A character is at most 4 bytes, so only the last 3 can start an unfinished one.
  for (std::size_t back = 1; back <= std::min<std::size_t>(3, s.size()); ++back) {
    const std::size_t i = s.size() - back;
    const auto lead = static_cast<unsigned char>(s[i]);
    if (lead < 0xC2 || lead > 0xF4) continue;  // ASCII, a trail byte, or never a lead
    const Utf8Step step = decode_utf8(s, i);
    // Cut short by the end of `s` rather than by a bad byte: decode_utf8 stops at the end.
    return !step.valid && i + step.size == s.size() ? i : s.size();
  }
  return s.size();
}

}  // namespace

std::vector<std::int32_t> Tokenizer::encode_sequence(std::string_view text, ControlText control) const {
  const SpecialTokens& roles = special_tokens();
  std::vector<std::int32_t> ids;
  if (roles.add_bos && roles.bos) ids.push_back(*roles.bos);
  const std::vector<std::int32_t> body = encode(text, control);
  ids.insert(ids.end(), body.begin(), body.end());
  if (roles.add_eos && roles.eos) ids.push_back(*roles.eos);
  return ids;
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids) const {
  std::string bytes;
  for (std::size_t i = 0; i < ids.size(); ++i) i == 0 ? append_first_bytes(ids[i], bytes) : append_bytes(ids[i], bytes);
  return replace_invalid_utf8(bytes);
}

bool Tokenizer::is_control(std::int32_t id) const {
  const auto& control = special_tokens().control;
  return std::binary_search(control.begin(), control.end(), id);
}

std::string DecodeStream::push(std::int32_t id) {
  const std::size_t before = pending_.size();
  try {
    started_ ? tokenizer_.append_bytes(id, pending_) : tokenizer_.append_first_bytes(id, pending_);
  } catch (...) {
    pending_.resize(before);
    throw;
  }
  started_ = true;
  const std::size_t end = complete_end(pending_);
  std::string text = replace_invalid_utf8(std::string_view(pending_).substr(0, end));
  pending_.erase(0, end);
  return text;
}

std::string DecodeStream::finish() {
  std::string text = replace_invalid_utf8(pending_);
  pending_.clear();
  started_ = false;
  return text;
}

std::shared_ptr<const Tokenizer> make_tokenizer(const nlohmann::json& spec) {
  // One row per implementation. A GGUF file names the same families in tokenizer.ggml.model:
  // "gpt2" is byte_bpe, "llama" is spm_bpe (text/gguf_tokenizer.hpp).
  struct Kind {
    std::string_view name;
    std::shared_ptr<const Tokenizer> (*make)(const nlohmann::json& spec);
  };
  static constexpr std::array<Kind, 2> kinds = {{
      {"byte_bpe", [](const nlohmann::json& s) -> std::shared_ptr<const Tokenizer> {
         return std::make_shared<const text::ByteLevelBpe>(text::ByteLevelBpe::from_json(s));
       }},
      {"spm_bpe", [](const nlohmann::json& s) -> std::shared_ptr<const Tokenizer> {
         return std::make_shared<const text::SentencePieceBpe>(text::SentencePieceBpe::from_json(s));
       }},
  }};
  const std::string_view kind = text::spec_kind(spec);
  for (const Kind& k : kinds)
    if (kind == k.name) return k.make(spec);
  fail<ConfigError>("tokenizer spec: kind '{}' is not supported (expected \"byte_bpe\" or \"spm_bpe\")", kind);
}

namespace text {

std::string_view spec_kind(const nlohmann::json& spec) {
  if (!spec.is_object()) fail<FormatError>("tokenizer spec: expected a JSON object, got {}", spec.type_name());
  const auto kind = spec.find("kind");
  if (kind == spec.end() || !kind->is_string())
    fail<FormatError>("tokenizer spec: missing string field 'kind' (expected \"byte_bpe\")");
  return kind->get_ref<const std::string&>();
}

}  // namespace text

}  // namespace ecr
