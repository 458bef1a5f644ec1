// KnowledgeGraph: the entities, relations and items of the ECR/UniCRS knowledge graph and its
// R-GCN edges (docs/math.md section 3): every triple (h, r, t) gives h->t and t->h with relation r,
// without duplicates, plus a self loop on the padding entity with relation 0. Entities are
// 0..N-1 with N = max id + 2; the last one is the padding entity.
//
// The edges are kept as one relation-major CSR by target (docs/format.md, "Knowledge graph"):
// the sources j of the edges j -> i with relation r are
// sources[indptr[r * N + i] .. indptr[r * N + i + 1]), in ascending order. That is what the
// R-GCN's mean aggregation reads, and, because every edge has its reverse, also each entity's
// one-hop neighbours by relation. Immutable after construction; copies share the data.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ecr/io/bundle.hpp"

namespace ecr {

// Stored as a byte in kg/entity_types; the numbers are part of the format.
enum class EntityType : std::uint8_t { other = 0, movie = 1, genre = 2, person = 3 };
std::string_view entity_type_name(EntityType type);

// docs/math.md section 8: a DBpedia URI "<http://dbpedia.org/resource/The_Matrix>" reads "The Matrix"
// (last path segment, %XX decoded when that gives UTF-8, '_' as space); any other key is already
// a name and comes back unchanged. tools/ecr_kg.py's display_name is the same function.
std::string kg_display_name(std::string_view key);

class KnowledgeGraph {
 public:
  // The sources of the edges into each target for one relation: indptr has N + 1 entries that
  // index `sources` of the whole graph (not rebased), so indptr[i]..indptr[i+1] are i's sources.
  struct RelationEdges {
    std::span<const std::int64_t> indptr;
    std::span<const std::int32_t> sources;
  };

  // Reads metadata "kg" and the kg/* tensors, validating every offset and id. Throws
  // FormatError (content, naming the tensor) or ShapeError (a tensor's dtype or shape).
  static KnowledgeGraph load(const Bundle& bundle);
  // Reads a UniCRS/ECR folder: entity2id.json, kg.json or dbpedia_subkg.json (head id ->
  // [[relation id, tail id], ...]), relation2id.json, item_ids.json and, if present,
  // entity2type.json. Throws IoError (unreadable) or FormatError naming the file and the field.
  static KnowledgeGraph from_files(const std::filesystem::path& dir);

  std::int64_t num_entities() const;  // N, the padding entity included
  std::int64_t pad_entity() const;    // N - 1
  std::int64_t num_relations() const;
  std::int64_t num_edges() const;
  const std::string& relation_name(std::int64_t relation) const;
  std::optional<std::int64_t> relation_id(std::string_view name) const;
  // Where the triples came from ("kg.json", "dbpedia_subkg.json").
  const std::string& source() const;

  // Accessors taking an id throw InputError when it is not an entity (relation) id.
  bool contains(std::int64_t id) const { return 0 <= id && id < num_entities(); }
  // The entity2id key ("<http://dbpedia.org/resource/The_Matrix>", "The Matrix (1999)").
  // Empty for the padding entity and for ids entity2id.json skips.
  std::string_view entity_key(std::int64_t id) const;
  // kg_display_name of the key.
  std::string_view entity_name(std::int64_t id) const;
  EntityType entity_type(std::int64_t id) const;
  // The entity with this key, else the lowest id with this display name.
  std::optional<std::int64_t> entity_id(std::string_view key_or_name) const;

  bool is_item(std::int64_t id) const;
  // The recommendable movies, in item_ids.json order.
  std::span<const std::int32_t> items() const;

  // The whole CSR: edge_indptr() has num_relations * N + 1 entries.
  std::span<const std::int64_t> edge_indptr() const;
  std::span<const std::int32_t> edge_sources() const;
  RelationEdges relation_edges(std::int64_t relation) const;
  // Entities linked to `id` by `relation` in either direction of a triple, ascending.
  std::span<const std::int32_t> neighbours(std::int64_t id, std::int64_t relation) const;

 private:
  struct Impl;
  explicit KnowledgeGraph(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  static KnowledgeGraph finish(std::shared_ptr<Impl> impl);
  void check_entity(std::int64_t id) const;
  void check_relation(std::int64_t relation) const;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ecr
