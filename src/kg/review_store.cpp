#include "ecr/kg/review_store.hpp"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "ecr/core/utf8.hpp"
#include "ecr/kg/knowledge_graph.hpp"

namespace ecr {

namespace {

constexpr std::string_view kPrefix = "review_entities";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// One string table (offsets i64 [count + 1], bytes u8), checked and copied out.
std::vector<std::string> read_strings(const Bundle& bundle, std::string_view name, std::int64_t count) {
  const std::string off_name = fmt::format("{}/{}/offsets", kPrefix, name);
  const std::string bytes_name = fmt::format("{}/{}/bytes", kPrefix, name);
  const Tensor offsets = bundle.tensor(off_name, DType::i64, {count + 1});
  const Tensor bytes_t = bundle.tensor(bytes_name);
  if (bytes_t.dtype() != DType::u8 || bytes_t.rank() != 1)
    fail<ShapeError>("{}: tensor '{}': expected u8 with one dimension, found {} {}", bundle.label(), bytes_name,
                     dtype_name(bytes_t.dtype()), shape_string(bytes_t.shape()));
  const auto off = offsets.span<std::int64_t>();
  const std::string_view bytes(reinterpret_cast<const char*>(bytes_t.data<std::uint8_t>()),
                               static_cast<std::size_t>(bytes_t.numel()));
  if (off.front() != 0) fail<FormatError>("{}: tensor '{}': must start at 0, found {}", bundle.label(), off_name, off[0]);
  std::vector<std::string> out;
  out.reserve(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i + 1 < off.size(); ++i) {
    if (off[i + 1] < off[i] || off[i + 1] > static_cast<std::int64_t>(bytes.size()))
      fail<FormatError>("{}: tensor '{}': entry {} is {}, expected {}..{}", bundle.label(), off_name, i + 1,
                        off[i + 1], off[i], bytes.size());
    std::string_view s = bytes.substr(static_cast<std::size_t>(off[i]), static_cast<std::size_t>(off[i + 1] - off[i]));
    if (s.empty() || !is_valid_utf8(s))
      fail<FormatError>("{}: tensor '{}': string {} is empty or not UTF-8", bundle.label(), bytes_name, i);
    out.emplace_back(s);
  }
  if (off.back() != static_cast<std::int64_t>(bytes.size()))
    fail<FormatError>("{}: tensor '{}': ends at {}, but '{}' has {} bytes", bundle.label(), off_name, off.back(),
                      bytes_name, bytes.size());
  return out;
}

std::int64_t meta_count(const Bundle& bundle, const nlohmann::json& meta, const char* field) {
  const auto it = meta.find(field);
  if (it == meta.end() || !it->is_number_integer() || it->get<std::int64_t>() < 0 ||
      it->get<std::int64_t>() >= (std::int64_t{1} << 31))
    fail<FormatError>("{}: metadata review_entities.{} must be an integer in [0, 2^31)", bundle.label(), field);
  return it->get<std::int64_t>();
}

}  // namespace

std::string review_movie_key(std::string_view name) {
  const std::string display = kg_display_name(name);
  const std::string_view whole = trim(display);
  const std::string_view key = trim(whole.substr(0, whole.find('(')));
  return std::string(key.empty() ? whole : key);
}

struct ReviewStore::Impl {
  std::vector<std::string> entity_names;
  std::vector<std::int64_t> entity_ids;
  std::vector<std::int64_t> indptr;  // rows of `entries` / `counts`
  std::vector<std::int32_t> entries;
  std::vector<std::int32_t> counts;
  std::unordered_map<std::string, std::size_t> row_by_key;
  std::unordered_map<std::int64_t, std::size_t> row_by_id;
};

bool ReviewStore::present(const Bundle& bundle) { return bundle.metadata().contains(kPrefix); }

ReviewStore ReviewStore::load(const Bundle& bundle, std::optional<std::int64_t> num_entities) {
  const auto& meta = bundle.metadata();
  if (!meta.contains(kPrefix) || !meta.at(kPrefix).is_object())
    fail<FormatError>("{}: no review entities (metadata 'review_entities' is missing or not an object)", bundle.label());
  const auto& m = meta.at(kPrefix);
  const std::int64_t movies = meta_count(bundle, m, "movies");
  const std::int64_t entities = meta_count(bundle, m, "entities");
  const std::int64_t nnz = meta_count(bundle, m, "entries");
  const auto name = [](const char* t) { return fmt::format("{}/{}", kPrefix, t); };

  auto impl = std::make_shared<Impl>();
  const std::vector<std::string> keys = read_strings(bundle, "movie_keys", movies);
  impl->entity_names = read_strings(bundle, "entity_names", entities);
  const auto movie_ids = bundle.tensor(name("movie_kg_ids"), DType::i32, {movies}).span<std::int32_t>();
  const auto entity_ids = bundle.tensor(name("entity_kg_ids"), DType::i32, {entities}).span<std::int32_t>();
  const auto indptr = bundle.tensor(name("indptr"), DType::i64, {movies + 1}).span<std::int64_t>();
  const auto entries = bundle.tensor(name("entries"), DType::i32, {nnz}).span<std::int32_t>();
  const auto counts = bundle.tensor(name("counts"), DType::i32, {nnz}).span<std::int32_t>();

  // -1 (no KG entity) or an id of the KG.
  const auto kg_id_ok = [&](std::int32_t id) { return id >= -1 && (!num_entities || id < *num_entities); };
  const std::string id_range = num_entities ? fmt::format("an id below {} or -1", *num_entities) : "an id or -1";
  for (std::size_t i = 0; i < entity_ids.size(); ++i) {
    if (!kg_id_ok(entity_ids[i]))
      fail<FormatError>("{}: tensor '{}': entry {} is {}, expected {}", bundle.label(), name("entity_kg_ids"), i,
                        entity_ids[i], id_range);
    impl->entity_ids.push_back(entity_ids[i]);
  }
  if (indptr.front() != 0 || indptr.back() != nnz)
    fail<FormatError>("{}: tensor '{}': must run from 0 to {} entries", bundle.label(), name("indptr"), nnz);
  for (std::size_t r = 0; r < static_cast<std::size_t>(movies); ++r) {
    if (indptr[r + 1] < indptr[r])
      fail<FormatError>("{}: tensor '{}': entry {} decreases", bundle.label(), name("indptr"), r + 1);
    if (!impl->row_by_key.emplace(keys[r], r).second)
      fail<FormatError>("{}: tensor '{}/movie_keys': '{}' is there twice", bundle.label(), kPrefix, keys[r]);
    if (!kg_id_ok(movie_ids[r]))
      fail<FormatError>("{}: tensor '{}': entry {} is {}, expected {}", bundle.label(), name("movie_kg_ids"), r,
                        movie_ids[r], id_range);
    if (movie_ids[r] >= 0 && !impl->row_by_id.emplace(movie_ids[r], r).second)
      fail<FormatError>("{}: tensor '{}': movie {} is there twice", bundle.label(), name("movie_kg_ids"), movie_ids[r]);
  }
  for (std::size_t k = 0; k < entries.size(); ++k) {
    if (entries[k] < 0 || entries[k] >= entities)
      fail<FormatError>("{}: tensor '{}': entry {} is {}, expected 0..{}", bundle.label(), name("entries"), k,
                        entries[k], entities - 1);
    if (counts[k] < 1)
      fail<FormatError>("{}: tensor '{}': entry {} is {}, expected a count >= 1", bundle.label(), name("counts"), k,
                        counts[k]);
  }
  impl->indptr.assign(indptr.begin(), indptr.end());
  impl->entries.assign(entries.begin(), entries.end());
  impl->counts.assign(counts.begin(), counts.end());
  return ReviewStore(std::move(impl));
}

ReviewStore ReviewStore::from_movies(std::vector<Movie> movies) {
  auto impl = std::make_shared<Impl>();
  std::map<std::string, std::int32_t> entity_index;
  for (const Movie& m : movies)
    for (const auto& [entity, count] : m.entities) {
      if (entity.empty() || count < 1)
        fail<InputError>("review store: movie '{}': entity '{}' needs a name and a count >= 1", m.key, entity);
      entity_index.emplace(entity, 0);
    }
  for (auto& [entity, index] : entity_index) {
    index = static_cast<std::int32_t>(impl->entity_names.size());
    impl->entity_names.push_back(entity);
    impl->entity_ids.push_back(-1);
  }
  impl->indptr.push_back(0);
  for (Movie& m : movies) {
    if (m.key.empty()) fail<InputError>("review store: a movie has an empty key");
    const std::size_t row = impl->indptr.size() - 1;
    if (!impl->row_by_key.emplace(m.key, row).second) fail<InputError>("review store: movie '{}' is given twice", m.key);
    if (m.kg_id >= 0 && !impl->row_by_id.emplace(m.kg_id, row).second)
      fail<InputError>("review store: KG item {} is given twice", m.kg_id);
    std::stable_sort(m.entities.begin(), m.entities.end(),
                     [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
    for (const auto& [entity, count] : m.entities) {
      impl->entries.push_back(entity_index.at(entity));
      impl->counts.push_back(count);
    }
    impl->indptr.push_back(static_cast<std::int64_t>(impl->entries.size()));
  }
  return ReviewStore(std::move(impl));
}

std::size_t ReviewStore::num_movies() const { return impl_->indptr.size() - 1; }
std::size_t ReviewStore::num_entities() const { return impl_->entity_names.size(); }

std::vector<ReviewStore::Entry> ReviewStore::find(std::optional<std::int64_t> kg_id, std::string_view name) const {
  std::optional<std::size_t> row;
  if (kg_id)
    if (const auto it = impl_->row_by_id.find(*kg_id); it != impl_->row_by_id.end()) row = it->second;
  if (!row)
    if (const auto it = impl_->row_by_key.find(review_movie_key(name)); it != impl_->row_by_key.end()) row = it->second;
  std::vector<Entry> out;
  if (!row) return out;
  for (auto k = impl_->indptr[*row]; k < impl_->indptr[*row + 1]; ++k) {
    const auto e = static_cast<std::size_t>(impl_->entries[static_cast<std::size_t>(k)]);
    out.push_back({impl_->entity_names[e], impl_->entity_ids[e], impl_->counts[static_cast<std::size_t>(k)]});
  }
  return out;
}

}  // namespace ecr
