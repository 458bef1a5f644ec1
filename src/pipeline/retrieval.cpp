#include "retrieval.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "reply_text.hpp"

namespace ecr::responder {

namespace {

// Relations that one KG names differently from another (the shared ReDial KG says "star").
const std::multimap<std::string, std::string, std::less<>> kRelationAliases = {{"starring", "star"}};

// The first `count` of a uniform random permutation (a partial Fisher-Yates shuffle).
template <class T>
std::vector<T> sample(std::vector<T> pool, std::size_t count, std::mt19937_64& rng) {
  count = std::min(count, pool.size());
  for (std::size_t i = 0; i < count; ++i) {
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    const std::size_t j = i + std::min(pool.size() - i - 1, static_cast<std::size_t>(u * static_cast<double>(pool.size() - i)));
    std::swap(pool[i], pool[j]);
  }
  pool.resize(count);
  return pool;
}

std::optional<std::int64_t> find_relation(const KnowledgeGraph& kg, std::string_view name) {
  for (std::int64_t r = 0; r < kg.num_relations(); ++r)
    if (kg.relation_name(r) == name || kg_display_name(kg.relation_name(r)) == name) return r;
  return std::nullopt;
}

// Edges of entity `id` over all relations: how well the KG knows it.
std::int64_t degree(const KnowledgeGraph& kg, std::int64_t id) {
  std::int64_t edges = 0;
  for (std::int64_t r = 0; r < kg.num_relations(); ++r) edges += static_cast<std::int64_t>(kg.neighbours(id, r).size());
  return edges;
}

}  // namespace

std::vector<KnowledgeRelation> resolve_relations(const KnowledgeGraph& kg, std::span<const std::string> names,
                                                 bool required) {
  std::vector<KnowledgeRelation> out;
  for (const std::string& name : names) {
    std::optional<std::int64_t> id = find_relation(kg, name);
    for (auto [it, end] = kRelationAliases.equal_range(name); !id && it != end; ++it) id = find_relation(kg, it->second);
    if (id) {
      out.push_back({*id, name});
    } else if (required) {
      std::string known;
      for (std::int64_t r = 0; r < kg.num_relations(); ++r) known += (r ? ", " : "") + kg.relation_name(r);
      fail<ConfigError>("knowledge relation '{}' is not a relation of the KG (it has: {})", name, known);
    }
  }
  return out;
}

std::vector<std::string> choose_review_entities(const ReviewStore& store, std::span<const PromptItem> items,
                                                std::size_t count, std::mt19937_64* rng) {
  std::map<std::string, std::int64_t, std::less<>> counts;  // name -> count, pooled over the items
  for (const PromptItem& item : items)
    for (const ReviewStore::Entry& e : store.find(item.kg_id, item.name)) counts[e.entity] += e.count;
  std::vector<std::pair<std::string, std::int64_t>> pool(counts.begin(), counts.end());  // by name
  if (rng) {
    pool = sample(std::move(pool), count, *rng);
  } else {
    std::stable_sort(pool.begin(), pool.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    pool.resize(std::min(count, pool.size()));
  }
  std::vector<std::string> names;
  for (auto& [name, n] : pool) names.push_back(std::move(name));
  return names;
}

std::vector<KnowledgeTriple> choose_knowledge(const KnowledgeGraph& kg, std::span<const PromptItem> items,
                                              std::span<const KnowledgeRelation> relations, std::size_t count,
                                              std::mt19937_64* rng) {
  struct Candidate {
    KnowledgeTriple triple;
    std::int64_t degree = 0;
    std::size_t relation = 0;  // position in `relations`
  };
  std::vector<Candidate> pool;
  std::set<std::string> seen;
  for (const PromptItem& item : items) {
    if (!item.kg_id) continue;
    for (std::size_t r = 0; r < relations.size(); ++r)
      for (const std::int32_t n : kg.neighbours(*item.kg_id, relations[r].id)) {
        if (n == kg.pad_entity() || n == *item.kg_id) continue;
        std::string entity = without_parenthetical(kg.entity_name(n));
        if (entity.empty()) continue;
        KnowledgeTriple t{item.name, relations[r].name, std::move(entity)};
        if (!seen.insert(t.text()).second) continue;
        pool.push_back({std::move(t), degree(kg, n), r});
      }
  }
  if (rng) {
    pool = sample(std::move(pool), count, *rng);
  } else {
    std::stable_sort(pool.begin(), pool.end(), [](const Candidate& a, const Candidate& b) {
      if (a.degree != b.degree) return a.degree > b.degree;
      if (a.triple.entity != b.triple.entity) return a.triple.entity < b.triple.entity;
      return a.relation < b.relation;
    });
    pool.resize(std::min(count, pool.size()));
  }
  std::vector<KnowledgeTriple> out;
  for (Candidate& c : pool) out.push_back(std::move(c.triple));
  return out;
}

}  // namespace ecr::responder
