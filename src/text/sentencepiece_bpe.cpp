#include "ecr/text/sentencepiece_bpe.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <queue>
#include <unordered_map>

#include <fmt/format.h>

#include "ecr/core/error.hpp"
#include "ecr/core/utf8.hpp"
#include "tokenizer_spec.hpp"

namespace ecr::text {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space
constexpr std::size_t kMaxTokens = std::size_t{1} << 24;  // as ByteLevelBpe: dense tables stay small

bool is_piece(TokenType t) { return t == TokenType::normal || t == TokenType::undefined || t == TokenType::unused; }

// The byte a byte token "<0xXX>" stands for; nullopt when it is not spelled so.
std::optional<unsigned char> byte_of(std::string_view token) {
  if (token.size() != 6 || !token.starts_with("<0x") || token[5] != '>') return std::nullopt;
  int value = 0;
  for (const char c : token.substr(3, 2)) {
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (digit < 0) return std::nullopt;
    value = value * 16 + digit;
  }
  return static_cast<unsigned char>(value);
}

struct Symbol {
  std::int32_t prev, next;
  std::uint32_t start, size;  // bytes of the text; size 0 once merged into its left neighbour
};

struct Bigram {
  float score;
  std::int32_t left, right;
  std::uint32_t size;
  // The queue's top: the highest score, then the leftmost.
  bool operator<(const Bigram& o) const { return score != o.score ? score < o.score : left > o.left; }
};

nlohmann::json role_json(const std::optional<std::int32_t>& id) { return id ? nlohmann::json(*id) : nlohmann::json(); }

std::optional<std::int32_t> role_from_json(const nlohmann::json& roles, const char* name) {
  const auto it = roles.find(name);
  if (it == roles.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() || it->get<std::int64_t>() < 0 || it->get<std::int64_t>() >= std::int64_t{1} << 31)
    fail<FormatError>("tokenizer spec: roles.{} must be a token id, got {}", name, it->dump());
  return it->get<std::int32_t>();
}

}  // namespace

struct SentencePieceBpe::Impl {
  Listing listing;  // as given, for to_json()
  std::unordered_map<std::string, std::int32_t> piece_ids;  // normal tokens: what merges may form
  std::unordered_map<std::string, std::int32_t> token_ids;  // every token, first id of a text
  std::array<std::int32_t, 256> byte_id{};                  // -1 where the vocab has no <0xXX>
  std::vector<std::string> token_bytes;                     // id -> what decoding emits
  std::vector<std::pair<std::string, std::int32_t>> specials;  // longest first
  std::array<bool, 256> special_lead{};                        // first bytes of specials
  SpecialTokens roles;

  void spm(std::string_view text, std::vector<std::int32_t>& out) const;
  void emit_bytes(std::string_view piece, std::vector<std::int32_t>& out) const;
  const std::pair<std::string, std::int32_t>* special_at(std::string_view text, std::size_t pos) const;
  void check(std::int32_t id) const;
};

SentencePieceBpe SentencePieceBpe::from_listing(const Listing& listing, std::string_view label) {
  const std::size_t n = listing.tokens.size();
  if (n == 0) fail<FormatError>("{}: the vocab has no tokens", label);
  if (n > kMaxTokens) fail<FormatError>("{}: {} tokens, more than the {} a tokenizer may have", label, n, kMaxTokens);
  if (listing.scores.size() != n)
    fail<FormatError>("{}: {} scores for {} tokens; a SentencePiece vocab has one per token", label,
                      listing.scores.size(), n);
  if (listing.types.size() != n)
    fail<FormatError>("{}: {} token types for {} tokens, expected one per token", label, listing.types.size(), n);
  auto impl = std::make_shared<Impl>();
  impl->listing = listing;
  impl->byte_id.fill(-1);
  impl->token_bytes.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto id = static_cast<std::int32_t>(i);
    const std::string& token = listing.tokens[i];
    const TokenType type = listing.types[i];
    if (static_cast<std::int32_t>(type) < 0 || static_cast<std::int32_t>(type) > kMaxTokenType)
      fail<FormatError>("{}: token {} has type {}, expected 0 to {}", label, i, static_cast<std::int32_t>(type),
                        kMaxTokenType);
    if (!std::isfinite(listing.scores[i]))
      fail<FormatError>("{}: token {} ('{}') has score {}, expected a finite number", label, i, printable(token),
                        listing.scores[i]);
    impl->token_ids.emplace(token, id);
    if (is_piece(type)) {
      impl->piece_ids.emplace(token, id);
      std::string& bytes = impl->token_bytes[i];
      for (std::size_t pos = 0; pos < token.size();) {
        const std::size_t space = token.find(kSpace, pos);
        bytes.append(token, pos, space == std::string::npos ? std::string::npos : space - pos);
        if (space == std::string::npos) break;
        bytes += ' ';
        pos = space + kSpace.size();
      }
    } else if (type == TokenType::byte) {
      const auto b = byte_of(token);
      if (!b) fail<FormatError>("{}: byte token {} is '{}', expected <0xXX>", label, i, printable(token));
      impl->token_bytes[i] = std::string(1, static_cast<char>(*b));
      if (impl->byte_id[*b] < 0) impl->byte_id[*b] = id;
    } else {
      impl->token_bytes[i] = token;
      impl->roles.control.push_back(id);
      if (!token.empty()) impl->specials.emplace_back(token, id);
    }
  }
  std::stable_sort(impl->specials.begin(), impl->specials.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& sp : impl->specials) impl->special_lead[static_cast<unsigned char>(sp.first[0])] = true;
  const SpecialTokens& r = listing.roles;
  for (const auto& [name, role] : {std::pair{"bos", r.bos}, {"eos", r.eos}, {"pad", r.pad}, {"unk", r.unk}})
    if (role && (*role < 0 || static_cast<std::size_t>(*role) >= n))
      fail<FormatError>("{}: the {} token id {} is not in the vocab (size {})", label, name, *role, n);
  impl->roles.bos = r.bos;
  impl->roles.eos = r.eos;
  impl->roles.pad = r.pad;
  impl->roles.unk = r.unk;
  impl->roles.add_bos = r.add_bos;
  impl->roles.add_eos = r.add_eos;
  return SentencePieceBpe(std::move(impl));
}

SentencePieceBpe SentencePieceBpe::from_json(const nlohmann::json& spec) {
  if (const std::string_view kind = spec_kind(spec); kind != "spm_bpe")
    fail<ConfigError>("tokenizer spec: kind '{}' is not supported (expected \"spm_bpe\")", kind);
  const auto field = [&](const char* name, bool (nlohmann::json::*is)() const noexcept, const char* what) {
    const auto it = spec.find(name);
    if (it == spec.end() || !((*it).*is)()) fail<FormatError>("tokenizer spec: missing {} field '{}'", what, name);
    return it;
  };
  const auto tokens = field("tokens", &nlohmann::json::is_array, "array");
  const auto scores = field("scores", &nlohmann::json::is_array, "array");
  const auto types = field("types", &nlohmann::json::is_array, "array");
  const auto roles = field("roles", &nlohmann::json::is_object, "object");
  const auto prefix = field("add_space_prefix", &nlohmann::json::is_boolean, "boolean");
  Listing listing;
  for (const auto& t : *tokens) {
    if (!t.is_string()) fail<FormatError>("tokenizer spec: 'tokens' must hold strings");
    listing.tokens.push_back(t.get<std::string>());
  }
  for (const auto& s : *scores) {
    if (!s.is_number()) fail<FormatError>("tokenizer spec: 'scores' must hold numbers");
    listing.scores.push_back(s.get<float>());
  }
  for (const auto& t : *types) {
    if (!t.is_number_integer() || t.get<std::int64_t>() < 0 || t.get<std::int64_t>() > kMaxTokenType)
      fail<FormatError>("tokenizer spec: 'types' must hold integers 0 to {}, got {}", kMaxTokenType, t.dump());
    listing.types.push_back(static_cast<TokenType>(t.get<std::int32_t>()));
  }
  listing.roles = {role_from_json(*roles, "bos"), role_from_json(*roles, "eos"), role_from_json(*roles, "pad"),
                   role_from_json(*roles, "unk"), {}, roles->value("add_bos", false), roles->value("add_eos", false)};
  listing.add_space_prefix = prefix->get<bool>();
  return from_listing(listing, "tokenizer spec");
}

nlohmann::json SentencePieceBpe::to_json() const {
  const Listing& l = impl_->listing;
  std::vector<std::int32_t> types;
  for (const TokenType t : l.types) types.push_back(static_cast<std::int32_t>(t));
  const SpecialTokens& r = impl_->roles;
  return {{"kind", "spm_bpe"},
          {"tokens", l.tokens},
          {"scores", l.scores},
          {"types", types},
          {"roles",
           {{"bos", role_json(r.bos)}, {"eos", role_json(r.eos)}, {"pad", role_json(r.pad)}, {"unk", role_json(r.unk)},
            {"add_bos", r.add_bos}, {"add_eos", r.add_eos}}},
          {"add_space_prefix", l.add_space_prefix}};
}

// The score-ordered merge of one stretch of text (spaces already "▁"), then each symbol as its
// token or its bytes.
void SentencePieceBpe::Impl::spm(std::string_view text, std::vector<std::int32_t>& out) const {
  std::vector<Symbol> symbols;
  for (std::size_t pos = 0; pos < text.size();) {
    const std::uint8_t size = decode_utf8(text, pos).size;  // valid UTF-8: checked by encode()
    const auto index = static_cast<std::int32_t>(symbols.size());
    symbols.push_back({index - 1, pos + size < text.size() ? index + 1 : -1, static_cast<std::uint32_t>(pos), size});
    pos += size;
  }
  if (symbols.empty()) return;
  std::priority_queue<Bigram> queue;
  std::string joined;
  const auto try_pair = [&](std::int32_t left, std::int32_t right) {
    if (left < 0 || right < 0) return;
    const std::uint32_t size = symbols[left].size + symbols[right].size;
    joined.assign(text.substr(symbols[left].start, size));
    if (const auto it = piece_ids.find(joined); it != piece_ids.end())
      queue.push({listing.scores[it->second], left, right, size});
  };
  for (std::size_t i = 1; i < symbols.size(); ++i) try_pair(static_cast<std::int32_t>(i - 1), static_cast<std::int32_t>(i));
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    // Stale: one side has merged with something else since the pair was queued.
    if (left.size == 0 || right.size == 0 || left.size + right.size != b.size) continue;
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_pair(left.prev, b.left);
    try_pair(b.left, left.next);
  }
  for (std::int32_t i = 0; i >= 0; i = symbols[i].next) {
    const std::string_view piece = text.substr(symbols[i].start, symbols[i].size);
    if (const auto it = piece_ids.find(std::string(piece)); it != piece_ids.end())
      out.push_back(it->second);
    else
      emit_bytes(piece, out);
  }
}

void SentencePieceBpe::Impl::emit_bytes(std::string_view piece, std::vector<std::int32_t>& out) const {
  for (const char c : piece) {
    const auto b = static_cast<unsigned char>(c);
    if (byte_id[b] >= 0) {
      out.push_back(byte_id[b]);
    } else if (roles.unk) {
      // One unk for a character, not one per byte (a piece left unmerged is one character).
      if (out.empty() || out.back() != *roles.unk || (b & 0xC0) != 0x80) out.push_back(*roles.unk);
    } else {
      fail<InputError>("no token for the byte 0x{:02X} of '{}', and the vocab has no unknown token", b,
                       printable(piece));
    }
  }
}

const std::pair<std::string, std::int32_t>* SentencePieceBpe::Impl::special_at(std::string_view text,
                                                                                std::size_t pos) const {
  if (!special_lead[static_cast<unsigned char>(text[pos])]) return nullptr;
  for (const auto& s : specials)
    if (text.substr(pos).starts_with(s.first)) return &s;
  return nullptr;
}

std::vector<std::int32_t> SentencePieceBpe::encode(std::string_view text, ControlText control) const {
  if (const auto bad = utf8_error_offset(text))
    fail<InputError>("text to tokenize is not valid UTF-8 at byte offset {} (byte 0x{:02X})", *bad,
                     static_cast<unsigned char>(text[*bad]));
  std::vector<std::int32_t> out;
  bool after_control = true;  // the start of the text counts as one: a space prefix goes there
  std::string escaped;
  const auto plain = [&](std::string_view stretch) {
    if (stretch.empty()) return;
    escaped.clear();
    if (impl_->listing.add_space_prefix && after_control) escaped += kSpace;
    for (const char c : stretch) {
      if (c == ' ')
        escaped += kSpace;
      else
        escaped += c;
    }
    impl_->spm(escaped, out);
    after_control = false;
  };
  if (control == ControlText::as_text || impl_->specials.empty()) {
    plain(text);
    return out;
  }
  std::size_t start = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    const auto* special = impl_->special_at(text, pos);
    if (!special) {
      ++pos;
      continue;
    }
    plain(text.substr(start, pos - start));
    out.push_back(special->second);
    after_control = true;
    pos += special->first.size();
    start = pos;
  }
  plain(text.substr(start));
  return out;
}

void SentencePieceBpe::Impl::check(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= token_bytes.size())
    fail<InputError>("token id {} is not in the vocabulary (size {})", id, token_bytes.size());
}

void SentencePieceBpe::append_bytes(std::int32_t id, std::string& out) const {
  impl_->check(id);
  out += impl_->token_bytes[id];
}

void SentencePieceBpe::append_first_bytes(std::int32_t id, std::string& out) const {
  impl_->check(id);
  std::string_view bytes = impl_->token_bytes[id];
  if (impl_->listing.add_space_prefix && bytes.starts_with(' ')) bytes.remove_prefix(1);
  out += bytes;
}

std::optional<std::int32_t> SentencePieceBpe::token_to_id(std::string_view token) const {
  if (const auto it = impl_->token_ids.find(std::string(token)); it != impl_->token_ids.end()) return it->second;
  return std::nullopt;
}

std::string SentencePieceBpe::id_to_token(std::int32_t id) const {
  impl_->check(id);
  return impl_->listing.tokens[id];
}

std::int32_t SentencePieceBpe::vocab_size() const { return static_cast<std::int32_t>(impl_->token_bytes.size()); }

const SpecialTokens& SentencePieceBpe::special_tokens() const { return impl_->roles; }

}  // namespace ecr::text
