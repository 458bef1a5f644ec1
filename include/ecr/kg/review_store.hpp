// ReviewStore: the review entities of docs/math.md section 8. For each movie, the entities its
// reviews mention and how often; the generator prompt's "Related Entities" come from here.
// tools/ecr_reviews.py builds it from review files (docs/format.md, "Review entities").
//
// Movies are keyed as ECR looks them up in mv2e_review.json: the display name up to its first
// "(" (review_movie_key). A row may also carry the KG item it belongs to; lookups try that id
// first, then the key. Immutable after load; copies share the data.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ecr/io/bundle.hpp"

namespace ecr {

// "The Shining (1980)" -> "The Shining"; a DBpedia URI is read as its display name first. A
// name that starts with "(" keeps its whole text ("(500) Days of Summer").
std::string review_movie_key(std::string_view name);

class ReviewStore {
 public:
  struct Entry {
    std::string entity;       // display name ("Epic film")
    std::int64_t kg_id = -1;  // the KG entity, -1 when the KG has none
    std::int32_t count = 0;   // reviews of the movie that name it
  };
  // A movie's entries as the builder gives them (tests and hosts that bring their own reviews).
  struct Movie {
    std::string key;
    std::int64_t kg_id = -1;
    std::vector<std::pair<std::string, std::int32_t>> entities;  // name, count >= 1
  };

  // True when the bundle carries metadata "review_entities".
  static bool present(const Bundle& bundle);
  // Reads the review_entities/* tensors, checking every offset, index, count and string, and,
  // when `num_entities` is given (the KG's), that every KG id is below it. Throws FormatError
  // naming the tensor (ShapeError for a dtype or shape).
  static ReviewStore load(const Bundle& bundle, std::optional<std::int64_t> num_entities = std::nullopt);
  // InputError on an empty key, a count below 1 or a key given twice.
  static ReviewStore from_movies(std::vector<Movie> movies);

  std::size_t num_movies() const;
  std::size_t num_entities() const;

  // The movie's entities, most frequent first (ties by name): the row of KG item `kg_id` when
  // one is stored, else the row of review_movie_key(name). Empty when neither is there.
  std::vector<Entry> find(std::optional<std::int64_t> kg_id, std::string_view name) const;

 private:
  struct Impl;
  explicit ReviewStore(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ecr
