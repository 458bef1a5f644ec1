// Loading the knowledge graph from a bundle (views, validated) or from the UniCRS/ECR JSON files
// (built here, the way tools/ecr_kg.py builds the bundle's tensors). Both end in finish(), so a
// graph from either source has passed the same checks.
#include "ecr/kg/knowledge_graph.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <limits>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "ecr/core/utf8.hpp"
#include "words.hpp"

namespace ecr {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Entity ids are stored as i32 (R-GCN sources, items); the padding entity needs one more.
constexpr std::int64_t kMaxEntityId = std::numeric_limits<std::int32_t>::max() - 2;

}  // namespace

std::string_view entity_type_name(EntityType type) {
  switch (type) {
    case EntityType::other: return "other";
    case EntityType::movie: return "movie";
    case EntityType::genre: return "genre";
    case EntityType::person: return "person";
  }
  return "other";
}

std::string kg_display_name(std::string_view key) {
  if (key.size() < 2 || key.front() != '<' || key.back() != '>') return std::string(key);
  std::string_view s = key.substr(1, key.size() - 2);
  if (auto slash = s.rfind('/'); slash != std::string_view::npos) s = s.substr(slash + 1);
  std::string decoded = kg_words::percent_decode(s);
  std::replace(decoded.begin(), decoded.end(), '_', ' ');
  return kg_words::collapse_spaces(decoded);
}

struct KnowledgeGraph::Impl {
  std::string label;  // the bundle or folder, for messages
  std::int64_t n = 0;
  std::vector<std::string> relations;
  std::string source;
  Tensor key_offsets, key_bytes;    // i64 [N + 1], u8
  Tensor name_offsets, name_bytes;  // undefined when the keys are the names
  Tensor types;                     // u8 [N]
  Tensor items;                     // i32 [I]
  Tensor indptr;                    // i64 [R * N + 1]
  Tensor sources;                   // i32 [E]
  std::vector<std::uint8_t> item_mask;
  std::unordered_map<std::string_view, std::int64_t> ids;

  static std::string_view string_at(const Tensor& offsets, const Tensor& bytes, std::int64_t i) {
    const auto* off = offsets.data<std::int64_t>();
    const auto* b = reinterpret_cast<const char*>(bytes.data<std::uint8_t>());
    return {b + off[i], static_cast<std::size_t>(off[i + 1] - off[i])};
  }
  std::string_view key(std::int64_t i) const { return string_at(key_offsets, key_bytes, i); }
  std::string_view name(std::int64_t i) const {
    return name_offsets.defined() ? string_at(name_offsets, name_bytes, i) : key(i);
  }
};

namespace {

// Offsets must start at 0, never decrease and end at the blob's size; every string is UTF-8.
void check_strings(const std::string& label, std::string_view name, const Tensor& offsets, const Tensor& bytes) {
  const auto off = offsets.span<std::int64_t>();
  const auto size = bytes.numel();
  if (off.front() != 0) fail<FormatError>("{}: tensor '{}/offsets': must start at 0, found {}", label, name, off.front());
  for (std::size_t i = 0; i + 1 < off.size(); ++i)
    if (off[i + 1] < off[i] || off[i + 1] > size)
      fail<FormatError>("{}: tensor '{}/offsets': entry {} is {}, expected {}..{}", label, name, i + 1, off[i + 1],
                        off[i], size);
  if (off.back() != size)
    fail<FormatError>("{}: tensor '{}/offsets': ends at {}, but '{}/bytes' has {} bytes", label, name, off.back(),
                      name, size);
  const auto* b = reinterpret_cast<const char*>(bytes.data<std::uint8_t>());
  for (std::size_t i = 0; i + 1 < off.size(); ++i) {
    std::string_view s(b + off[i], static_cast<std::size_t>(off[i + 1] - off[i]));
    if (!is_valid_utf8(s)) fail<FormatError>("{}: tensor '{}': string {} is not valid UTF-8", label, name, i);
  }
}

}  // namespace

// Checks everything the accessors rely on and builds the lookup tables.
KnowledgeGraph KnowledgeGraph::finish(std::shared_ptr<Impl> g) {
  const std::string& label = g->label;
  const std::int64_t n = g->n;
  const auto r = static_cast<std::int64_t>(g->relations.size());
  if (n < 2 || n - 2 > kMaxEntityId) fail<FormatError>("{}: {} entities: expected 2..{}", label, n, kMaxEntityId + 2);
  if (r < 1) fail<FormatError>("{}: the graph has no relations", label);

  check_strings(label, "kg/entity_keys", g->key_offsets, g->key_bytes);
  if (g->name_offsets.defined()) check_strings(label, "kg/entity_names", g->name_offsets, g->name_bytes);

  const auto types = g->types.span<std::uint8_t>();
  for (std::size_t i = 0; i < types.size(); ++i)
    if (types[i] > static_cast<std::uint8_t>(EntityType::person))
      fail<FormatError>("{}: tensor 'kg/entity_types': entry {} is {}, not a type code 0..3", label, i, types[i]);

  g->item_mask.assign(static_cast<std::size_t>(n), 0);
  const auto items = g->items.span<std::int32_t>();
  for (std::size_t k = 0; k < items.size(); ++k) {
    const std::int32_t id = items[k];
    if (id < 0 || id >= n - 1)
      fail<FormatError>("{}: tensor 'kg/items': item {} is {}, not an entity id in [0, {})", label, k, id, n - 1);
    if (g->item_mask[id]) fail<FormatError>("{}: tensor 'kg/items': entity {} is listed twice", label, id);
    g->item_mask[id] = 1;
  }

  const auto indptr = g->indptr.span<std::int64_t>();
  const auto sources = g->sources.span<std::int32_t>();
  const auto e = static_cast<std::int64_t>(sources.size());
  if (indptr.front() != 0) fail<FormatError>("{}: tensor 'kg/edges/indptr': must start at 0, found {}", label, indptr.front());
  for (std::size_t s = 0; s + 1 < indptr.size(); ++s) {
    const std::int64_t begin = indptr[s], end = indptr[s + 1];
    if (end < begin || end > e)
      fail<FormatError>("{}: tensor 'kg/edges/indptr': entry {} is {}, expected {}..{}", label, s + 1, end, begin, e);
    // Ascending sources without repeats: a duplicate edge would change the R-GCN's means.
    for (std::int64_t k = begin; k < end; ++k) {
      if (sources[k] < 0 || sources[k] >= n)
        fail<FormatError>("{}: tensor 'kg/edges/sources': edge {} comes from {}, not an entity id in [0, {})", label,
                          k, sources[k], n);
      if (k > begin && sources[k] <= sources[k - 1])
        fail<FormatError>("{}: tensor 'kg/edges/sources': edges {} and {} (relation {}, target {}) are not ascending "
                          "and distinct", label, k - 1, k, static_cast<std::int64_t>(s) / n,
                          static_cast<std::int64_t>(s) % n);
    }
  }
  if (indptr.back() != e)
    fail<FormatError>("{}: tensor 'kg/edges/indptr': ends at {}, but there are {} edges", label, indptr.back(), e);

  // Keys first, so that a key always finds its own entity; then display names, lowest id first.
  for (std::int64_t i = 0; i < n; ++i)
    if (auto k = g->key(i); !k.empty()) g->ids.try_emplace(k, i);
  if (g->name_offsets.defined())
    for (std::int64_t i = 0; i < n; ++i)
      if (auto k = g->name(i); !k.empty()) g->ids.try_emplace(k, i);
  return KnowledgeGraph(std::move(g));
}

KnowledgeGraph KnowledgeGraph::load(const Bundle& bundle) {
  auto g = std::make_shared<Impl>();
  g->label = fmt::format("bundle '{}'", bundle.label());
  const json& meta = bundle.metadata();
  if (!meta.contains("kg") || !meta["kg"].is_object())
    fail<FormatError>("{}: no knowledge graph (metadata 'kg' is missing)", g->label);
  const json& kg = meta["kg"];
  auto field = [&](const char* name) -> const json& {
    if (!kg.contains(name)) fail<FormatError>("{}: metadata 'kg' has no '{}'", g->label, name);
    return kg[name];
  };
  const json& num = field("num_entities");
  if (!num.is_number_integer() || num.get<std::int64_t>() < 2 || num.get<std::int64_t>() - 2 > kMaxEntityId)
    fail<FormatError>("{}: metadata kg.num_entities must be an integer in 2..{}", g->label, kMaxEntityId + 2);
  g->n = num.get<std::int64_t>();
  const json& pad = field("pad_entity");
  if (!pad.is_number_integer() || pad.get<std::int64_t>() != g->n - 1)
    fail<FormatError>("{}: metadata kg.pad_entity must be num_entities - 1 = {}", g->label, g->n - 1);
  const json& relations = field("relations");
  if (!relations.is_array() || relations.empty())
    fail<FormatError>("{}: metadata kg.relations must be a non-empty array of names", g->label);
  for (const auto& rel : relations) {
    if (!rel.is_string()) fail<FormatError>("{}: metadata kg.relations must hold strings", g->label);
    g->relations.push_back(rel.get<std::string>());
  }
  if (kg.contains("source") && kg["source"].is_string()) g->source = kg["source"].get<std::string>();

  const std::int64_t n = g->n, r = static_cast<std::int64_t>(g->relations.size());
  auto blob = [&](const std::string& name) {
    Tensor t = bundle.tensor(name);
    t.expect_rank(DType::u8, 1);
    return t;
  };
  g->key_offsets = bundle.tensor("kg/entity_keys/offsets", DType::i64, {n + 1});
  g->key_bytes = blob("kg/entity_keys/bytes");
  if (bundle.contains("kg/entity_names/offsets")) {
    g->name_offsets = bundle.tensor("kg/entity_names/offsets", DType::i64, {n + 1});
    g->name_bytes = blob("kg/entity_names/bytes");
  }
  g->types = bundle.tensor("kg/entity_types", DType::u8, {n});
  g->items = bundle.tensor("kg/items");
  g->items.expect_rank(DType::i32, 1);
  g->indptr = bundle.tensor("kg/edges/indptr", DType::i64, {r * n + 1});
  g->sources = bundle.tensor("kg/edges/sources");
  g->sources.expect_rank(DType::i32, 1);
  return finish(std::move(g));
}

// --- from the JSON files -------------------------------------------------------------------------

namespace {

json read_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>("{}: cannot open", path.string());
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    fail<FormatError>("{}: not valid JSON: {}", path.string(), printable(e.what()));
  }
}

// An id in [0, limit) from a JSON number; nullopt for anything else.
std::optional<std::int64_t> as_id(const json& v, std::int64_t limit) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u < static_cast<std::uint64_t>(limit)) return static_cast<std::int64_t>(u);
  } else if (v.is_number_integer()) {
    const auto i = v.get<std::int64_t>();
    if (i >= 0 && i < limit) return i;
  }
  return std::nullopt;
}

// "0" or a decimal without leading zeros, as the kg.json head keys are written.
std::optional<std::int64_t> parse_head(std::string_view s) {
  if (s.empty() || s.size() > 10 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

// A list of strings as offsets (i64, size + 1) and UTF-8 bytes, the bundle's layout.
Tensor strings_tensor(const std::vector<std::string>& values, Tensor& offsets_out) {
  std::vector<std::int64_t> offsets{0};
  std::vector<std::uint8_t> bytes;
  for (const auto& v : values) {
    bytes.insert(bytes.end(), v.begin(), v.end());
    offsets.push_back(static_cast<std::int64_t>(bytes.size()));
  }
  offsets_out = Tensor::from_vector(offsets, {static_cast<std::int64_t>(offsets.size())});
  return Tensor::from_vector(bytes, {static_cast<std::int64_t>(bytes.size())});
}

}  // namespace

KnowledgeGraph KnowledgeGraph::from_files(const fs::path& dir) {
  auto g = std::make_shared<Impl>();
  g->label = dir.string();

  const fs::path entity_path = dir / "entity2id.json";
  const json entity2id = read_json(entity_path);
  if (!entity2id.is_object() || entity2id.empty())
    fail<FormatError>("{}: expected a non-empty object of name -> id", entity_path.string());
  std::int64_t max_id = -1;
  for (auto it = entity2id.begin(); it != entity2id.end(); ++it) {
    auto id = as_id(it.value(), kMaxEntityId + 1);
    if (!id) fail<FormatError>("{}: entity '{}': id must be an integer in [0, {}], got {}", entity_path.string(),
                               it.key(), kMaxEntityId, it.value().dump());
    max_id = std::max(max_id, *id);
  }
  g->n = max_id + 2;
  const std::int64_t n = g->n;
  std::vector<std::string> keys(static_cast<std::size_t>(n));
  for (auto it = entity2id.begin(); it != entity2id.end(); ++it) {
    const auto id = *as_id(it.value(), n);
    if (it.key().empty()) fail<FormatError>("{}: id {} has an empty name", entity_path.string(), id);
    if (!keys[id].empty())
      fail<FormatError>("{}: id {} is given to both '{}' and '{}'", entity_path.string(), id, keys[id], it.key());
    keys[id] = it.key();
  }

  const fs::path relation_path = dir / "relation2id.json";
  const json relation2id = read_json(relation_path);
  if (!relation2id.is_object() || relation2id.empty())
    fail<FormatError>("{}: expected a non-empty object of name -> id", relation_path.string());
  const auto r = static_cast<std::int64_t>(relation2id.size());
  g->relations.assign(static_cast<std::size_t>(r), {});
  std::vector<bool> seen_relation(static_cast<std::size_t>(r), false);
  for (auto it = relation2id.begin(); it != relation2id.end(); ++it) {
    auto id = as_id(it.value(), r);
    if (!id || seen_relation[*id])
      fail<FormatError>("{}: relation '{}': ids must be 0..{}, each once; got {}", relation_path.string(), it.key(),
                        r - 1, it.value().dump());
    seen_relation[*id] = true;
    g->relations[*id] = it.key();
  }

  g->source = fs::exists(dir / "kg.json") ? "kg.json" : "dbpedia_subkg.json";
  const fs::path kg_path = dir / g->source;
  if (!fs::exists(kg_path)) fail<IoError>("{}: neither kg.json nor dbpedia_subkg.json is there", dir.string());
  const json kg = read_json(kg_path);
  if (!kg.is_object()) fail<FormatError>("{}: expected an object of head id -> [[relation, tail], ...]", kg_path.string());
  // (relation, target, source) for both directions of every triple, plus the padding self loop.
  std::vector<std::array<std::int32_t, 3>> edges;
  edges.push_back({0, static_cast<std::int32_t>(n - 1), static_cast<std::int32_t>(n - 1)});
  for (auto it = kg.begin(); it != kg.end(); ++it) {
    const auto head = parse_head(it.key());
    if (!head || *head >= n - 1)
      fail<FormatError>("{}: head '{}': not an entity id in [0, {})", kg_path.string(), it.key(), n - 1);
    if (!it.value().is_array())
      fail<FormatError>("{}: head {}: expected a list of [relation, tail] pairs", kg_path.string(), *head);
    std::size_t k = 0;
    for (const auto& pair : it.value()) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_integer() || !pair[1].is_number_integer())
        fail<FormatError>("{}: head {}, pair {}: expected [relation id, tail id]", kg_path.string(), *head, k);
      const auto rel = as_id(pair[0], r);
      if (!rel) fail<FormatError>("{}: head {}, pair {}: relation {} not in [0, {})", kg_path.string(), *head, k,
                                  pair[0].dump(), r);
      const auto tail = as_id(pair[1], n - 1);
      if (!tail) fail<FormatError>("{}: head {}, pair {}: tail {} not in [0, {})", kg_path.string(), *head, k,
                                   pair[1].dump(), n - 1);
      const auto rr = static_cast<std::int32_t>(*rel), h = static_cast<std::int32_t>(*head),
                 t = static_cast<std::int32_t>(*tail);
      edges.push_back({rr, t, h});
      edges.push_back({rr, h, t});
      ++k;
    }
  }
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  std::vector<std::int64_t> indptr(static_cast<std::size_t>(r * n + 1), 0);
  std::vector<std::int32_t> sources;
  sources.reserve(edges.size());
  for (const auto& [rel, target, source] : edges) {
    ++indptr[static_cast<std::size_t>(rel * n + target + 1)];
    sources.push_back(source);
  }
  for (std::size_t i = 1; i < indptr.size(); ++i) indptr[i] += indptr[i - 1];

  const fs::path item_path = dir / "item_ids.json";
  const json item_ids = read_json(item_path);
  if (!item_ids.is_array()) fail<FormatError>("{}: expected a list of entity ids", item_path.string());
  std::vector<std::int32_t> items;
  std::vector<bool> listed(static_cast<std::size_t>(n), false);
  for (const auto& v : item_ids) {
    auto id = as_id(v, n - 1);
    if (!id) fail<FormatError>("{}: item {}: {} is not an entity id in [0, {})", item_path.string(), items.size(),
                               v.dump(), n - 1);
    if (listed[*id]) fail<FormatError>("{}: item {}: id {} is listed twice", item_path.string(), items.size(), *id);
    listed[*id] = true;
    items.push_back(static_cast<std::int32_t>(*id));
  }

  std::vector<std::uint8_t> types(static_cast<std::size_t>(n), 0);
  if (const fs::path type_path = dir / "entity2type.json"; fs::exists(type_path)) {
    const json entity2type = read_json(type_path);
    if (!entity2type.is_object()) fail<FormatError>("{}: expected an object of name -> type", type_path.string());
    for (auto it = entity2type.begin(); it != entity2type.end(); ++it) {
      auto id = entity2id.find(it.key());
      if (id == entity2id.end()) continue;
      const std::string type = it.value().is_string() ? it.value().get<std::string>() : "";
      types[id->get<std::size_t>()] = type == "movie"    ? 1
                                      : type == "genre"  ? 2
                                      : type == "person" ? 3
                                                         : 0;
    }
  }
  for (auto id : items)
    if (types[id] == 0) types[id] = static_cast<std::uint8_t>(EntityType::movie);

  std::vector<std::string> names(keys.size());
  bool names_differ = false;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    names[i] = kg_display_name(keys[i]);
    names_differ |= names[i] != keys[i];
  }

  g->key_bytes = strings_tensor(keys, g->key_offsets);
  if (names_differ) g->name_bytes = strings_tensor(names, g->name_offsets);
  g->types = Tensor::from_vector(types, {n});
  g->items = Tensor::from_vector(items, {static_cast<std::int64_t>(items.size())});
  g->indptr = Tensor::from_vector(indptr, {static_cast<std::int64_t>(indptr.size())});
  g->sources = Tensor::from_vector(sources, {static_cast<std::int64_t>(sources.size())});
  return finish(std::move(g));
}

// --- accessors -------------------------------------------------------------------------------

void KnowledgeGraph::check_entity(std::int64_t id) const {
  if (!contains(id)) fail<InputError>("knowledge graph: {} is not an entity id (0..{})", id, impl_->n - 1);
}

void KnowledgeGraph::check_relation(std::int64_t relation) const {
  if (relation < 0 || relation >= num_relations())
    fail<InputError>("knowledge graph: {} is not a relation id (0..{})", relation, num_relations() - 1);
}

std::int64_t KnowledgeGraph::num_entities() const { return impl_->n; }
std::int64_t KnowledgeGraph::pad_entity() const { return impl_->n - 1; }
std::int64_t KnowledgeGraph::num_relations() const { return static_cast<std::int64_t>(impl_->relations.size()); }
std::int64_t KnowledgeGraph::num_edges() const { return impl_->sources.numel(); }
const std::string& KnowledgeGraph::source() const { return impl_->source; }

const std::string& KnowledgeGraph::relation_name(std::int64_t relation) const {
  check_relation(relation);
  return impl_->relations[static_cast<std::size_t>(relation)];
}

std::optional<std::int64_t> KnowledgeGraph::relation_id(std::string_view name) const {
  for (std::size_t r = 0; r < impl_->relations.size(); ++r)
    if (impl_->relations[r] == name) return static_cast<std::int64_t>(r);
  return std::nullopt;
}

std::string_view KnowledgeGraph::entity_key(std::int64_t id) const {
  check_entity(id);
  return impl_->key(id);
}

std::string_view KnowledgeGraph::entity_name(std::int64_t id) const {
  check_entity(id);
  return impl_->name(id);
}

EntityType KnowledgeGraph::entity_type(std::int64_t id) const {
  check_entity(id);
  return static_cast<EntityType>(impl_->types.data<std::uint8_t>()[id]);
}

std::optional<std::int64_t> KnowledgeGraph::entity_id(std::string_view key_or_name) const {
  auto it = impl_->ids.find(key_or_name);
  if (it == impl_->ids.end()) return std::nullopt;
  return it->second;
}

bool KnowledgeGraph::is_item(std::int64_t id) const {
  check_entity(id);
  return impl_->item_mask[static_cast<std::size_t>(id)] != 0;
}

std::span<const std::int32_t> KnowledgeGraph::items() const { return impl_->items.span<std::int32_t>(); }
std::span<const std::int64_t> KnowledgeGraph::edge_indptr() const { return impl_->indptr.span<std::int64_t>(); }
std::span<const std::int32_t> KnowledgeGraph::edge_sources() const { return impl_->sources.span<std::int32_t>(); }

KnowledgeGraph::RelationEdges KnowledgeGraph::relation_edges(std::int64_t relation) const {
  check_relation(relation);
  return {edge_indptr().subspan(static_cast<std::size_t>(relation * impl_->n), static_cast<std::size_t>(impl_->n + 1)),
          edge_sources()};
}

std::span<const std::int32_t> KnowledgeGraph::neighbours(std::int64_t id, std::int64_t relation) const {
  check_entity(id);
  check_relation(relation);
  const auto indptr = edge_indptr();
  const auto at = static_cast<std::size_t>(relation * impl_->n + id);
  return edge_sources().subspan(static_cast<std::size_t>(indptr[at]), static_cast<std::size_t>(indptr[at + 1] - indptr[at]));
}

}  // namespace ecr
