// The knowledge the generator's prompt carries (docs/math.md section 8): review entities of the
// items, and "{movie}'s {relation} is {entity}" triples from their one-hop KG neighbours.
//
// ECR samples both at random (random.sample). Here the default is deterministic, most frequent
// first: review entities by their count in the movie's reviews (summed over the items), KG
// neighbours by how many KG edges they have (the best-known star, writer, studio first); ties
// by name, then by relation order. A seed asks for ECR's behaviour instead: a uniform sample
// without replacement, drawn from std::mt19937_64 with the top-53-bit uniform of lm/sampler.hpp,
// so the same seed gives the same choice on every platform.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "ecr/kg/knowledge_graph.hpp"
#include "ecr/kg/review_store.hpp"
#include "ecr/responder.hpp"

namespace ecr::responder {

// ECR's relations for knowledge (DBpedia.get_one_hop_neighborhood).
inline const std::vector<std::string> kDefaultKnowledgeRelations = {"starring", "writer", "productionCompany",
                                                                    "director", "musicComposer"};

struct KnowledgeRelation {
  std::int64_t id = 0;  // the KG's relation id
  std::string name;     // as the prompt writes it ("starring")
};

// Finds each name among the KG's relations: the name itself, the display name of a DBpedia URI
// key ("<http://dbpedia.org/ontology/starring>"), or an alias ("starring" is the ReDial KG's
// "star"). The prompt keeps the asked-for name, the one the generator was trained with.
// Missing names are skipped unless `required`, which makes them a ConfigError.
std::vector<KnowledgeRelation> resolve_relations(const KnowledgeGraph& kg, std::span<const std::string> names,
                                                 bool required);

// A recommended item as the prompt names it.
struct PromptItem {
  std::optional<std::int64_t> kg_id;  // absent when the id is not a KG entity
  std::string name;                   // "Movie Name" (ECR's entity2name without flag: years kept)
};

// Up to `count` review entity names of the items, pooled (counts added per name).
std::vector<std::string> choose_review_entities(const ReviewStore& store, std::span<const PromptItem> items,
                                                std::size_t count, std::mt19937_64* rng);

// Up to `count` triples over the items' neighbours on `relations`, distinct by text. Neighbour
// names lose their parenthetical part (without_parenthetical), as ECR's id2entity has it.
std::vector<KnowledgeTriple> choose_knowledge(const KnowledgeGraph& kg, std::span<const PromptItem> items,
                                              std::span<const KnowledgeRelation> relations, std::size_t count,
                                              std::mt19937_64* rng);

}  // namespace ecr::responder
