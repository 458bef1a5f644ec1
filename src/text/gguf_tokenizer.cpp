#include "ecr/text/gguf_tokenizer.hpp"

#include <unordered_map>

#include <fmt/format.h>

#include "ecr/core/error.hpp"
#include "ecr/core/utf8.hpp"
#include "ecr/text/byte_level_bpe.hpp"
#include "ecr/text/sentencepiece_bpe.hpp"

namespace ecr::text {

namespace {

// GGUF's pre-tokenizer names that ecr has, as the pre-tokenizer each means; llama.cpp's aliases
// for Llama 3's also read every piece that is a token as that token (ignore_merges).
struct PreName {
  std::string_view gguf_name, pre;
  bool ignore_merges;
};
constexpr PreName kPreNames[] = {
    {"gpt2", "gpt2", false},     {"smollm", "smollm", false},   {"llama-bpe", "llama-bpe", true},
    {"llama3", "llama-bpe", true}, {"llama-v3", "llama-bpe", true},
};

// llama.cpp's LLAMA_TOKEN_NULL (-1) as a u32: its converters write it for a role with no token.
constexpr std::uint32_t kNoToken = 0xFFFFFFFF;

class Reader {
 public:
  explicit Reader(const gguf::File& file) : file_(file), label_(fmt::format("gguf '{}'", file.label())) {}

  const std::string& label() const { return label_; }

  // A token id key: absent gives `fallback` (dropped when outside the vocab); present, a u32
  // inside the vocab, or 0xFFFFFFFF for none.
  std::optional<std::int32_t> id(std::string_view key, std::size_t vocab, std::optional<std::int32_t> fallback = {}) const {
    if (!file_.contains(key))
      return fallback && static_cast<std::size_t>(*fallback) < vocab ? fallback : std::nullopt;
    const std::uint32_t v = file_.get<std::uint32_t>(key);
    if (v == kNoToken) return std::nullopt;
    if (v >= vocab) fail<FormatError>("{}: key '{}' is token id {}, but the vocab has {} tokens", label_, key, v, vocab);
    return static_cast<std::int32_t>(v);
  }

  bool flag(std::string_view key, bool fallback) const { return file_.get_or<bool>(key, fallback); }

 private:
  const gguf::File& file_;
  std::string label_;
};

std::string known_pre_names() {
  std::string names;
  for (const PreName& p : kPreNames) names += fmt::format("{}\"{}\"", names.empty() ? "" : ", ", p.gguf_name);
  return names;
}

}  // namespace

std::shared_ptr<const Tokenizer> tokenizer_from_gguf(const gguf::File& file) {
  const Reader read(file);
  const std::string& label = read.label();
  const auto model = file.get<std::string>("tokenizer.ggml.model");
  if (model != "gpt2" && model != "llama")
    fail<ConfigError>("{}: tokenizer.ggml.model '{}' is not supported (expected \"gpt2\", byte-level BPE, or "
                      "\"llama\", SentencePiece BPE)",
                      label, printable(model));

  auto tokens = file.get<std::vector<std::string>>("tokenizer.ggml.tokens");
  const std::size_t n = tokens.size();
  if (n == 0) fail<FormatError>("{}: key 'tokenizer.ggml.tokens' lists no tokens", label);
  std::vector<TokenType> types(n, TokenType::normal);
  if (file.contains("tokenizer.ggml.token_type")) {
    const auto raw = file.get<std::vector<std::int32_t>>("tokenizer.ggml.token_type");
    if (raw.size() != n)
      fail<FormatError>("{}: key 'tokenizer.ggml.token_type' has {} entries for {} tokens", label, raw.size(), n);
    for (std::size_t i = 0; i < n; ++i) {
      if (raw[i] < 0 || raw[i] > kMaxTokenType)
        fail<FormatError>("{}: key 'tokenizer.ggml.token_type': token {} has type {}, expected 0 to {}", label, i,
                          raw[i], kMaxTokenType);
      types[i] = static_cast<TokenType>(raw[i]);
    }
  }
  {
    // llama.cpp refuses a vocab that lists a text twice; so does ecr, naming both ids.
    std::unordered_map<std::string_view, std::size_t> first;
    first.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      if (const auto [it, fresh] = first.emplace(tokens[i], i); !fresh)
        fail<FormatError>("{}: key 'tokenizer.ggml.tokens': token {} is '{}', the same text as token {}", label, i,
                          printable(tokens[i]), it->second);
  }

  const bool spm = model == "llama";
  SpecialTokens roles;
  roles.bos = read.id("tokenizer.ggml.bos_token_id", n, spm ? std::optional<std::int32_t>(1) : std::nullopt);
  roles.eos = read.id("tokenizer.ggml.eos_token_id", n, spm ? std::optional<std::int32_t>(2) : std::nullopt);
  roles.unk = read.id("tokenizer.ggml.unknown_token_id", n, spm ? std::optional<std::int32_t>(0) : std::nullopt);
  roles.pad = read.id("tokenizer.ggml.padding_token_id", n);

  if (spm) {
    SentencePieceBpe::Listing listing;
    listing.scores = file.get<std::vector<float>>("tokenizer.ggml.scores");
    if (listing.scores.size() != n)
      fail<FormatError>("{}: key 'tokenizer.ggml.scores' has {} entries for {} tokens", label, listing.scores.size(), n);
    listing.tokens = std::move(tokens);
    listing.types = std::move(types);
    roles.add_bos = read.flag("tokenizer.ggml.add_bos_token", true);
    roles.add_eos = read.flag("tokenizer.ggml.add_eos_token", false);
    listing.roles = roles;
    listing.add_space_prefix = read.flag("tokenizer.ggml.add_space_prefix", true);
    return std::make_shared<const SentencePieceBpe>(SentencePieceBpe::from_listing(listing, label));
  }

  const auto pre_name = file.get<std::string>("tokenizer.ggml.pre");
  const PreName* pre = nullptr;
  for (const PreName& p : kPreNames)
    if (p.gguf_name == pre_name) pre = &p;
  if (!pre)
    fail<ConfigError>("{}: tokenizer.ggml.pre '{}' is not a pre-tokenizer ecr has (expected one of {})", label,
                      printable(pre_name), known_pre_names());
  ByteLevelBpe::Listing listing;
  listing.merges = file.get<std::vector<std::string>>("tokenizer.ggml.merges");
  for (std::size_t i = 0; i < n; ++i)
    if (types[i] == TokenType::control || types[i] == TokenType::user_defined || types[i] == TokenType::unknown)
      listing.control.push_back(static_cast<std::int32_t>(i));
  listing.tokens = std::move(tokens);
  roles.add_bos = read.flag("tokenizer.ggml.add_bos_token", pre->ignore_merges);
  roles.add_eos = read.flag("tokenizer.ggml.add_eos_token", false);
  listing.roles = roles;
  listing.pre = pre->pre;
  listing.ignore_merges = pre->ignore_merges;
  return std::make_shared<const ByteLevelBpe>(ByteLevelBpe::from_listing(listing, label));
}

}  // namespace ecr::text
