// The knowledge graph (C++ reading the JSON files, Python building the bundle, C++ loading it:
// all three must agree with each other and with edges computed here from kg.json), hostile
// bundles and files, and the co-occurrence matrix on a hand-computed example.
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/core/error.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/kg/cooccurrence.hpp"
#include "ecr/kg/knowledge_graph.hpp"
#include "support.hpp"

namespace {

using ecr::KnowledgeGraph;
using ecr::Tensor;
using ecr::test::fs::path;
using nlohmann::json;

void write_file(const path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  REQUIRE(out);
  out << text;
}

json read_json(const path& p) {
  std::ifstream in(p);
  REQUIRE(in);
  return json::parse(in);
}

std::vector<std::int32_t> to_vector(std::span<const std::int32_t> s) { return {s.begin(), s.end()}; }

// docs/math.md section 3 straight from the files: (relation, target) -> ascending sources.
std::map<std::pair<std::int64_t, std::int64_t>, std::vector<std::int32_t>> expected_edges(const path& dir,
                                                                                           std::int64_t pad) {
  std::set<std::tuple<std::int64_t, std::int64_t, std::int32_t>> edges{{0, pad, static_cast<std::int32_t>(pad)}};
  const json kg = read_json(dir / (ecr::test::fs::exists(dir / "kg.json") ? "kg.json" : "dbpedia_subkg.json"));
  for (auto it = kg.begin(); it != kg.end(); ++it) {
    const std::int32_t head = std::stoi(it.key());
    for (const auto& pair : it.value()) {
      const std::int64_t rel = pair[0].get<std::int64_t>();
      const std::int32_t tail = pair[1].get<std::int32_t>();
      edges.insert({rel, tail, head});
      edges.insert({rel, head, tail});
    }
  }
  std::map<std::pair<std::int64_t, std::int64_t>, std::vector<std::int32_t>> out;
  for (const auto& [rel, target, source] : edges) out[{rel, target}].push_back(source);
  return out;
}

void check_edges_match(const KnowledgeGraph& g, const path& dir) {
  const auto expected = expected_edges(dir, g.pad_entity());
  std::size_t total = 0;
  for (const auto& [key, sources] : expected) total += sources.size();
  CHECK(g.num_edges() == static_cast<std::int64_t>(total));
  // Every (relation, target) segment, empty ones included.
  for (std::int64_t r = 0; r < g.num_relations(); ++r) {
    const auto edges = g.relation_edges(r);
    REQUIRE(edges.indptr.size() == static_cast<std::size_t>(g.num_entities() + 1));
    for (std::int64_t i = 0; i < g.num_entities(); ++i) {
      auto it = expected.find({r, i});
      const std::vector<std::int32_t> want = it == expected.end() ? std::vector<std::int32_t>{} : it->second;
      const std::vector<std::int32_t> got(edges.sources.begin() + edges.indptr[i], edges.sources.begin() + edges.indptr[i + 1]);
      if (got != want) FAIL_CHECK("relation " << r << ", target " << i << ": sources differ");
      CHECK(to_vector(g.neighbours(i, r)) == want);
    }
  }
}

// Everything a KG exposes, compared between two loads.
void check_same_graph(const KnowledgeGraph& a, const KnowledgeGraph& b) {
  REQUIRE(a.num_entities() == b.num_entities());
  REQUIRE(a.num_relations() == b.num_relations());
  for (std::int64_t r = 0; r < a.num_relations(); ++r) CHECK(a.relation_name(r) == b.relation_name(r));
  CHECK(to_vector(a.items()) == to_vector(b.items()));
  CHECK(std::vector<std::int64_t>(a.edge_indptr().begin(), a.edge_indptr().end()) ==
        std::vector<std::int64_t>(b.edge_indptr().begin(), b.edge_indptr().end()));
  CHECK(to_vector(a.edge_sources()) == to_vector(b.edge_sources()));
  int differ = 0;
  for (std::int64_t i = 0; i < a.num_entities(); ++i)
    differ += a.entity_key(i) != b.entity_key(i) || a.entity_name(i) != b.entity_name(i) ||
              a.entity_type(i) != b.entity_type(i) || a.is_item(i) != b.is_item(i);
  CHECK(differ == 0);
  CHECK(a.source() == b.source());
}

path redial() { return ecr::test::shared_data() / "redial"; }

// tools/ecr_kg.py --kg DIR [extra] --out DIR/name.ecr; returns the bundle path.
path python_bundle(const path& kg_dir, const path& out_dir, const std::string& extra = "") {
  const path out = out_dir / "kg.ecr";
  REQUIRE(ecr::test::run_python(fmt::format("ecr_kg --kg {} {} --out {}", kg_dir.string(), extra, out.string())) == 0);
  return out;
}

}  // namespace

TEST_CASE("kg: the ReDial graph from the JSON files matches kg.json, entity2id.json and item_ids.json") {
  ECR_REQUIRE_SHARED_DATA();
  const KnowledgeGraph g = KnowledgeGraph::from_files(redial());
  CHECK(g.num_entities() == 24630 + 1);
  CHECK(g.pad_entity() == 24630);
  CHECK(g.num_relations() == 4);
  CHECK(g.relation_name(0) == "genre");
  CHECK(g.relation_name(3) == "writer");
  CHECK(g.relation_id("director") == 2);
  CHECK(g.items().size() == 6576);
  CHECK(g.source() == "kg.json");
  check_edges_match(g, redial());

  const json entity2id = read_json(redial() / "entity2id.json");
  int wrong = 0;
  for (auto it = entity2id.begin(); it != entity2id.end(); ++it)
    wrong += g.entity_id(it.key()) != it.value().get<std::int64_t>() || g.entity_name(it.value()) != it.key();
  CHECK(wrong == 0);
  // Entity 0 "Pari (1995)": genres drama (1), romance (2); stars 3, 4, 5; director 6; writers 7, 6.
  CHECK(g.entity_name(0) == "Pari (1995)");
  CHECK(g.entity_type(0) == ecr::EntityType::movie);
  CHECK(g.is_item(0));
  CHECK(to_vector(g.neighbours(0, 0)) == std::vector<std::int32_t>{1, 2});
  CHECK(to_vector(g.neighbours(0, 1)) == std::vector<std::int32_t>{3, 4, 5});
  CHECK(to_vector(g.neighbours(0, 3)) == std::vector<std::int32_t>{6, 7});
  CHECK(g.entity_type(1) == ecr::EntityType::genre);
  CHECK(g.entity_type(3) == ecr::EntityType::person);
  CHECK_FALSE(g.is_item(1));
  CHECK(to_vector(g.neighbours(g.pad_entity(), 0)) == std::vector<std::int32_t>{24630});
  CHECK(g.neighbours(g.pad_entity(), 1).empty());
  CHECK_THROWS_AS(g.entity_name(24631), ecr::InputError);
  CHECK_THROWS_AS(g.neighbours(0, 4), ecr::InputError);
}

TEST_CASE("kg: Python builder -> bundle -> C++ load agrees with C++ reading the files") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const path dir = ecr::test::temp_dir("kg_python_redial");
  const ecr::Bundle bundle = ecr::Bundle::open(python_bundle(redial(), dir));
  const KnowledgeGraph loaded = KnowledgeGraph::load(bundle);
  const KnowledgeGraph files = KnowledgeGraph::from_files(redial());
  check_same_graph(loaded, files);
  CHECK(loaded.num_edges() == bundle.metadata()["kg"]["num_edges"].get<std::int64_t>());
  CHECK_FALSE(bundle.contains("kg/entity_names/offsets"));  // plain names: the keys are the names
  CHECK(loaded.entity_id("The Shining (1980)") == files.entity_id("The Shining (1980)"));
}

TEST_CASE("kg: DBpedia layout with URIs, dbpedia_subkg.json and no entity2type.json") {
  const path dir = ecr::test::temp_dir("kg_dbpedia");
  write_file(dir / "entity2id.json",
             R"({"<http://dbpedia.org/resource/The_Matrix>": 0, "<http://dbpedia.org/resource/Keanu_Reeves>": 1,
                 "<http://dbpedia.org/resource/Am%C3%A9lie>": 2, "<http://dbpedia.org/resource/Lana_Wachowski>": 4,
                 "<http://dbpedia.org/resource/Titanic_(1997_film)>": 5})");
  write_file(dir / "dbpedia_subkg.json", R"({"0": [[1, 1], [0, 4], [1, 1]], "2": [[0, 4]], "4": [[1, 0]]})");
  write_file(dir / "relation2id.json", R"({"<http://dbpedia.org/ontology/director>": 0, "<http://dbpedia.org/ontology/starring>": 1})");
  write_file(dir / "item_ids.json", "[0, 2, 5]");
  const KnowledgeGraph g = KnowledgeGraph::from_files(dir);
  CHECK(g.num_entities() == 7);  // max id 5 + 2; id 3 has no name
  CHECK(g.source() == "dbpedia_subkg.json");
  CHECK(g.entity_name(0) == "The Matrix");
  CHECK(g.entity_key(0) == "<http://dbpedia.org/resource/The_Matrix>");
  CHECK(g.entity_name(2) == "Am\xC3\xA9lie");
  CHECK(g.entity_name(5) == "Titanic (1997 film)");
  CHECK(g.entity_name(3).empty());
  CHECK(g.entity_id("Keanu Reeves") == 1);
  CHECK(g.entity_id("<http://dbpedia.org/resource/Keanu_Reeves>") == 1);
  CHECK(g.entity_type(0) == ecr::EntityType::movie);  // an item
  CHECK(g.entity_type(1) == ecr::EntityType::other);
  check_edges_match(g, dir);
  // Triples (0 starring 1) twice and (4 starring 0) reversed: 0's stars are {1, 4}, each once.
  CHECK(to_vector(g.neighbours(0, 1)) == std::vector<std::int32_t>{1, 4});
  CHECK(to_vector(g.neighbours(4, 0)) == std::vector<std::int32_t>{0, 2});

  ECR_REQUIRE_TORCH();
  const ecr::Bundle bundle = ecr::Bundle::open(python_bundle(dir, dir));
  CHECK(bundle.contains("kg/entity_names/offsets"));
  check_same_graph(KnowledgeGraph::load(bundle), g);

  // The converter adds the same graph beside the model components.
  const path converted = dir / "converted.ecr";
  REQUIRE(ecr::test::run_python(fmt::format("convert --kg {} --out {}", dir.string(), converted.string())) == 0);
  check_same_graph(KnowledgeGraph::load(ecr::Bundle::open(converted)), g);
}

TEST_CASE("kg: display names of keys") {
  CHECK(ecr::kg_display_name("<http://dbpedia.org/resource/The_Matrix>") == "The Matrix");
  CHECK(ecr::kg_display_name("The Matrix (1999)") == "The Matrix (1999)");
  CHECK(ecr::kg_display_name("<http://dbpedia.org/resource/Am%C3%A9lie>") == "Am\xC3\xA9lie");
  CHECK(ecr::kg_display_name("<http://x/bad%FF>") == "bad%FF");  // not UTF-8 once decoded: kept
  CHECK(ecr::kg_display_name("<http://x/__a__b_>") == "a b");
  CHECK(ecr::kg_display_name("<>") == "");
}

// --- hostile bundles ---------------------------------------------------------------------------

namespace {

// A valid 3-entity graph (a -genre-> b), written by hand; tests break one piece at a time.
struct KgParts {
  json meta = {{"ecr_bundle", 1},
               {"kg", {{"num_entities", 4}, {"pad_entity", 3}, {"relations", {"genre"}}, {"source", "kg.json"}}}};
  std::vector<std::int64_t> key_offsets{0, 1, 2, 3, 3};
  std::vector<std::uint8_t> key_bytes{'a', 'b', 'c'};
  std::vector<std::uint8_t> types{1, 2, 3, 0};
  std::vector<std::int32_t> items{0};
  std::vector<std::int64_t> indptr{0, 1, 2, 2, 3};
  std::vector<std::int32_t> sources{1, 0, 3};
  ecr::DType indptr_dtype = ecr::DType::i64;

  ecr::Bundle bundle() const {
    ecr::BundleWriter w(meta);
    auto n = [](const auto& v) { return std::vector<std::int64_t>{static_cast<std::int64_t>(v.size())}; };
    w.add("kg/entity_keys/offsets", Tensor::from_vector(key_offsets, n(key_offsets)));
    w.add("kg/entity_keys/bytes", Tensor::from_vector(key_bytes, n(key_bytes)));
    w.add("kg/entity_types", Tensor::from_vector(types, n(types)));
    w.add("kg/items", Tensor::from_vector(items, n(items)));
    if (indptr_dtype == ecr::DType::i64) {
      w.add("kg/edges/indptr", Tensor::from_vector(indptr, n(indptr)));
    } else {
      std::vector<std::int32_t> narrow(indptr.begin(), indptr.end());
      w.add("kg/edges/indptr", Tensor::from_vector(narrow, n(narrow)));
    }
    w.add("kg/edges/sources", Tensor::from_vector(sources, n(sources)));
    const auto bytes = w.bytes();
    return ecr::Bundle::from_bytes(bytes, "hand.ecr");
  }
};

template <class E>
void check_rejected(const KgParts& parts, const std::string& needle) {
  const ecr::Bundle b = parts.bundle();
  try {
    KnowledgeGraph::load(b);
    FAIL("accepted a bad graph; expected an error mentioning '" << needle << "'");
  } catch (const E& e) {
    CHECK_MESSAGE(std::string(e.what()).find(needle) != std::string::npos, std::string(e.what()));
  }
}

}  // namespace

TEST_CASE("kg: a hand-written bundle loads, and every broken piece is a typed error naming the tensor") {
  const KnowledgeGraph g = KnowledgeGraph::load(KgParts{}.bundle());
  CHECK(g.num_entities() == 4);
  CHECK(g.entity_name(1) == "b");
  CHECK(to_vector(g.neighbours(0, 0)) == std::vector<std::int32_t>{1});

  {
    KgParts p;
    p.sources[0] = 4;  // an edge from an entity that does not exist
    check_rejected<ecr::FormatError>(p, "kg/edges/sources");
  }
  {
    KgParts p;
    p.sources = {1, 0, -1};
    check_rejected<ecr::FormatError>(p, "kg/edges/sources");
  }
  {
    KgParts p;
    p.indptr = {0, 1, 0, 2, 3};  // decreasing
    check_rejected<ecr::FormatError>(p, "kg/edges/indptr");
  }
  {
    KgParts p;
    p.indptr = {0, 1, 2, 2, 2};  // ends before the last edge
    check_rejected<ecr::FormatError>(p, "kg/edges/indptr");
  }
  {
    KgParts p;
    p.indptr = {0, 2, 2, 2, 3};
    p.sources = {1, 1, 3};  // a duplicate edge
    check_rejected<ecr::FormatError>(p, "kg/edges/sources");
  }
  {
    KgParts p;
    p.indptr = {0, 1, 2, 2};  // R * N + 1 = 5 entries expected
    check_rejected<ecr::ShapeError>(p, "kg/edges/indptr");
  }
  {
    KgParts p;
    p.indptr_dtype = ecr::DType::i32;
    check_rejected<ecr::ShapeError>(p, "kg/edges/indptr");
  }
  {
    KgParts p;
    p.items = {3};  // the padding entity is not an item
    check_rejected<ecr::FormatError>(p, "kg/items");
  }
  {
    KgParts p;
    p.items = {0, 0};
    check_rejected<ecr::FormatError>(p, "kg/items");
  }
  {
    KgParts p;
    p.types[2] = 9;
    check_rejected<ecr::FormatError>(p, "kg/entity_types");
  }
  {
    KgParts p;
    p.key_offsets = {0, 1, 5, 3, 3};  // past the bytes
    check_rejected<ecr::FormatError>(p, "kg/entity_keys");
  }
  {
    KgParts p;
    p.key_bytes = {'a', 0xFF, 'c'};
    check_rejected<ecr::FormatError>(p, "not valid UTF-8");
  }
  {
    KgParts p;
    p.meta.erase("kg");
    check_rejected<ecr::FormatError>(p, "metadata 'kg'");
  }
  {
    KgParts p;
    p.meta["kg"]["pad_entity"] = 2;
    check_rejected<ecr::FormatError>(p, "pad_entity");
  }
  {
    KgParts p;
    p.meta["kg"]["num_entities"] = 5;  // the tensors are for 4
    p.meta["kg"]["pad_entity"] = 4;
    check_rejected<ecr::ShapeError>(p, "kg/entity_keys/offsets");
  }
}

TEST_CASE("kg: malformed JSON files are format errors naming the file and the field") {
  const path dir = ecr::test::temp_dir("kg_bad_files");
  auto good = [&] {
    write_file(dir / "entity2id.json", R"({"a": 0, "b": 1, "c": 2})");
    write_file(dir / "kg.json", R"({"0": [[0, 1]], "2": [[1, 0]]})");
    write_file(dir / "relation2id.json", R"({"genre": 0, "star": 1})");
    write_file(dir / "item_ids.json", "[0, 2]");
  };
  auto rejected = [&](const std::string& file, const std::string& text, const std::string& needle) {
    good();
    write_file(dir / file, text);
    try {
      KnowledgeGraph::from_files(dir);
      FAIL_CHECK(file << " accepted: " << text);
    } catch (const ecr::FormatError& e) {
      const std::string what = e.what();
      CHECK_MESSAGE(what.find(file) != std::string::npos, what);
      CHECK_MESSAGE(what.find(needle) != std::string::npos, what);
    }
  };
  good();
  CHECK(KnowledgeGraph::from_files(dir).num_edges() == 5);

  rejected("entity2id.json", "{\"a\": 0, ", "not valid JSON");
  rejected("entity2id.json", R"({"a": -1})", "'a'");
  rejected("entity2id.json", R"({"a": 0, "b": 0})", "id 0");
  rejected("entity2id.json", R"(["a"])", "object");
  rejected("kg.json", R"({"0": [[0, 7]]})", "tail 7");
  rejected("kg.json", R"({"0": [[2, 1]]})", "relation 2");
  rejected("kg.json", R"({"x": [[0, 1]]})", "head 'x'");
  rejected("kg.json", R"({"9": [[0, 1]]})", "head '9'");
  rejected("kg.json", R"({"0": [[0]]})", "pair 0");
  rejected("kg.json", R"({"0": 5})", "head 0");
  rejected("relation2id.json", R"({"genre": 0, "star": 5})", "'star'");
  rejected("item_ids.json", "[0, 3]", "item 1");
  rejected("item_ids.json", "[2, 2]", "twice");
  rejected("item_ids.json", "[0, \"b\"]", "item 1");

  good();
  ecr::test::fs::remove(dir / "kg.json");
  CHECK_THROWS_AS(KnowledgeGraph::from_files(dir), ecr::IoError);
  CHECK_THROWS_AS(KnowledgeGraph::from_files(dir / "missing"), ecr::IoError);
}

// --- co-occurrence -------------------------------------------------------------------------------

namespace {

// m0, m1 movies (items); g2 a genre; p3, p4 people; 5 pads.
void write_small_kg(const path& dir) {
  write_file(dir / "entity2id.json", R"({"m0": 0, "m1": 1, "g2": 2, "p3": 3, "p4": 4})");
  write_file(dir / "kg.json", R"({"0": [[0, 2], [1, 3]], "1": [[0, 2], [1, 4]]})");
  write_file(dir / "relation2id.json", R"({"genre": 0, "star": 1})");
  write_file(dir / "item_ids.json", "[0, 1]");
  write_file(dir / "entity2type.json", R"({"m0": "movie", "m1": "movie", "g2": "genre", "p3": "person", "p4": "person"})");
}

// Three dialogs whose pairs are counted by hand below.
void write_three_dialogs(const path& file) {
  const json d1 = {
      {"initiatorWorkerId", 1}, {"respondentWorkerId", 2},
      {"messages",
       {{{"senderWorkerId", 2}, {"text", "try @1"}, {"item", {"m0"}}, {"entity", json::array()}},
        {{"senderWorkerId", 1}, {"text", "I like g2"}, {"item", json::array()}, {"entity", {"g2"}},
         {"emotions", {{"like", 0.7}, {"happy", 0.2}, {"neutral", 0.1}}}},
        {{"senderWorkerId", 2}, {"text", "then m1"}, {"item", {"m1"}}, {"entity", json::array()}}}}};
  const json d2 = {
      {"initiatorWorkerId", 7}, {"respondentWorkerId", 8},
      {"messages",
       {{{"senderWorkerId", 7}, {"text", "m0 with p3"}, {"item", {"m0"}}, {"entity", {"p3"}},
         {"emotions", {{"negative", 0.05}, {"curious", 0.08}, {"neutral", 0.02}}}},
        {{"senderWorkerId", 7}, {"text", "and g2"}, {"item", json::array()}, {"entity", {"g2"}},
         {"emotions", {{"curious", 0.6}, {"like", 0.3}}}},
        {{"senderWorkerId", 8}, {"text", "m1 with p4"}, {"item", {"m1"}}, {"entity", {"p4"}}},
        {{"senderWorkerId", 7}, {"text", "great"}, {"item", json::array()}, {"entity", json::array()},
         {"emotions", {{"like", 0.9}}}}}}};
  const json d3 = {
      {"initiatorWorkerId", 3}, {"respondentWorkerId", 4},
      {"messages",
       {{{"senderWorkerId", 3}, {"text", "m1"}, {"item", {"m1"}}, {"entity", {"not in the kg"}},
         {"emotions", {{"negative", 0.8}, {"surprise", 0.15}}}},
        {{"senderWorkerId", 4}, {"text", "m0?"}, {"item", {"m0"}}, {"entity", json::array()}},
        {{"senderWorkerId", 3}, {"text", "p3!"}, {"item", json::array()}, {"entity", {"p3"}},
         {"emotions", {{"happy", 0.5}, {"surprise", 0.3}, {"like", 0.15}, {"grateful", 0.12}}}}}}};
  write_file(file, d1.dump() + "\n" + d2.dump() + "\n" + d3.dump() + "\n");
}

}  // namespace

TEST_CASE("cooccurrence: three hand-counted dialogs, built in Python, read and applied in C++") {
  ECR_REQUIRE_TORCH();
  const path dir = ecr::test::temp_dir("kg_cooccurrence");
  write_small_kg(dir);
  write_three_dialogs(dir / "dialogs.jsonl");
  const ecr::Bundle bundle = ecr::Bundle::open(python_bundle(dir, dir, fmt::format("--dialogs {}", (dir / "dialogs.jsonl").string())));
  const KnowledgeGraph g = KnowledgeGraph::load(bundle);
  const auto c = ecr::CooccurrenceMatrix::load(bundle, g.num_entities());

  // Entities with the labels of the user's reaction (first 3 compared):
  //  d1: m0 [like happy] (system, takes the next user turn's), g2 [like happy], m1 [] (no later turn)
  //      -> m0>g2
  //  d2: one user turn of two messages: m0 p3 g2 (movies first) with [curious (fallback), curious,
  //      like]; m1 p4 from the system take [like] -> all 10 ordered pairs share a label
  //  d3: m1 [negative surprise], m0 [happy surprise like grateful], p3 the same -> m1>m0 m1>p3 m0>p3
  // Counts: m0: g2 2, p3 2, m1 1, p4 1 | m1: p4, m0, p3 | g2: m1, p4 | p3: g2, m1, p4 | p4: none.
  const float third = 1.f / 3.f;
  const std::vector<std::vector<float>> want = {
      {0, 1.f / 6, third, third, 1.f / 6, 0},
      {third, 0, 0, third, third, 0},
      {0, 0.5f, 0, 0, 0.5f, 0},
      {0, third, third, 0, third, 0},
      {0, 0, 0, 0, 0, 0},
      {0, 0, 0, 0, 0, 0}};
  REQUIRE(c.size() == 6);
  CHECK(c.nnz() == 12);
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j) CHECK_MESSAGE(c.at(i, j) == doctest::Approx(want[i][j]).epsilon(1e-6), i << "," << j);

  // G = C E with E[i] = (i, 1): row 0 = (2+3)/3 + (1+4)/6 = 2.5, row 1 = (0+3+4)/3, ...
  std::vector<float> e;
  for (int i = 0; i < 6; ++i) e.insert(e.end(), {static_cast<float>(i), 1.f});
  const Tensor out = c.multiply(Tensor::from_vector(e, {6, 2}));
  const std::vector<float> g_want = {2.5f, 1, 7.f / 3, 1, 2.5f, 1, 7.f / 3, 1, 0, 0, 0, 0};
  REQUIRE(out.numel() == 12);
  for (int k = 0; k < 12; ++k) CHECK(out.data<float>()[k] == doctest::Approx(g_want[k]).epsilon(1e-6));
  CHECK_THROWS_AS(c.multiply(Tensor::zeros(ecr::DType::f32, {5, 2})), ecr::ShapeError);
  CHECK(bundle.metadata()["cooccurrence"]["emotions"] == "annotated");

  // Uniform emotions: every ordered pair counts. m0 (d1: g2 m1; d2: p3 g2 m1 p4; d3: p3) ->
  // g2 2, m1 2, p3 2, p4 1 of 7.
  const path uniform = ecr::test::temp_dir("kg_cooccurrence_uniform");
  const ecr::Bundle ub = ecr::Bundle::open(
      python_bundle(dir, uniform, fmt::format("--dialogs {} --uniform-emotions", (dir / "dialogs.jsonl").string())));
  const auto cu = ecr::CooccurrenceMatrix::load(ub, 6);
  CHECK(cu.at(0, 2) == doctest::Approx(2.f / 7));
  CHECK(cu.at(0, 4) == doctest::Approx(1.f / 7));
  CHECK(cu.at(4, 0) == 0.f);
  CHECK(ub.metadata()["cooccurrence"]["emotions"] == "uniform");
}

TEST_CASE("cooccurrence: hostile CSR tensors are typed errors naming the tensor") {
  struct Csr {
    std::vector<std::int64_t> indptr{0, 2, 2, 3};
    std::vector<std::int32_t> indices{0, 2, 1};
    std::vector<float> values{0.5f, 0.5f, 1.f};
  };
  auto load = [](const Csr& m, std::int64_t n = 3) {
    ecr::BundleWriter w(json{{"ecr_bundle", 1}});
    w.add("cooccurrence/indptr", Tensor::from_vector(m.indptr, {static_cast<std::int64_t>(m.indptr.size())}));
    w.add("cooccurrence/indices", Tensor::from_vector(m.indices, {static_cast<std::int64_t>(m.indices.size())}));
    w.add("cooccurrence/values", Tensor::from_vector(m.values, {static_cast<std::int64_t>(m.values.size())}));
    const auto bytes = w.bytes();
    return ecr::CooccurrenceMatrix::load(ecr::Bundle::from_bytes(bytes, "c.ecr"), n);
  };
  const auto ok = load(Csr{});
  CHECK(ok.at(0, 2) == 0.5f);
  CHECK(ok.at(2, 1) == 1.f);
  CHECK(ok.at(1, 1) == 0.f);

  auto rejected = [&](const Csr& m, const std::string& needle) {
    try {
      load(m);
      FAIL_CHECK("accepted; expected " << needle);
    } catch (const ecr::FormatError& e) {
      CHECK_MESSAGE(std::string(e.what()).find(needle) != std::string::npos, std::string(e.what()));
    }
  };
  Csr m;
  m.indices[1] = 3;
  rejected(m, "cooccurrence/indices");
  m = Csr{};
  m.indices = {2, 0, 1};  // not ascending in row 0
  rejected(m, "cooccurrence/indices");
  m = Csr{};
  m.indptr = {0, 1, 0, 3};
  rejected(m, "cooccurrence/indptr");
  m = Csr{};
  m.indptr = {1, 2, 2, 3};
  rejected(m, "cooccurrence/indptr");
  m = Csr{};
  m.values[0] = -0.5f;
  rejected(m, "cooccurrence/values");
  m = Csr{};
  m.values[2] = std::numeric_limits<float>::quiet_NaN();
  rejected(m, "cooccurrence/values");
  CHECK_THROWS_AS(load(Csr{}, 4), ecr::ShapeError);  // indptr is for 3 rows
}
