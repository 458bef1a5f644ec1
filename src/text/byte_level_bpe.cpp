#include "ecr/text/byte_level_bpe.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>

#include "ecr/core/error.hpp"
#include "ecr/core/utf8.hpp"
#include "tokenizer_spec.hpp"

namespace ecr::text {

namespace {

// Ids above this are refused at load: the id tables are dense, so a stray huge id in a file
// would otherwise allocate gigabytes.
constexpr std::int32_t kMaxTokenId = (1 << 24) - 1;

// GPT-2's bytes_to_unicode(): printable bytes stand for themselves, the other 68 map to
// U+0100.. in byte order, so that every token is printable text without spaces.
struct ByteLevel {
  std::array<std::string, 256> symbol;    // byte -> its character, UTF-8 encoded
  std::array<std::int16_t, 324> byte_of;  // character -> byte, -1 where none

  ByteLevel() {
    byte_of.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      const char32_t c = printable ? static_cast<char32_t>(b) : next++;
      append_utf8(symbol[b], c);
      byte_of[c] = static_cast<std::int16_t>(b);
    }
  }

  // The raw bytes a vocab token stands for; nullopt when it is not byte-level text.
  std::optional<std::string> to_bytes(std::string_view token) const {
    std::string out;
    for (std::size_t i = 0; i < token.size();) {
      const Utf8Step step = decode_utf8(token, i);
      if (!step.valid || step.code_point >= byte_of.size() || byte_of[step.code_point] < 0) return std::nullopt;
      out += static_cast<char>(byte_of[step.code_point]);
      i += step.size;
    }
    return out;
  }
};

const ByteLevel& byte_level() {
  static const ByteLevel table;
  return table;
}

// (left id, right id) -> (rank, merged id), open addressing: the BPE loop's only lookup.
class MergeTable {
 public:
  struct Entry {
    std::uint64_t key;
    std::int32_t rank;
    std::int32_t merged;
  };

  explicit MergeTable(std::size_t count = 0) {
    std::size_t capacity = 16;
    while (capacity < 2 * count) capacity *= 2;
    slots_.assign(capacity, Entry{kEmpty, 0, 0});
    mask_ = capacity - 1;
  }

  // A later duplicate overrides an earlier one, as in GPT-2's and HuggingFace's loaders.
  void insert(std::int32_t left, std::int32_t right, std::int32_t rank, std::int32_t merged) {
    const std::uint64_t k = key(left, right);
    std::size_t i = slot(k);
    while (slots_[i].key != kEmpty && slots_[i].key != k) i = (i + 1) & mask_;
    slots_[i] = Entry{k, rank, merged};
  }

  const Entry* find(std::int32_t left, std::int32_t right) const {
    const std::uint64_t k = key(left, right);
    for (std::size_t i = slot(k);; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return &slots_[i];
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};
  static std::uint64_t key(std::int32_t left, std::int32_t right) {
    return (std::uint64_t{static_cast<std::uint32_t>(left)} << 32) | static_cast<std::uint32_t>(right);
  }
  std::size_t slot(std::uint64_t k) const { return static_cast<std::size_t>((k * 0x9E3779B97F4A7C15ull) >> 32) & mask_; }

  std::vector<Entry> slots_;
  std::size_t mask_ = 0;
};

struct HeapEntry {
  std::int32_t rank, pos, left, right, merged;
  bool operator>(const HeapEntry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

// Buffers reused across the pieces of one encode() call.
struct Scratch {
  std::vector<std::int32_t> id, prev, next;
  std::vector<HeapEntry> heap;
};

std::string read_file(const std::filesystem::path& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>("cannot open {} '{}'", what, path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail<IoError>("cannot read {} '{}'", what, path.string());
  return std::move(ss).str();
}

bool looks_special(std::string_view token) {
  if (token == "<s>" || token == "</s>" || token == "<pad>" || token == "<unk>" || token == "<mask>") return true;
  if (token.size() < 5 || !token.starts_with("<|") || !token.ends_with("|>")) return false;
  const std::string_view inner = token.substr(2, token.size() - 4);
  return std::all_of(inner.begin(), inner.end(), [](char c) { return c > ' ' && c < 0x7F && c != '|'; });
}

// The roles GPT-2's and RoBERTa's names give their control tokens (byte_level_bpe.hpp).
SpecialTokens roles_of(const std::vector<std::pair<std::string, std::int32_t>>& specials) {
  const auto id_of = [&](std::string_view token, std::string_view otherwise = {}) -> std::optional<std::int32_t> {
    for (const std::string_view t : {token, otherwise})
      for (const auto& [text, id] : specials)
        if (!t.empty() && text == t) return id;
    return std::nullopt;
  };
  SpecialTokens roles{id_of("<s>", "<|endoftext|>"), id_of("</s>", "<|endoftext|>"), id_of("<pad>"), id_of("<unk>"), {}};
  for (const auto& s : specials) roles.control.push_back(s.second);
  std::sort(roles.control.begin(), roles.control.end());
  roles.control.erase(std::unique(roles.control.begin(), roles.control.end()), roles.control.end());
  return roles;
}

// The control tokens and roles a GGUF file lists by id, instead of the ones GPT-2's names imply.
struct ExplicitSpecials {
  std::vector<std::int32_t> control;
  SpecialTokens roles;
};

// The merges as "left right" lines, each with the number errors give it.
using MergeLines = std::vector<std::pair<std::size_t, std::string_view>>;

// A merges file's lines: empty ones and a leading "#version" line skipped.
MergeLines merge_file_lines(std::string_view text) {
  MergeLines lines;
  std::size_t line_no = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    lines.emplace_back(line_no, line);
  }
  return lines;
}

// A JSON vocab (token -> id) as pairs, each id checked.
std::vector<std::pair<std::string, std::int32_t>> vocab_pairs(const nlohmann::json& vocab, std::string_view label) {
  if (!vocab.is_object()) fail<FormatError>("{}: expected a JSON object of token -> id", label);
  std::vector<std::pair<std::string, std::int32_t>> pairs;
  pairs.reserve(vocab.size());
  for (const auto& [token, v] : vocab.items()) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > kMaxTokenId)
      fail<FormatError>("{}: token '{}' has id {}, expected an integer in [0, {}]", label, token, v.dump(),
                        kMaxTokenId);
    pairs.emplace_back(token, v.get<std::int32_t>());
  }
  return pairs;
}

std::optional<std::int32_t> optional_id(const nlohmann::json& roles, const char* name) {
  const auto it = roles.find(name);
  if (it == roles.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() || it->get<std::int64_t>() < 0 || it->get<std::int64_t>() > kMaxTokenId)
    fail<FormatError>("tokenizer spec: roles.{} must be a token id, got {}", name, it->dump());
  return it->get<std::int32_t>();
}

}  // namespace

struct ByteLevelBpe::Impl {
  // Everything the files say, kept for to_json().
  std::vector<std::pair<std::string, std::int32_t>> vocab;
  std::vector<std::pair<std::int32_t, std::int32_t>> merges;  // rank order, as ids
  std::map<std::string, std::int32_t> added;
  bool listed_by_id = false;  // from a listing: tokens by id, control tokens and roles explicit
  bool ignore_merges = false;

  std::unordered_map<std::string, std::int32_t> token_ids;  // vocab and added tokens
  std::vector<std::string> token_text;                      // id -> token string
  std::vector<std::string> token_bytes;                     // id -> what decode() emits
  std::vector<bool> assigned;
  std::array<std::int32_t, 256> byte_id{};  // -1 for a byte a listed vocab lacks
  bool lacks_bytes = false;
  MergeTable merge_table;
  std::vector<std::pair<std::string, std::int32_t>> specials;  // longest first
  std::array<bool, 256> special_lead{};                        // first bytes of specials
  SpecialTokens roles;
  const PreTokenizer* pre = nullptr;

  static std::shared_ptr<const Impl> build(std::vector<std::pair<std::string, std::int32_t>> vocab,
                                           std::string_view vocab_label, const MergeLines& merge_lines,
                                           std::string_view merges_label, std::map<std::string, std::int32_t> added,
                                           const PreTokenizer& pre, const ExplicitSpecials* listed,
                                           bool ignore_merges);

  const std::pair<std::string, std::int32_t>* special_at(std::string_view text, std::size_t pos) const;
  void bpe(std::string_view piece, std::vector<std::int32_t>& out, Scratch& scratch) const;
  void encode_ordinary(std::string_view text, std::vector<std::int32_t>& out, Scratch& scratch) const;
  const std::string& checked(const std::vector<std::string>& table, std::int32_t id) const;
};

std::shared_ptr<const ByteLevelBpe::Impl> ByteLevelBpe::Impl::build(
    std::vector<std::pair<std::string, std::int32_t>> vocab, std::string_view vocab_label, const MergeLines& merge_lines,
    std::string_view merges_label, std::map<std::string, std::int32_t> added, const PreTokenizer& pre,
    const ExplicitSpecials* listed, bool ignore_merges) {
  auto impl = std::make_shared<Impl>();
  impl->pre = &pre;
  impl->listed_by_id = listed != nullptr;
  impl->ignore_merges = ignore_merges;
  std::int32_t max_id = -1;
  impl->vocab = std::move(vocab);
  for (const auto& entry : impl->vocab) max_id = std::max(max_id, entry.second);
  for (const auto& [token, id] : added) {
    if (id < 0 || id > kMaxTokenId)
      fail<FormatError>("added token '{}' has id {}, expected one in [0, {}]", token, id, kMaxTokenId);
    if (token.empty() || !is_valid_utf8(token))
      fail<FormatError>("added token '{}' must be non-empty UTF-8", token);
    max_id = std::max(max_id, id);
  }

  const ByteLevel& bl = byte_level();
  const auto size = static_cast<std::size_t>(max_id + 1);
  impl->token_text.resize(size);
  impl->token_bytes.resize(size);
  impl->assigned.assign(size, false);
  impl->token_ids.reserve(impl->vocab.size() + added.size());
  std::vector<bool> is_listed_control(listed ? size : 0, false);
  if (listed)
    for (const std::int32_t id : listed->control) {
      if (id < 0 || static_cast<std::size_t>(id) >= size)
        fail<FormatError>("{}: control token id {} is not in the vocab (size {})", vocab_label, id, size);
      is_listed_control[id] = true;
    }
  for (const auto& [token, id] : impl->vocab) {
    if (impl->assigned[id])
      fail<FormatError>("{}: id {} is used by both '{}' and '{}'", vocab_label, id, impl->token_text[id], token);
    impl->assigned[id] = true;
    impl->token_text[id] = token;
    const bool control = listed ? is_listed_control[id] : looks_special(token);
    // A token that is not byte-level text (a special token written with other characters)
    // decodes as itself, and so does a control token.
    impl->token_bytes[id] = control ? token : bl.to_bytes(token).value_or(token);
    impl->token_ids.emplace(token, id);  // a repeated text keeps its first id, as llama.cpp does
    if (control && !token.empty()) impl->specials.emplace_back(token, id);
  }
  for (const auto& [token, id] : added) {
    if (auto it = impl->token_ids.find(token); it != impl->token_ids.end()) {
      if (it->second != id)
        fail<FormatError>("added token '{}' has id {} but the vocab gives it id {}", token, id, it->second);
      if (looks_special(token)) continue;  // already listed
    } else {
      if (impl->assigned[id])
        fail<FormatError>("added token '{}' has id {}, which is the vocab's '{}'", token, id, impl->token_text[id]);
      impl->assigned[id] = true;
      impl->token_text[id] = token;
      impl->token_bytes[id] = token;
      impl->token_ids.emplace(token, id);
    }
    impl->specials.emplace_back(token, id);
  }
  impl->added = std::move(added);
  std::stable_sort(impl->specials.begin(), impl->specials.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& s : impl->specials) impl->special_lead[static_cast<unsigned char>(s.first[0])] = true;
  if (listed) {
    impl->roles = listed->roles;
    impl->roles.control = listed->control;
    std::sort(impl->roles.control.begin(), impl->roles.control.end());
    impl->roles.control.erase(std::unique(impl->roles.control.begin(), impl->roles.control.end()),
                              impl->roles.control.end());
    for (const auto& role : {impl->roles.bos, impl->roles.eos, impl->roles.pad, impl->roles.unk})
      if (role && (*role < 0 || static_cast<std::size_t>(*role) >= size || !impl->assigned[*role]))
        fail<FormatError>("{}: special token id {} is not in the vocab (size {})", vocab_label, *role, size);
  } else {
    impl->roles = roles_of(impl->specials);
  }

  for (int b = 0; b < 256; ++b) {
    auto it = impl->token_ids.find(bl.symbol[b]);
    // A listed vocab may lack bytes that its training text never had (SmolLM2 has no 0x04 and
    // none of the bytes UTF-8 never uses): such a byte gives no token, as in llama.cpp and
    // HuggingFace, and no merge crosses it.
    if (it == impl->token_ids.end() && listed) {
      impl->byte_id[b] = -1;
      impl->lacks_bytes = true;
      continue;
    }
    if (it == impl->token_ids.end())
      fail<FormatError>("{}: no token for byte 0x{:02X} ('{}'); a byte-level vocab has all 256", vocab_label, b,
                        bl.symbol[b]);
    impl->byte_id[b] = it->second;
  }

  // Merges: one "left right" pair a line, best first.
  std::vector<std::pair<std::int32_t, std::int32_t>> merges;
  std::vector<std::int32_t> merged_ids;
  std::string joined;
  for (const auto& [line_no, line] : merge_lines) {
    const std::size_t space = line.find(' ');
    if (space == 0 || space == std::string_view::npos || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos)
      fail<FormatError>("{}: line {}: expected two tokens separated by one space, got '{}'", merges_label, line_no,
                        line);
    const std::string_view left = line.substr(0, space), right = line.substr(space + 1);
    joined.assign(left).append(right);
    std::int32_t ids[3];
    const std::string_view parts[3] = {left, right, joined};
    for (int k = 0; k < 3; ++k) {
      auto it = impl->token_ids.find(std::string(parts[k]));
      if (it == impl->token_ids.end())
        fail<FormatError>("{}: line {}: token '{}' is not in the vocab", merges_label, line_no, parts[k]);
      ids[k] = it->second;
    }
    merges.emplace_back(ids[0], ids[1]);
    merged_ids.push_back(ids[2]);
  }
  impl->merge_table = MergeTable(merges.size());
  for (std::size_t r = 0; r < merges.size(); ++r)
    impl->merge_table.insert(merges[r].first, merges[r].second, static_cast<std::int32_t>(r), merged_ids[r]);
  impl->merges = std::move(merges);
  return impl;
}

ByteLevelBpe ByteLevelBpe::from_files(const std::filesystem::path& vocab, const std::filesystem::path& merges,
                                      std::map<std::string, std::int32_t> added_tokens) {
  const std::string vocab_text = read_file(vocab, "vocab file");
  const std::string merges_text = read_file(merges, "merges file");
  const std::string vocab_label = fmt::format("vocab file '{}'", vocab.string());
  nlohmann::json vocab_json;
  try {
    vocab_json = nlohmann::json::parse(vocab_text);
  } catch (const nlohmann::json::exception& e) {
    fail<FormatError>("{}: invalid JSON: {}", vocab_label, printable(e.what()));
  }
  return ByteLevelBpe(Impl::build(vocab_pairs(vocab_json, vocab_label), vocab_label, merge_file_lines(merges_text),
                                  fmt::format("merges file '{}'", merges.string()), std::move(added_tokens),
                                  text::pre_tokenizer("gpt2"), nullptr, false));
}

ByteLevelBpe ByteLevelBpe::from_listing(const Listing& listing, std::string_view label) {
  if (listing.tokens.size() > static_cast<std::size_t>(kMaxTokenId) + 1)
    fail<FormatError>("{}: {} tokens, more than the {} ids a tokenizer may have", label, listing.tokens.size(),
                      kMaxTokenId + 1);
  std::vector<std::pair<std::string, std::int32_t>> vocab;
  vocab.reserve(listing.tokens.size());
  for (std::size_t i = 0; i < listing.tokens.size(); ++i)
    vocab.emplace_back(listing.tokens[i], static_cast<std::int32_t>(i));
  MergeLines lines;
  lines.reserve(listing.merges.size());
  for (std::size_t i = 0; i < listing.merges.size(); ++i) lines.emplace_back(i + 1, listing.merges[i]);
  const ExplicitSpecials specials{listing.control, listing.roles};
  return ByteLevelBpe(Impl::build(std::move(vocab), fmt::format("{} tokens", label), lines,
                                  fmt::format("{} merges", label), {}, text::pre_tokenizer(listing.pre), &specials,
                                  listing.ignore_merges));
}

ByteLevelBpe ByteLevelBpe::from_json(const nlohmann::json& spec) {
  if (const std::string_view kind = spec_kind(spec); kind != "byte_bpe")
    fail<ConfigError>("tokenizer spec: kind '{}' is not supported (expected \"byte_bpe\")", kind);
  const auto merges = spec.find("merges");
  if (merges == spec.end() || !merges->is_string())
    fail<FormatError>("tokenizer spec: missing string field 'merges' (the merges file's text)");
  std::map<std::string, std::int32_t> added;
  if (const auto a = spec.find("added_tokens"); a != spec.end()) {
    if (!a->is_object()) fail<FormatError>("tokenizer spec: 'added_tokens' must be an object of token -> id");
    for (const auto& [token, v] : a->items()) {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > kMaxTokenId)
        fail<FormatError>("tokenizer spec: added token '{}' has id {}, expected an integer in [0, {}]", token,
                          v.dump(), kMaxTokenId);
      added.emplace(token, v.get<std::int32_t>());
    }
  }
  const auto pre = spec.find("pre");
  if (pre != spec.end() && !pre->is_string())
    fail<FormatError>("tokenizer spec: 'pre' must be the name of a pre-tokenizer (a string)");
  const PreTokenizer& pre_tokenizer =
      text::pre_tokenizer(pre == spec.end() ? "gpt2" : pre->get_ref<const std::string&>());
  const MergeLines lines = merge_file_lines(merges->get_ref<const std::string&>());
  // A tokenizer from a listing (GGUF) names its tokens by id, its control tokens and roles.
  if (const auto tokens = spec.find("tokens"); tokens != spec.end()) {
    if (!tokens->is_array()) fail<FormatError>("tokenizer spec: 'tokens' must be an array of strings");
    const auto control = spec.find("control");
    const auto roles = spec.find("roles");
    if (control == spec.end() || !control->is_array() || roles == spec.end() || !roles->is_object())
      fail<FormatError>("tokenizer spec: 'tokens' needs 'control' (an array of ids) and 'roles' (an object)");
    std::vector<std::pair<std::string, std::int32_t>> vocab;
    for (const auto& t : *tokens) {
      if (!t.is_string()) fail<FormatError>("tokenizer spec: 'tokens' must be an array of strings");
      if (vocab.size() > static_cast<std::size_t>(kMaxTokenId))
        fail<FormatError>("tokenizer spec: more than {} tokens", kMaxTokenId + 1);
      vocab.emplace_back(t.get<std::string>(), static_cast<std::int32_t>(vocab.size()));
    }
    ExplicitSpecials specials;
    for (const auto& id : *control) {
      if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() > kMaxTokenId)
        fail<FormatError>("tokenizer spec: control id {} is not a token id", id.dump());
      specials.control.push_back(id.get<std::int32_t>());
    }
    specials.roles = {optional_id(*roles, "bos"), optional_id(*roles, "eos"), optional_id(*roles, "pad"),
                      optional_id(*roles, "unk"), {}, roles->value("add_bos", false), roles->value("add_eos", false)};
    const auto ignore = spec.find("ignore_merges");
    if (ignore != spec.end() && !ignore->is_boolean())
      fail<FormatError>("tokenizer spec: 'ignore_merges' must be true or false");
    return ByteLevelBpe(Impl::build(std::move(vocab), "tokenizer spec 'tokens'", lines, "tokenizer spec 'merges'",
                                    std::move(added), pre_tokenizer, &specials,
                                    ignore != spec.end() && ignore->get<bool>()));
  }
  const auto vocab = spec.find("vocab");
  if (vocab == spec.end()) fail<FormatError>("tokenizer spec: missing field 'vocab'");
  return ByteLevelBpe(Impl::build(vocab_pairs(*vocab, "tokenizer spec 'vocab'"), "tokenizer spec 'vocab'", lines,
                                  "tokenizer spec 'merges'", std::move(added), pre_tokenizer, nullptr, false));
}

nlohmann::json ByteLevelBpe::to_json() const {
  std::string merges = "#version: 0.2\n";
  for (const auto& [left, right] : impl_->merges)
    merges.append(impl_->token_text[left]).append(" ").append(impl_->token_text[right]).append("\n");
  if (impl_->listed_by_id) {
    const SpecialTokens& r = impl_->roles;
    const auto id = [](const std::optional<std::int32_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
    return {{"kind", "byte_bpe"},
            {"tokens", impl_->token_text},
            {"merges", std::move(merges)},
            {"control", r.control},
            {"roles",
             {{"bos", id(r.bos)}, {"eos", id(r.eos)}, {"pad", id(r.pad)}, {"unk", id(r.unk)},
              {"add_bos", r.add_bos}, {"add_eos", r.add_eos}}},
            {"ignore_merges", impl_->ignore_merges},
            {"pre", impl_->pre->name()}};
  }
  nlohmann::json vocab = nlohmann::json::object();
  for (const auto& [token, id] : impl_->vocab) vocab[token] = id;
  return {{"kind", "byte_bpe"},
          {"vocab", std::move(vocab)},
          {"merges", std::move(merges)},
          {"added_tokens", impl_->added},
          {"pre", impl_->pre->name()}};
}

// The special token that starts at `pos`, if any.
const std::pair<std::string, std::int32_t>* ByteLevelBpe::Impl::special_at(std::string_view text,
                                                                            std::size_t pos) const {
  if (!special_lead[static_cast<unsigned char>(text[pos])]) return nullptr;
  for (const auto& s : specials)
    if (text.substr(pos).starts_with(s.first)) return &s;
  return nullptr;
}

// Applies the merges to one piece, lowest rank first and leftmost first among equals (what
// GPT-2's loop computes), with a heap so a long piece costs O(n log n). Symbols form a linked
// list over the piece's bytes; heap entries that no longer match their pair are skipped.
void ByteLevelBpe::Impl::bpe(std::string_view piece, std::vector<std::int32_t>& out, Scratch& scratch) const {
  const auto n = static_cast<std::int32_t>(piece.size());
  if (n == 1) {
    out.push_back(byte_id[static_cast<unsigned char>(piece[0])]);
    return;
  }
  if (ignore_merges) {  // a piece that is a token as a whole is that token (never a control one)
    std::string symbols;
    for (const char c : piece) symbols += byte_level().symbol[static_cast<unsigned char>(c)];
    if (const auto it = token_ids.find(symbols);
        it != token_ids.end() && !std::binary_search(roles.control.begin(), roles.control.end(), it->second)) {
      out.push_back(it->second);
      return;
    }
  }
  auto& id = scratch.id;
  auto& prev = scratch.prev;
  auto& next = scratch.next;
  auto& heap = scratch.heap;
  id.resize(n);
  prev.resize(n);
  next.resize(n);
  heap.clear();
  for (std::int32_t i = 0; i < n; ++i) {
    id[i] = byte_id[static_cast<unsigned char>(piece[i])];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  const auto push = [&](std::int32_t i) {
    const std::int32_t j = next[i];
    if (j < 0) return;
    if (const MergeTable::Entry* m = merge_table.find(id[i], id[j])) {
      heap.push_back({m->rank, i, id[i], id[j], m->merged});
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
    }
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const HeapEntry e = heap.back();
    heap.pop_back();
    const std::int32_t i = e.pos, j = next[i];
    if (id[i] != e.left || j < 0 || id[j] != e.right) continue;  // stale
    id[i] = e.merged;
    id[j] = -1;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    if (prev[i] >= 0) push(prev[i]);
    push(i);
  }
  for (std::int32_t i = 0; i >= 0; i = next[i]) out.push_back(id[i]);
}

void ByteLevelBpe::Impl::encode_ordinary(std::string_view text, std::vector<std::int32_t>& out,
                                         Scratch& scratch) const {
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t end = pre->piece_end(text, pos);
    if (!lacks_bytes) {
      bpe(text.substr(pos, end - pos), out, scratch);
    } else {  // the runs between bytes without a token
      for (std::size_t run = pos; run < end;) {
        std::size_t stop = run;
        while (stop < end && byte_id[static_cast<unsigned char>(text[stop])] >= 0) ++stop;
        if (stop > run) bpe(text.substr(run, stop - run), out, scratch);
        run = stop + 1;
      }
    }
    pos = end;
  }
}

std::vector<std::int32_t> ByteLevelBpe::encode(std::string_view text, ControlText control) const {
  if (const auto bad = utf8_error_offset(text))
    fail<InputError>("text to tokenize is not valid UTF-8 at byte offset {} (byte 0x{:02X})", *bad,
                     static_cast<unsigned char>(text[*bad]));
  std::vector<std::int32_t> out;
  out.reserve(text.size() / 3 + 4);
  Scratch scratch;
  if (control == ControlText::as_text) {
    impl_->encode_ordinary(text, out, scratch);
    return out;
  }
  std::size_t start = 0;  // of the stretch since the last special token
  for (std::size_t pos = 0; pos < text.size();) {
    const auto* special = impl_->special_at(text, pos);
    if (!special) {
      ++pos;
      continue;
    }
    impl_->encode_ordinary(text.substr(start, pos - start), out, scratch);
    out.push_back(special->second);
    pos += special->first.size();
    start = pos;
  }
  impl_->encode_ordinary(text.substr(start), out, scratch);
  return out;
}

const std::string& ByteLevelBpe::Impl::checked(const std::vector<std::string>& table, std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= assigned.size() || !assigned[id])
    fail<InputError>("token id {} is not in the vocabulary (size {})", id, assigned.size());
  return table[id];
}

void ByteLevelBpe::append_bytes(std::int32_t id, std::string& out) const {
  out += impl_->checked(impl_->token_bytes, id);
}

std::optional<std::int32_t> ByteLevelBpe::token_to_id(std::string_view token) const {
  if (auto it = impl_->token_ids.find(std::string(token)); it != impl_->token_ids.end()) return it->second;
  return std::nullopt;
}

std::string ByteLevelBpe::id_to_token(std::int32_t id) const { return impl_->checked(impl_->token_text, id); }

std::int32_t ByteLevelBpe::vocab_size() const { return static_cast<std::int32_t>(impl_->assigned.size()); }

const SpecialTokens& ByteLevelBpe::special_tokens() const { return impl_->roles; }

}  // namespace ecr::text
