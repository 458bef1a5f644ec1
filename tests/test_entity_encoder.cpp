// EntityEncoder (R-GCN): a per-edge evaluation of the formula on small graphs (both the
// relation-channel and basis-channel paths), the torch reference on the real ReDial KG, and
// typed errors for bad shapes and graphs.
#include <random>
#include <vector>

#include <fmt/format.h>

#include "ecr/kg/knowledge_graph.hpp"
#include "ecr/models/entity_encoder.hpp"
#include "support.hpp"

using namespace ecr;
using ecr::test::max_abs_diff;

namespace {

Tensor random_tensor(Shape shape, std::mt19937& rng, float scale, std::string name = {}) {
  std::uniform_real_distribution<float> u(-scale, scale);
  Tensor t = Tensor::empty(DType::f32, std::move(shape), std::move(name));
  for (float& v : t.span<float>()) v = u(rng);
  return t;
}

struct Layer {
  Tensor bases, comp, root, bias;
};

Layer random_layer(std::int64_t bases, std::int64_t relations, std::int64_t in, std::int64_t out, std::mt19937& rng) {
  return {random_tensor({bases, in, out}, rng, 0.3f, "weight"), random_tensor({relations, bases}, rng, 0.5f, "comp"),
          random_tensor({in, out}, rng, 0.3f, "root"), random_tensor({out}, rng, 0.2f, "bias")};
}

struct Edge {
  std::int64_t source, target, relation;
};

RelationCsr csr_of(std::int64_t nodes, std::int64_t relations, const std::vector<Edge>& edges) {
  std::vector<std::int64_t> s, t, r;
  for (const Edge& e : edges) {
    s.push_back(e.source);
    t.push_back(e.target);
    r.push_back(e.relation);
  }
  return RelationCsr::from_edges(nodes, relations, s, t, r);
}

// out_i = x_i R + b + sum_r mean_{j -> i, r} x_j (sum_b comp[r,b] B_b), edge by edge, in double.
Tensor naive_rgcn(const Tensor& x, const std::vector<Edge>& edges, const Layer& layer) {
  const std::int64_t n = x.dim(0), in = x.dim(1), out = layer.root.dim(1);
  const std::int64_t relations = layer.comp.dim(0), bases = layer.comp.dim(1);
  std::vector<double> y(static_cast<std::size_t>(n * out), 0.0);
  const float* xv = x.data<float>();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t o = 0; o < out; ++o) {
      double v = layer.bias.data<float>()[o];
      for (std::int64_t k = 0; k < in; ++k) v += double(xv[i * in + k]) * layer.root.data<float>()[k * out + o];
      y[static_cast<std::size_t>(i * out + o)] = v;
    }
  for (std::int64_t r = 0; r < relations; ++r) {
    std::vector<double> w(static_cast<std::size_t>(in * out), 0.0);
    for (std::int64_t b = 0; b < bases; ++b)
      for (std::int64_t k = 0; k < in * out; ++k)
        w[static_cast<std::size_t>(k)] += double(layer.comp.data<float>()[r * bases + b]) *
                                          layer.bases.data<float>()[b * in * out + k];
    std::vector<int> degree(static_cast<std::size_t>(n), 0);
    for (const Edge& e : edges)
      if (e.relation == r) ++degree[static_cast<std::size_t>(e.target)];
    for (const Edge& e : edges) {
      if (e.relation != r) continue;
      const double scale = 1.0 / degree[static_cast<std::size_t>(e.target)];
      for (std::int64_t o = 0; o < out; ++o) {
        double v = 0;
        for (std::int64_t k = 0; k < in; ++k) v += double(xv[e.source * in + k]) * w[static_cast<std::size_t>(k * out + o)];
        y[static_cast<std::size_t>(e.target * out + o)] += scale * v;
      }
    }
  }
  Tensor t = Tensor::empty(DType::f32, {n, out});
  for (std::size_t k = 0; k < y.size(); ++k) t.data<float>()[k] = static_cast<float>(y[k]);
  return t;
}

// A graph with every case the mean must get right: several neighbours, a duplicate edge, a
// self loop, a node with no neighbours under some relations and one with none at all.
std::vector<Edge> small_graph(std::int64_t relations) {
  std::vector<Edge> edges = {{0, 1, 0}, {2, 1, 0}, {3, 1, 0}, {1, 0, 0}, {4, 4, 0}, {0, 2, 1 % relations},
                             {0, 2, 1 % relations}, {3, 2, 2 % relations}, {1, 3, 2 % relations}};
  for (std::int64_t r = 0; r < relations; ++r) edges.push_back({r % 5, (r + 2) % 5, r});
  return edges;
}

}  // namespace

TEST_CASE("RelationCsr groups sources by relation and target") {
  const RelationCsr csr = csr_of(3, 2, {{0, 1, 1}, {2, 1, 1}, {1, 0, 0}, {2, 1, 1}});
  CHECK(csr.indptr == std::vector<std::int64_t>{0, 1, 1, 1, 1, 4, 4});
  CHECK(csr.sources == std::vector<std::int32_t>{1, 0, 2, 2});
  CHECK_NOTHROW(csr.validate());
  CHECK_THROWS_AS(csr_of(3, 2, {{0, 3, 0}}), InputError);
  CHECK_THROWS_AS(csr_of(3, 2, {{0, 1, 2}}), InputError);
  CHECK_THROWS_AS(csr_of(3, 2, {{-1, 1, 0}}), InputError);
  RelationCsr broken = csr;
  broken.sources[0] = 7;
  CHECK_THROWS_AS(broken.validate(), InputError);
  broken = csr;
  broken.indptr.pop_back();
  CHECK_THROWS_AS(broken.validate(), InputError);
}

TEST_CASE("EntityEncoder matches the per-edge formula with relation and basis channels") {
  std::mt19937 rng(7);
  ThreadPool pool(2);
  // R <= B uses W_r per relation, R > B the bases with their coefficients: both must agree
  // with the formula, including rectangular in != out.
  for (auto [relations, bases] : {std::pair<std::int64_t, std::int64_t>{3, 8}, {11, 4}}) {
    CAPTURE(relations);
    const std::int64_t n = 5, in = 6, out = 9;
    const Layer layer = random_layer(bases, relations, in, out, rng);
    const EntityEncoder encoder(layer.bases, layer.comp, layer.root, layer.bias);
    CHECK(encoder.num_relations() == relations);
    const Tensor x = random_tensor({n, in}, rng, 1.0f, "x");
    const std::vector<Edge> edges = small_graph(relations);
    const Tensor y = encoder.forward(x, csr_of(n, relations, edges), pool);
    const float err = max_abs_diff(y, naive_rgcn(x, edges, layer));
    MESSAGE("per-edge formula, R=" << relations << " B=" << bases << ": max abs err " << err);
    CHECK(err < 1e-5f);
  }
}

TEST_CASE("EntityEncoder gives the same bits for any number of threads") {
  std::mt19937 rng(3);
  const std::int64_t n = 1000, d = 16, relations = 4;
  const Layer layer = random_layer(8, relations, d, d, rng);
  const EntityEncoder encoder(layer.bases, layer.comp, layer.root, layer.bias);
  std::uniform_int_distribution<std::int64_t> node(0, n - 1), rel(0, relations - 1);
  std::vector<Edge> edges;
  for (int k = 0; k < 5000; ++k) edges.push_back({node(rng), node(rng), rel(rng)});
  const RelationCsr csr = csr_of(n, relations, edges);
  const Tensor x = random_tensor({n, d}, rng, 1.0f);
  ThreadPool one(1), three(3);
  CHECK(max_abs_diff(encoder.forward(x, csr, one), encoder.forward(x, csr, three)) == 0.0f);
}

TEST_CASE("EntityEncoder rejects shapes that do not fit") {
  std::mt19937 rng(1);
  const Layer good = random_layer(8, 3, 4, 4, rng);
  CHECK_THROWS_AS(EntityEncoder(good.bases, random_tensor({3, 7}, rng, 1, "comp"), good.root, good.bias), ShapeError);
  CHECK_THROWS_AS(EntityEncoder(good.bases, good.comp, random_tensor({4, 5}, rng, 1, "root"), good.bias), ShapeError);
  CHECK_THROWS_AS(EntityEncoder(good.bases, good.comp, good.root, random_tensor({5}, rng, 1, "bias")), ShapeError);
  CHECK_THROWS_AS(EntityEncoder(random_tensor({8, 16}, rng, 1, "weight"), good.comp, good.root, good.bias), ShapeError);
  CHECK_THROWS_WITH_AS(
      EntityEncoder(good.bases, good.comp, good.root, random_tensor({5}, rng, 1, "rec_prompt/kg_encoder.bias")),
      doctest::Contains("rec_prompt/kg_encoder.bias"), ShapeError);
  const EntityEncoder encoder(good.bases, good.comp, good.root, good.bias);
  ThreadPool pool(1);
  const RelationCsr csr = csr_of(2, 3, {{0, 1, 2}});
  CHECK_THROWS_AS(encoder.forward(random_tensor({2, 5}, rng, 1), csr, pool), ShapeError);
  CHECK_THROWS_AS(encoder.forward(random_tensor({3, 4}, rng, 1), csr, pool), InputError);
  CHECK_THROWS_AS(encoder.forward(random_tensor({2, 4}, rng, 1), csr_of(2, 2, {}), pool), InputError);
}

TEST_CASE("EntityEncoder matches the torch reference on the ReDial KG") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto dir = ecr::test::temp_dir("entity_encoder_redial");
  // The reference builds the edges from entity2id.json + kg.json as docs/math.md section 3 says.
  REQUIRE(ecr::test::run_python(fmt::format("reference.kgprompt --kg-dir {} --save-edges {}",
                                            (ecr::test::shared_data() / "redial").string(),
                                            (dir / "edges.npy").string())) == 0);
  const Tensor edges = ecr::test::read_npy(dir / "edges.npy");
  REQUIRE(edges.rank() == 2);
  REQUIRE(edges.dim(1) == 3);
  const std::int64_t e = edges.dim(0);
  std::vector<std::int64_t> source(static_cast<std::size_t>(e)), target(source.size()), relation(source.size());
  std::int64_t max_node = 0;
  for (std::int64_t k = 0; k < e; ++k) {
    const auto* row = edges.data<std::int64_t>() + 3 * k;
    source[static_cast<std::size_t>(k)] = row[0];
    target[static_cast<std::size_t>(k)] = row[1];
    relation[static_cast<std::size_t>(k)] = row[2];
    max_node = std::max({max_node, row[0], row[1]});
  }
  // The padding entity's self loop makes the last node id N - 1 = max entity id + 1.
  const std::int64_t n = max_node + 1, relations = 4, d = 32;
  CHECK(n == 24631);
  const RelationCsr csr = RelationCsr::from_edges(n, relations, source, target, relation);
  // The knowledge graph keeps the same CSR (sources ascending per relation and target).
  const RelationCsr from_kg = RelationCsr::from_graph(KnowledgeGraph::from_files(ecr::test::shared_data() / "redial"));
  CHECK(from_kg.num_nodes == n);
  CHECK(from_kg.indptr == csr.indptr);
  CHECK(from_kg.sources == csr.sources);

  std::mt19937 rng(11);
  const Layer layer = random_layer(8, relations, d, d, rng);
  const Tensor x = random_tensor({n, d}, rng, 1.0f);
  std::filesystem::create_directories(dir / "state");
  ecr::test::write_npy(dir / "state" / "kg_encoder.weight.npy", layer.bases);
  ecr::test::write_npy(dir / "state" / "kg_encoder.comp.npy", layer.comp);
  ecr::test::write_npy(dir / "state" / "kg_encoder.root.npy", layer.root);
  ecr::test::write_npy(dir / "state" / "kg_encoder.bias.npy", layer.bias);
  ecr::test::write_npy(dir / "state" / "node_embeds.npy", x);
  REQUIRE(ecr::test::run_python(fmt::format("reference.kgprompt --rgcn-only --state {} --edges {} --out {}",
                                            (dir / "state").string(), (dir / "edges.npy").string(),
                                            (dir / "rgcn.npy").string())) == 0);

  ThreadPool pool(2);
  const EntityEncoder encoder(layer.bases, layer.comp, layer.root, layer.bias);
  const float err = max_abs_diff(encoder.forward(x, csr, pool), ecr::test::read_npy(dir / "rgcn.npy"));
  MESSAGE("R-GCN on the ReDial KG (" << n << " nodes, " << e << " edges, d=" << d << "): max abs err " << err);
  CHECK(err < 1e-4f);
}
