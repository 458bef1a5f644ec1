// The Engine (one load shared by the Recommender and the Responder), the device option, and the
// bundle schema's checked reader (io/component.hpp).
#include <doctest/doctest.h>

#include <thread>

#include <nlohmann/json.hpp>

#include "ecr/core/error.hpp"
#include "ecr/device/cuda.hpp"
#include "ecr/device/device.hpp"
#include "ecr/engine.hpp"
#include "ecr/io/component.hpp"
#include "ecr/models/gpt2.hpp"
#include "ecr/recommender.hpp"
#include "ecr/responder.hpp"
#include "responder_fixture.hpp"

using namespace ecr;

namespace {

Dialog engine_dialog() {
  return Dialog::parse(R"J({"turns": [
    {"role": "user", "text": "Hi! I loved The Matrix (1999). Anything like it?", "entities": [0],
     "emotions": {"like": 0.8, "curious": 0.3}},
    {"role": "system", "text": "Have you seen Speed (1994)?", "entities": [1]},
    {"role": "user", "text": "Not yet, who is in it?", "emotions": {"curious": 0.6}}]})J");
}

void check_same(const Recommendation& a, const Recommendation& b) {
  REQUIRE(a.items.size() == b.items.size());
  for (std::size_t i = 0; i < a.items.size(); ++i) {
    CHECK(a.items[i].id == b.items[i].id);
    CHECK(a.items[i].score == b.items[i].score);
  }
  CHECK(a.context_ids == b.context_ids);
  CHECK(a.prompt_ids == b.prompt_ids);
}

}  // namespace

TEST_CASE("engine: one load serves a Recommender and a Responder, as two loads do") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  const Engine engine = Engine::load(f.bundle);
  const Recommender recommender = Recommender::load(engine);
  const Responder responder = Responder::load(engine, ecr::test::gpt2_responder());
  // Both views read the engine's parts: one knowledge graph, one engine.
  CHECK(&recommender.graph() == &engine.graph());
  CHECK(&responder.graph() == &engine.graph());
  CHECK(&recommender.engine().impl() == &engine.impl());
  CHECK(&responder.engine().impl() == &engine.impl());
  CHECK(&recommender.bundle() == &engine.bundle());

  const Recommender alone = Recommender::load(f.bundle);
  const Responder alone_responder = Responder::load(f.bundle, ecr::test::gpt2_responder());
  CHECK(&alone.graph() != &engine.graph());
  const Dialog dialog = engine_dialog();
  RecommendRequest request;
  request.exclude_mentioned = false;  // the dialog names both of the fixture's movies
  const Recommendation shared = recommender.recommend(dialog, request);
  check_same(shared, alone.recommend(dialog, request));
  const Response reply = responder.respond(dialog, shared);
  const Response reply_alone = alone_responder.respond(dialog, shared);
  CHECK(reply.template_ids == reply_alone.template_ids);
  CHECK(reply.reply_ids == reply_alone.reply_ids);
  CHECK(reply.text == reply_alone.text);
}

TEST_CASE("engine: a view of a loaded engine cannot change the engine's options") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  EngineOptions engine_options;
  engine_options.threads = 2;
  const Engine engine = Engine::load(f.bundle, engine_options);

  RecommenderOptions same;  // left as they are: the engine's apply
  CHECK(Recommender::load(engine, same).options().threads == 2);
  same.threads = 2;  // equal to the engine's: fine
  CHECK_NOTHROW(Recommender::load(engine, same));

  RecommenderOptions other;
  other.threads = 3;
  CHECK_THROWS_WITH_AS(Recommender::load(engine, other), doctest::Contains("engine's options"), ConfigError);
  ResponderOptions renamed = ecr::test::gpt2_responder();
  renamed.components.generator = "other";
  CHECK_THROWS_WITH_AS(Responder::load(engine, renamed), doctest::Contains("engine's options"), ConfigError);
  // The view's own options still apply and are checked.
  RecommenderOptions bad;
  bad.context_tokens = 0;
  CHECK_THROWS_AS(Recommender::load(engine, bad), ConfigError);
}

TEST_CASE("engine: views made on many threads at once share one load and agree") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  const Engine engine = Engine::load(f.bundle);  // nothing loaded yet: the threads race to load
  const Dialog dialog = engine_dialog();
  std::vector<Recommendation> results(4);
  std::vector<const KnowledgeGraph*> graphs(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < results.size(); ++t)
    threads.emplace_back([&, t] {
      const Recommender r = Recommender::load(engine);
      graphs[t] = &r.graph();
      results[t] = r.recommend(dialog);
    });
  for (auto& t : threads) t.join();
  for (std::size_t t = 1; t < results.size(); ++t) {
    check_same(results[t], results[0]);
    CHECK(graphs[t] == graphs[0]);
  }
}

TEST_CASE("engine: the device option, parsed and refused where it cannot run") {
  CHECK(DeviceSpec::parse("cpu") == DeviceSpec{});
  CHECK(DeviceSpec::parse("cuda") == DeviceSpec{Device::cuda, 0});
  CHECK(DeviceSpec::parse("cuda:3") == DeviceSpec{Device::cuda, 3});
  CHECK(DeviceSpec::parse("cuda:3").str() == "cuda:3");
  for (const char* bad : {"gpu", "cuda:", "cuda:-1", "cuda:1x", "CUDA", "cuda:99999999999", ""})
    CHECK_THROWS_WITH_AS(DeviceSpec::parse(bad), doctest::Contains("is not one of cpu, cuda, cuda:N"), ConfigError);
  CHECK_NOTHROW(require_device(DeviceSpec{}));
  // More devices than any machine has.
  CHECK_THROWS_AS(require_device(DeviceSpec{Device::cuda, 4096}), DeviceError);
  if (!cuda::available()) {
    CHECK_THROWS_WITH_AS(require_device(DeviceSpec{Device::cuda, 0}), doctest::Contains(cuda::unavailable_reason().c_str()),
                         DeviceError);
    ECR_REQUIRE_SHARED_DATA();
    ECR_REQUIRE_TORCH();
    const auto f = test::responder_fixture();
    RecommenderOptions options;
    options.device = DeviceSpec::parse("cuda");
    CHECK_THROWS_WITH_AS(Recommender::load(f.bundle, options), doctest::Contains("device cuda:0"), DeviceError);
    EngineOptions engine_options;
    engine_options.device = options.device;
    CHECK_THROWS_AS(Engine::load(f.bundle, engine_options), DeviceError);
  }
}

// --- the bundle schema ---------------------------------------------------------------------------

TEST_CASE("bundle schema: Fields reads checked values and names the field") {
  const nlohmann::json config = nlohmann::json::parse(R"J({"n_head": 4, "zero": 0, "neg": -3, "float": 2.5,
    "text": "gelu", "huge": 18446744073709551615, "big": 1099511627776, "eps": 1e-5, "bad_eps": -1, "inf_eps": 1e39,
    "flag": true, "list": ["a", "b"], "mixed": ["a", 1], "obj": {"k": 1}, "nothing": null})J");
  const Fields f(config, "bundle 'b': component 'c': config", "bundle 'b': component 'c': config.");
  CHECK(f.integer("n_head", 1) == 4);
  CHECK(f.integer("zero", 0) == 0);
  CHECK_THROWS_WITH_AS(f.integer("zero", 1), doctest::Contains("config.zero is 0, expected an integer in 1 .."),
                       ConfigError);
  CHECK_THROWS_WITH_AS(f.integer("neg", 0), doctest::Contains("component 'c': config.neg is -3"), ConfigError);
  CHECK_THROWS_WITH_AS(f.integer("float", 0), doctest::Contains("config.float is 2.5"), ConfigError);
  CHECK_THROWS_WITH_AS(f.integer("text", 0), doctest::Contains("config.text is \"gelu\""), ConfigError);
  CHECK_THROWS_AS(f.integer("huge", 0), ConfigError);  // beyond int64: not wrapped to -1
  CHECK_THROWS_AS(f.integer("big", 0), ConfigError);   // beyond kMaxConfigInteger
  CHECK_THROWS_WITH_AS(f.integer("absent", 0), doctest::Contains("config.absent is absent"), ConfigError);
  CHECK(f.integer_or("absent", 7, 0) == 7);
  CHECK(f.integer_or("nothing", 7, 0) == 7);  // null counts as absent
  CHECK_THROWS_AS(f.integer_or("neg", 7, 0), ConfigError);

  CHECK(f.positive_number_or("eps", 1.0f) == doctest::Approx(1e-5));
  CHECK(f.positive_number_or("absent", 0.5f) == 0.5f);
  CHECK_THROWS_WITH_AS(f.positive_number_or("bad_eps", 1.0f), doctest::Contains("small positive number"), ConfigError);
  CHECK_THROWS_AS(f.positive_number_or("inf_eps", 1.0f), ConfigError);
  CHECK_THROWS_AS(f.positive_number_or("text", 1.0f), ConfigError);

  CHECK(f.string_or("text", "x") == "gelu");
  CHECK(f.string_or("absent", "x") == "x");
  CHECK_THROWS_WITH_AS(f.string_or("n_head", "x"), doctest::Contains("expected a string"), ConfigError);
  CHECK(f.boolean_or("flag", false));
  CHECK_THROWS_WITH_AS(f.boolean_or("n_head", false), doctest::Contains("expected true or false"), ConfigError);
  CHECK(*f.strings("list") == std::vector<std::string>{"a", "b"});
  CHECK_FALSE(f.strings("absent").has_value());
  CHECK_THROWS_WITH_AS(f.strings("mixed"), doctest::Contains("a list of strings"), ConfigError);
  CHECK(f.object("obj").integer("k", 0) == 1);
  CHECK_THROWS_WITH_AS(f.object("obj").integer("k", 2), doctest::Contains("config.obj.k is 1"), ConfigError);
  CHECK(f.object_size("obj") == 1);
  CHECK(f.object_size("absent") == 0);
  CHECK_THROWS_AS(f.object("list"), ConfigError);
  CHECK_THROWS_WITH_AS(Fields(nlohmann::json::array(), "thing"), doctest::Contains("thing must be a JSON object"),
                       ConfigError);
}

TEST_CASE("bundle schema: components are typed, and a missing one is named with its role") {
  const nlohmann::json meta = nlohmann::json::parse(R"J({"ecr_bundle": 1,
    "components": {"lm": {"type": "gpt2", "tokenizer": "t", "config": {"n_layer": 2}, "tied_lm_head": false},
                   "no_tok": {"type": "gpt2"}, "odd": {"type": "gpt2", "tokenizer": "absent"},
                   "not_object": [1], "bad_config": {"type": "gpt2", "config": [1]}},
    "tokenizers": {"t": {"kind": "test"}}})J");
  const Bundle bundle = Bundle::from_bytes(BundleWriter(meta).bytes(), "schema.ecr");
  CHECK(has_component(bundle, "lm"));
  CHECK_FALSE(has_component(bundle, "missing"));
  CHECK_FALSE(has_component(bundle, ""));

  const Component lm = read_component(bundle, "lm");
  CHECK(lm.name == "lm");
  CHECK(lm.type == "gpt2");
  CHECK(lm.tokenizer == std::optional<std::string>("t"));
  CHECK(lm.config.integer("n_layer", 1) == 2);
  CHECK_FALSE(lm.entry.boolean_or("tied_lm_head", true));
  CHECK(lm.tensor("transformer.wte.weight") == "lm/transformer.wte.weight");
  CHECK(lm.tokenizer_spec()["kind"] == "test");
  CHECK_NOTHROW(lm.expect_type({"gpt2", "gpt2_classifier"}));
  CHECK_THROWS_WITH_AS(lm.expect_type({"roberta"}),
                       doctest::Contains("bundle 'schema.ecr': component 'lm' has type 'gpt2', expected roberta"),
                       ConfigError);
  CHECK_THROWS_WITH_AS(lm.config.integer("n_head", 1),
                       doctest::Contains("bundle 'schema.ecr': component 'lm': config.n_head is absent"), ConfigError);

  CHECK_THROWS_WITH_AS(read_component(bundle, "missing", "the generator"),
                       doctest::Contains("no component 'missing' (the generator)"), ConfigError);
  CHECK_THROWS_WITH_AS(read_component(bundle, "no_tok").tokenizer_spec(), doctest::Contains("names no tokenizer"),
                       ConfigError);
  CHECK_THROWS_WITH_AS(read_component(bundle, "odd").tokenizer_spec(),
                       doctest::Contains("uses tokenizer 'absent', which the bundle lacks"), ConfigError);
  CHECK_THROWS_WITH_AS(read_component(bundle, "not_object"), doctest::Contains("must be a JSON object"), ConfigError);
  CHECK_THROWS_WITH_AS(read_component(bundle, "bad_config"), doctest::Contains("config is [1], expected a JSON object"),
                       ConfigError);
  // Every model's load goes through the same reader.
  CHECK_THROWS_WITH_AS(Gpt2Model::load(bundle, "lm"), doctest::Contains("component 'lm': config.n_head is absent"),
                       ConfigError);
}
