// PromptEncoder (KGPrompt): the static tables and per-request prefixes against the torch
// reference (tools/reference/kgprompt.py) on random checkpoints in the published layouts, made
// by tools/make_random_kgprompt.py and converted by tools/ecr_prompt.py; plus typed errors for
// bundles and requests that do not fit, and concurrent use.
#include <fstream>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/io/bundle.hpp"
#include "ecr/models/prompt_encoder.hpp"
#include "support.hpp"

using namespace ecr;
using ecr::test::max_abs_diff;
using ecr::test::read_npy;
using ecr::test::write_npy;
namespace fs = std::filesystem;

namespace {

RelationCsr read_edges(const fs::path& path, std::int64_t nodes, std::int64_t relations) {
  const Tensor edges = read_npy(path);
  REQUIRE(edges.dim(1) == 3);
  std::vector<std::int64_t> s, t, r;
  for (std::int64_t k = 0; k < edges.dim(0); ++k) {
    const auto* row = edges.data<std::int64_t>() + 3 * k;
    s.push_back(row[0]);
    t.push_back(row[1]);
    r.push_back(row[2]);
  }
  return RelationCsr::from_edges(nodes, relations, s, t, r);
}

Tensor random_tensor(Shape shape, std::mt19937& rng, float scale) {
  std::normal_distribution<float> n(0.0f, scale);
  Tensor t = Tensor::empty(DType::f32, std::move(shape));
  for (float& v : t.span<float>()) v = n(rng);
  return t;
}

// One prompt request, written as .npy files for the reference and kept for the engine.
struct Case {
  std::string name;
  bool conv = false;
  bool global = true;
  Tensor tokens;
  std::vector<std::int32_t> entities;
  std::vector<std::int32_t> emotion_ids;  // (L, 3) or empty: no emotions
  std::vector<float> emotion_probs;
};

Case make_case(std::string name, std::mt19937& rng, std::int64_t tokens, std::int64_t token_dim,
               std::vector<std::int32_t> entities, bool emotions) {
  Case c;
  c.name = std::move(name);
  c.tokens = random_tensor({tokens, token_dim}, rng, 2.0f);
  c.entities = std::move(entities);
  if (emotions) {
    std::uniform_int_distribution<std::int32_t> label(0, 8);
    std::uniform_real_distribution<float> prob(0.1f, 1.0f);
    for (std::size_t l = 0; l < c.entities.size(); ++l)
      for (int k = 0; k < 3; ++k) {
        // Some slots are padding (id 9, probability 0), as section 2 pads them.
        const bool pad = k > 0 && (l + static_cast<std::size_t>(k)) % 3 == 0;
        c.emotion_ids.push_back(pad ? 9 : label(rng));
        c.emotion_probs.push_back(pad ? 0.0f : prob(rng));
      }
  }
  return c;
}

// Writes the inputs and cases.json, runs the reference, returns its folder of outputs.
fs::path run_reference(const fs::path& dir, const std::string& state, const std::vector<Case>& cases,
                       const std::string& extra) {
  nlohmann::json list = nlohmann::json::array();
  for (const Case& c : cases) {
    const auto L = static_cast<std::int64_t>(c.entities.size());
    nlohmann::json j = {{"name", c.name}, {"kind", c.conv ? "conv" : "rec"}, {"global", c.global}};
    write_npy(dir / (c.name + "_tokens.npy"), c.tokens);
    j["tokens"] = c.name + "_tokens.npy";
    write_npy(dir / (c.name + "_entities.npy"), Tensor::from_vector(c.entities, {L}));
    j["entities"] = c.name + "_entities.npy";
    if (!c.emotion_ids.empty()) {
      write_npy(dir / (c.name + "_emo_ids.npy"), Tensor::from_vector(c.emotion_ids, {L, 3}));
      write_npy(dir / (c.name + "_emo_probs.npy"), Tensor::from_vector(c.emotion_probs, {L, 3}));
      j["emotion_ids"] = c.name + "_emo_ids.npy";
      j["emotion_probs"] = c.name + "_emo_probs.npy";
    }
    list.push_back(j);
  }
  std::ofstream(dir / "cases.json") << nlohmann::json{{"cases", list}}.dump();
  REQUIRE(ecr::test::run_python(fmt::format("reference.kgprompt --state {} --edges {} --tables-out {} "
                                            "--cases {} --out-dir {} {}",
                                            state, (dir / "kg" / "edges.npy").string(), (dir / "tables").string(),
                                            (dir / "cases.json").string(), (dir / "out").string(), extra)) == 0);
  return dir / "out";
}

Tensor run_case(const PromptEncoder& encoder, const Case& c) {
  if (c.conv) return encoder.conv_prompt(c.tokens, c.entities);
  return encoder.rec_prompt({.token_states = c.tokens,
                             .entities = c.entities,
                             .emotion_ids = c.emotion_ids,
                             .emotion_probs = c.emotion_probs,
                             .global_entities = c.global});
}

float check_close(const char* what, const Tensor& engine, const fs::path& reference) {
  const float err = max_abs_diff(engine, read_npy(reference));
  MESSAGE(std::string(what) << " " << shape_string(engine.shape()) << ": max abs err " << err);
  CHECK(err < 1e-4f);
  return err;
}

// --- a random rec component written from C++, for the error cases (no torch needed) ---------

struct TinyConfig {
  std::int64_t H = 32, T = 24, d = 16, h = 2, n_head = 2, n_layer = 2, N = 12, R = 3, B = 8, prefix = 4;
};

nlohmann::json tiny_metadata(const TinyConfig& c) {
  return {{"components",
           {{"rec_prompt",
             {{"type", "kgprompt_rec"},
              {"config",
               {{"hidden_size", c.H}, {"token_hidden_size", c.T}, {"entity_hidden_size", c.d},
                {"emotion_hidden_size", c.h}, {"n_emotion", 9}, {"n_head", c.n_head}, {"n_layer", c.n_layer},
                {"n_block", 2}, {"n_entity", c.N}, {"num_relations", c.R}, {"num_bases", c.B},
                {"n_prefix", c.prefix}}}}}}}};
}

std::vector<std::pair<std::string, Shape>> tiny_shapes(const TinyConfig& c) {
  std::vector<std::pair<std::string, Shape>> s = {
      {"kg_encoder.weight", {c.B, c.d, c.d}}, {"kg_encoder.comp", {c.R, c.B}}, {"kg_encoder.root", {c.d, c.d}},
      {"kg_encoder.bias", {c.d}}, {"node_embeds", {c.N, c.d}}, {"emo_embeds", {10, c.T}},
      {"cross_attn.weight", {c.H, c.H}}, {"rec_prefix_embeds", {c.prefix, c.H}}};
  auto linear = [&](const std::string& key, std::int64_t in, std::int64_t out) {
    s.push_back({key + ".weight", {out, in}});
    s.push_back({key + ".bias", {out}});
  };
  auto mlp = [&](const std::string& key, std::int64_t dim) {
    linear(key + ".0", dim, dim / 2);
    linear(key + ".2", dim / 2, dim);
  };
  mlp("entity_proj1", c.d);
  linear("entity_proj2", c.d, c.H);
  mlp("token_proj1", c.T);
  linear("token_proj2", c.T, c.H);
  mlp("emo_proj1", c.T);
  linear("emo_proj2", c.T, c.h);
  mlp("prompt_proj1", c.H);
  linear("prompt_proj2", c.H, c.n_layer * 2 * c.H);
  linear("emo_fuse_proj1.0", c.H + c.h, c.H);
  linear("emo_fuse_proj1.2", c.H, c.H + c.h);
  linear("emo_fuse_proj2", c.H + c.h, c.H);
  mlp("rec_prefix_proj", c.H);
  return s;
}

// The bundle with `key` given `bad_shape` (or left out when the shape is empty), and metadata
// `meta`.
Bundle tiny_bundle(const TinyConfig& c, const nlohmann::json& meta, const std::string& key = {},
                   const Shape& bad_shape = {}) {
  std::mt19937 rng(5);
  BundleWriter writer(meta);
  for (auto [name, shape] : tiny_shapes(c)) {
    if (name == key) {
      if (bad_shape.empty()) continue;
      shape = bad_shape;
    }
    writer.add("rec_prompt/" + name, random_tensor(shape, rng, 0.2f));
  }
  const auto bytes = writer.bytes();
  return Bundle::from_bytes(bytes, "tiny.ecr");
}

RelationCsr tiny_graph(std::int64_t nodes, std::int64_t relations) {
  std::vector<std::int64_t> s, t, r;
  for (std::int64_t i = 0; i + 1 < nodes; ++i) {
    s.push_back(i);
    t.push_back(i + 1);
    r.push_back(i % relations);
    s.push_back(i + 1);
    t.push_back(i);
    r.push_back(i % relations);
  }
  return RelationCsr::from_edges(nodes, relations, s, t, r);
}

// The n x n identity; `column_of_row_3` replaces row 3's column (to make a bad matrix).
CooccurrenceMatrix identity_cooccurrence(std::int64_t n, std::int32_t column_of_row_3 = 3) {
  std::vector<std::int64_t> indptr;
  std::vector<std::int32_t> indices;
  for (std::int64_t i = 0; i <= n; ++i) indptr.push_back(i);
  for (std::int64_t i = 0; i < n; ++i) indices.push_back(static_cast<std::int32_t>(i));
  indices[3] = column_of_row_3;
  return CooccurrenceMatrix::from_tensors(Tensor::from_vector(indptr, {n + 1}), Tensor::from_vector(indices, {n}),
                                          Tensor::from_vector(std::vector<float>(static_cast<std::size_t>(n), 1.0f), {n}),
                                          n);
}

}  // namespace

TEST_CASE("rec prompt: static tables and prefixes match the torch reference") {
  ECR_REQUIRE_TORCH();
  const fs::path dir = ecr::test::temp_dir("prompt_rec");
  const std::string state = (dir / "rec.pt").string();
  REQUIRE(ecr::test::run_python(fmt::format("make_random_kgprompt rec --out {} --n-entity 40 --num-relations 3 "
                                            "--hidden 64 --token-hidden 48 --layers 2 --seed 5 --kg-out {}",
                                            state, (dir / "kg").string())) == 0);
  REQUIRE(ecr::test::run_python(fmt::format("ecr_prompt --n-head 4 --rec {} --out {}", state,
                                            (dir / "rec.ecr").string())) == 0);
  const Bundle bundle = Bundle::open(dir / "rec.ecr");
  for (const char* unused : {"rec_prompt/emo_fuse_proj3.weight", "rec_prompt/copy_proj_1.0.weight",
                             "rec_prompt/copy_proj_2.bias"})
    CHECK_FALSE(bundle.contains(unused));

  const CooccurrenceMatrix cooccurrence =
      CooccurrenceMatrix::from_tensors(read_npy(dir / "kg" / "cooc_indptr.npy"), read_npy(dir / "kg" / "cooc_indices.npy"),
                                       read_npy(dir / "kg" / "cooc_values.npy"), 40);
  const PromptEncoder encoder =
      PromptEncoder::load(bundle, "rec_prompt", read_edges(dir / "kg" / "edges.npy", 40, 3), &cooccurrence);
  CHECK(encoder.config().n_layer == 2);
  CHECK(encoder.config().prefix_width() == 2 * 2 * 64);

  std::mt19937 rng(17);
  const std::vector<std::int32_t> entities = {3, 17, 39, 3, 25, 0};  // a repeat and the padding entity
  std::vector<Case> cases = {make_case("full", rng, 9, 48, entities, true),
                             make_case("no_global", rng, 9, 48, entities, true),
                             make_case("no_emotions", rng, 9, 48, entities, false),
                             make_case("no_entities", rng, 9, 48, {}, false),
                             make_case("one_token", rng, 1, 48, {11, 12}, true)};
  cases[1].global = false;
  const fs::path out = run_reference(dir, state, cases, fmt::format("--cooc-csr {}", (dir / "kg" / "cooc").string()));

  float worst = 0;
  worst = std::max(worst, check_close("entity table E", encoder.entity_table(), dir / "tables" / "E.npy"));
  worst = std::max(worst, check_close("emotion table M", encoder.emotion_table(), dir / "tables" / "M.npy"));
  worst = std::max(worst, check_close("global entity table G", encoder.global_entity_table(), dir / "tables" / "G.npy"));
  for (const Case& c : cases) {
    const Tensor prefix = run_case(encoder, c);
    const std::int64_t L = static_cast<std::int64_t>(c.entities.size());
    const bool doubled = c.global && !c.emotion_ids.empty();
    CHECK(prefix.dim(0) == 10 + (doubled ? 2 * L : L));
    worst = std::max(worst, check_close(c.name.c_str(), prefix, out / (c.name + ".npy")));
  }
  MESSAGE("rec: worst max abs err " << worst);
}

TEST_CASE("conv prompt: static tables and prefixes match the torch reference") {
  ECR_REQUIRE_TORCH();
  const fs::path dir = ecr::test::temp_dir("prompt_conv");
  const std::string state = (dir / "conv.pt").string();
  // 10 relations > 8 bases: the R-GCN runs with basis channels here.
  REQUIRE(ecr::test::run_python(fmt::format("make_random_kgprompt conv --out {} --n-entity 30 --num-relations 10 "
                                            "--hidden 64 --token-hidden 48 --layers 3 --n-prefix 5 --seed 8 "
                                            "--edge-tensors --kg-out {}",
                                            state, (dir / "kg").string())) == 0);
  // A conv checkpoint is not a rec prompt: the converter says so instead of guessing.
  CHECK(ecr::test::run_python(fmt::format("ecr_prompt --n-head 4 --rec {} --out {}", state,
                                          (dir / "wrong.ecr").string())) != 0);
  REQUIRE(ecr::test::run_python(fmt::format("ecr_prompt --n-head 4 --conv {} --out {}", state,
                                            (dir / "conv.ecr").string())) == 0);
  const Bundle bundle = Bundle::open(dir / "conv.ecr");
  CHECK_FALSE(bundle.contains("conv_prompt/edge_index"));
  const PromptEncoder encoder =
      PromptEncoder::load(bundle, "conv_prompt", read_edges(dir / "kg" / "edges.npy", 30, 10));
  CHECK(encoder.config().kind == PromptKind::conv);

  std::mt19937 rng(23);
  std::vector<Case> cases = {make_case("entities", rng, 8, 48, {1, 29, 4, 4}, false),
                             make_case("no_entities", rng, 6, 48, {}, false)};
  for (Case& c : cases) c.conv = true;
  const fs::path out = run_reference(dir, state, cases, "");
  float worst = check_close("entity table E", encoder.entity_table(), dir / "tables" / "E.npy");
  for (const Case& c : cases) {
    const Tensor prefix = run_case(encoder, c);
    CHECK(prefix.dim(0) == 5 + c.tokens.dim(0));
    CHECK(prefix.dim(1) == 3 * 2 * 64);
    worst = std::max(worst, check_close(c.name.c_str(), prefix, out / (c.name + ".npy")));
  }
  MESSAGE("conv: worst max abs err " << worst);
}

TEST_CASE("PromptEncoder names the tensor whose shape does not fit") {
  const TinyConfig c;
  const auto meta = tiny_metadata(c);
  const RelationCsr graph = tiny_graph(c.N, c.R);
  CHECK_NOTHROW(PromptEncoder::load(tiny_bundle(c, meta), "rec_prompt", graph));
  const std::vector<std::pair<std::string, Shape>> bad = {
      {"kg_encoder.comp", {c.R, c.B + 1}},        {"kg_encoder.weight", {c.B, c.d, c.d + 1}},
      {"node_embeds", {c.N + 1, c.d}},            {"emo_embeds", {10, c.H + 1}},
      {"entity_proj1.0.weight", {c.d, c.d / 2}},  {"token_proj2.bias", {c.T}},
      {"cross_attn.weight", {c.H, c.H, 1}},       {"emo_fuse_proj1.0.weight", {c.H, c.H}},
      {"emo_fuse_proj2.weight", {c.H, c.H}},      {"prompt_proj2.weight", {3 * c.H, c.H}},
      {"rec_prefix_embeds", {c.prefix, c.H + 2}}, {"rec_prefix_proj.2.weight", {c.H, c.H}},
  };
  for (const auto& [key, shape] : bad) {
    CAPTURE(key);
    const Bundle bundle = tiny_bundle(c, meta, key, shape);
    CHECK_THROWS_WITH_AS(PromptEncoder::load(bundle, "rec_prompt", graph), doctest::Contains(("rec_prompt/" + key).c_str()),
                         ShapeError);
  }
  // A missing tensor is the bundle's error, naming it.
  CHECK_THROWS_WITH_AS(PromptEncoder::load(tiny_bundle(c, meta, "emo_proj2.bias"), "rec_prompt", graph),
                       doctest::Contains("rec_prompt/emo_proj2.bias"), FormatError);
}

TEST_CASE("PromptEncoder rejects metadata, graphs and matrices that do not fit") {
  const TinyConfig c;
  const auto meta = tiny_metadata(c);
  const RelationCsr graph = tiny_graph(c.N, c.R);
  const Bundle bundle = tiny_bundle(c, meta);
  CHECK_THROWS_AS(PromptEncoder::load(bundle, "conv_prompt", graph), ConfigError);
  auto edited = [&](const char* field, nlohmann::json value) {
    auto m = meta;
    if (value.is_null())
      m["components"]["rec_prompt"]["config"].erase(field);
    else
      m["components"]["rec_prompt"]["config"][field] = value;
    return tiny_bundle(c, m);
  };
  CHECK_THROWS_WITH_AS(PromptEncoder::load(edited("n_head", nullptr), "rec_prompt", graph),
                       doctest::Contains("n_head"), ConfigError);
  CHECK_THROWS_AS(PromptEncoder::load(edited("n_head", 5), "rec_prompt", graph), ConfigError);
  CHECK_THROWS_AS(PromptEncoder::load(edited("n_block", 3), "rec_prompt", graph), ConfigError);
  CHECK_THROWS_AS(PromptEncoder::load(edited("hidden_size", "wide"), "rec_prompt", graph), ConfigError);
  auto typed = meta;
  typed["components"]["rec_prompt"]["type"] = "gpt2";
  CHECK_THROWS_AS(PromptEncoder::load(tiny_bundle(c, typed), "rec_prompt", graph), ConfigError);
  // A KG other than the one the prompt was trained on.
  CHECK_THROWS_AS(PromptEncoder::load(bundle, "rec_prompt", tiny_graph(c.N + 1, c.R)), ShapeError);
  CHECK_THROWS_AS(PromptEncoder::load(bundle, "rec_prompt", tiny_graph(c.N, c.R + 1)), ShapeError);
  // Co-occurrence matrices of the wrong size or with a column outside it.
  const CooccurrenceMatrix wrong = identity_cooccurrence(c.N - 1);
  CHECK_THROWS_AS(PromptEncoder::load(bundle, "rec_prompt", graph, &wrong), ShapeError);
  CHECK_THROWS_AS(identity_cooccurrence(c.N, static_cast<std::int32_t>(c.N)), FormatError);
}

TEST_CASE("PromptEncoder rejects requests that do not fit") {
  const TinyConfig c;
  const Bundle bundle = tiny_bundle(c, tiny_metadata(c));
  const CooccurrenceMatrix cooccurrence = identity_cooccurrence(c.N);
  const PromptEncoder with_c = PromptEncoder::load(bundle, "rec_prompt", tiny_graph(c.N, c.R), &cooccurrence);
  const PromptEncoder without_c = PromptEncoder::load(bundle, "rec_prompt", tiny_graph(c.N, c.R));
  std::mt19937 rng(2);
  const Tensor tokens = random_tensor({5, c.T}, rng, 1.0f);
  const std::vector<std::int32_t> entities = {1, 2};
  const std::vector<std::int32_t> ids = {0, 1, 9, 3, 9, 9};
  const std::vector<float> probs = {0.5f, 0.3f, 0.0f, 0.9f, 0.0f, 0.0f};
  CHECK(with_c.rec_prompt({tokens, entities, ids, probs}).dim(0) == c.prefix + 4);
  CHECK(without_c.rec_prompt({tokens, entities, ids, probs, false}).dim(0) == c.prefix + 2);
  CHECK(without_c.rec_prompt({tokens, entities}).dim(0) == c.prefix + 2);
  CHECK_THROWS_AS(without_c.rec_prompt({tokens, entities, ids, probs}), ConfigError);

  const std::vector<std::int32_t> bad_entity = {1, static_cast<std::int32_t>(c.N)};
  CHECK_THROWS_WITH_AS(with_c.rec_prompt({tokens, bad_entity, ids, probs}), doctest::Contains("entity id 12"),
                       InputError);
  const std::vector<std::int32_t> negative = {-1};
  CHECK_THROWS_AS(with_c.rec_prompt({tokens, negative}), InputError);
  const std::vector<std::int32_t> bad_ids = {0, 1, 10, 3, 9, 9};
  CHECK_THROWS_WITH_AS(with_c.rec_prompt({tokens, entities, bad_ids, probs}), doctest::Contains("emotion id 10"),
                       InputError);
  const std::vector<float> short_probs = {0.5f, 0.3f};
  CHECK_THROWS_AS(with_c.rec_prompt({tokens, entities, ids, short_probs}), InputError);
  const std::vector<std::int32_t> five_ids = {0, 1, 2, 3, 4};
  const std::vector<float> five_probs = {1, 1, 1, 1, 1};
  CHECK_THROWS_AS(with_c.rec_prompt({tokens, entities, five_ids, five_probs}), InputError);
  CHECK_THROWS_AS(with_c.rec_prompt({random_tensor({5, c.T + 1}, rng, 1.0f), entities}), ShapeError);
  CHECK_THROWS_AS(with_c.rec_prompt({Tensor(), entities}), InputError);
  CHECK_THROWS_AS(with_c.conv_prompt(tokens, entities), ConfigError);
}

TEST_CASE("PromptEncoder serves concurrent requests with identical results") {
  const TinyConfig c;
  const Bundle bundle = tiny_bundle(c, tiny_metadata(c));
  const CooccurrenceMatrix cooccurrence = identity_cooccurrence(c.N);
  const PromptEncoder encoder = PromptEncoder::load(bundle, "rec_prompt", tiny_graph(c.N, c.R), &cooccurrence,
                                                    std::make_shared<ThreadPool>(2));
  std::mt19937 rng(9);
  const Tensor tokens = random_tensor({7, c.T}, rng, 1.0f);
  const std::vector<std::int32_t> entities = {4, 0, 11};
  const std::vector<std::int32_t> ids = {0, 9, 9, 5, 6, 9, 2, 9, 9};
  const std::vector<float> probs = {0.7f, 0, 0, 0.4f, 0.3f, 0, 0.8f, 0, 0};
  const RecPromptInput input{tokens, entities, ids, probs};
  const Tensor expected = encoder.rec_prompt(input);
  std::vector<float> errors(4, -1.0f);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < errors.size(); ++t)
    threads.emplace_back([&, t] {
      float worst = 0;
      for (int k = 0; k < 5; ++k) {
        const Tensor got = encoder.rec_prompt(input);
        const auto a = got.span<float>(), b = expected.span<float>();
        for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
      }
      errors[t] = worst;
    });
  for (auto& t : threads) t.join();
  for (float e : errors) CHECK(e == 0.0f);
}
