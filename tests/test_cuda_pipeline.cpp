// The whole request on the device (an Engine whose device is cuda) against the same request on
// the CPU, on the tiny fixture bundles: the Recommender's items, order, scores and emotions; the
// Responder's template and reply tokens, streamed; the device KGPrompt (cuda::PromptDevice)
// against its CPU twin, and its static tables computed on the device against the ones the
// converter stored. The CPU path, which test_recommender.cpp and test_responder.cpp check against
// torch, is the reference here.
#include "ecr/device/cuda.hpp"
#include "support.hpp"

#ifdef ECR_WITH_CUDA

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cuda_support.hpp"
#include "ecr/engine.hpp"
#include "ecr/kg/cooccurrence.hpp"
#include "ecr/models/entity_encoder.hpp"
#include "ecr/models/prompt_encoder.hpp"
#include "ecr/models/prompt_encoder_cuda.hpp"
#include "ecr/recommender.hpp"
#include "ecr/responder.hpp"
#include "recommender_fixture.hpp"
#include "responder_fixture.hpp"

using namespace ecr;
using namespace ecr::test;

namespace {

constexpr float kScoreTolerance = 1e-4f;

// The fixtures need ../shared/data (or ECR_SHARED_DATA) and python3 with torch. On a GPU run
// (ECR_REQUIRE_GPU set, as tools/gpu_check.sh does) their absence fails the test: a skip there
// would pass without a single device request checked.
#define ECR_REQUIRE_FIXTURES()                                                                       \
  do {                                                                                               \
    if (std::getenv("ECR_REQUIRE_GPU") && (shared_data().empty() || !have_torch()))                  \
      FAIL("ECR_REQUIRE_GPU is set, but the fixtures need the shared data (ECR_SHARED_DATA: "        \
           << (shared_data().empty() ? "absent" : "found") << ") and python3 with torch ("           \
           << (have_torch() ? "found" : "absent") << ")");                                           \
    ECR_REQUIRE_SHARED_DATA();                                                                       \
    ECR_REQUIRE_TORCH();                                                                             \
  } while (0)

EngineOptions on_cuda() {
  EngineOptions o;
  o.device = DeviceSpec::parse("cuda:0");
  return o;
}

// The recommender parity dialogs (recommender_fixture.hpp): host ids and emotions; linked text
// with the classifier's emotions; no entities; past the limits.
std::vector<Dialog> dialogs(const KnowledgeGraph& kg) {
  return {labelled_dialog(kg), plain_dialog(), no_entity_dialog(), long_dialog(kg)};
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  float worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// The device recommendation equals the CPU's: the same items in the same order with scores within
// the tolerance, the same inputs, context entities and emotions. Two items may trade places only
// where the CPU scores them within 2 * tolerance of each other (a tie that fp32 rounding decides);
// the test says so when that happens.
void check_same(const Recommendation& gpu, const Recommendation& cpu) {
  REQUIRE(gpu.items.size() == cpu.items.size());
  for (std::size_t i = 0; i < cpu.items.size(); ++i) {
    CAPTURE(i);
    CHECK(std::abs(gpu.items[i].score - cpu.items[i].score) <= kScoreTolerance);
    if (gpu.items[i].id == cpu.items[i].id) {
      CHECK(gpu.items[i].name == cpu.items[i].name);
      continue;
    }
    const auto other = std::find_if(cpu.items.begin(), cpu.items.end(),
                                    [&](const RecommendedItem& c) { return c.id == gpu.items[i].id; });
    std::optional<float> cpu_score;
    if (other != cpu.items.end()) cpu_score = other->score;
    else if (cpu.all_scores) cpu_score = (*cpu.all_scores)[static_cast<std::size_t>(gpu.items[i].id)];
    // Past the CPU's top-k without every score at hand: its device score, checked above, stands in.
    if (!cpu_score) cpu_score = gpu.items[i].score;
    CHECK_MESSAGE(std::abs(*cpu_score - cpu.items[i].score) <= 2 * kScoreTolerance,
                  "device item " << gpu.items[i].id << " at " << i << " scores " << *cpu_score
                                 << " on the CPU, whose item there scores " << cpu.items[i].score);
    MESSAGE("near-tie: items " << gpu.items[i].id << " and " << cpu.items[i].id << " traded places at " << i);
  }
  REQUIRE(gpu.context_entities.size() == cpu.context_entities.size());
  for (std::size_t i = 0; i < cpu.context_entities.size(); ++i) {
    CHECK(gpu.context_entities[i].id == cpu.context_entities[i].id);
    CHECK(std::abs(gpu.context_entities[i].score - cpu.context_entities[i].score) <= kScoreTolerance);
  }
  CHECK(gpu.context_ids == cpu.context_ids);
  CHECK(gpu.prompt_ids == cpu.prompt_ids);
  CHECK(gpu.emotion_fusion == cpu.emotion_fusion);
  CHECK(gpu.user_emotions.ids == cpu.user_emotions.ids);
  REQUIRE(gpu.turns.size() == cpu.turns.size());
  for (std::size_t t = 0; t < cpu.turns.size(); ++t) {
    CAPTURE(t);
    const TurnAnalysis &g = gpu.turns[t], &c = cpu.turns[t];
    CHECK(g.emotions_from_classifier == c.emotions_from_classifier);
    CHECK(g.selected.ids == c.selected.ids);
    REQUIRE(g.emotions.has_value() == c.emotions.has_value());
    if (c.emotions)
      for (std::size_t l = 0; l < c.emotions->size(); ++l) CHECK(std::abs((*g.emotions)[l] - (*c.emotions)[l]) <= 1e-4f);
  }
  REQUIRE(gpu.all_scores.has_value() == cpu.all_scores.has_value());
  if (cpu.all_scores) CHECK(max_diff(*gpu.all_scores, *cpu.all_scores) <= kScoreTolerance);
}

Tensor host(const Tensor& t) { return t.device() == Device::cuda ? cuda::to_host(t).to_f32() : t; }

}  // namespace

TEST_CASE("cuda pipeline: the Recommender on cuda ranks as on the CPU, one at a time and in a batch") {
  ECR_REQUIRE_GPU();
  ECR_REQUIRE_FIXTURES();
  const auto fx = recommender_fixture();
  const Engine cpu_engine = Engine::load(fx.bundle);
  const Engine gpu_engine = Engine::load(fx.bundle, on_cuda());
  REQUIRE(gpu_engine.options().device.device == Device::cuda);
  const Recommender cpu = Recommender::load(cpu_engine);
  const Recommender gpu = Recommender::load(gpu_engine);
  CHECK(gpu.entity_table().device() == Device::cuda);
  const std::vector<Dialog> ds = dialogs(cpu.graph());

  for (const bool all_scores : {false, true}) {
    RecommendRequest request;
    request.top_k = 25;
    request.all_scores = all_scores;
    request.exclude_mentioned = false;  // the model's ranking: the device's top-k
    request.feedback_strength = 0;
    for (std::size_t d = 0; d < ds.size(); ++d) {
      CAPTURE(d);
      CAPTURE(all_scores);
      const Recommendation c = cpu.recommend(ds[d], request);
      const Recommendation g = gpu.recommend(ds[d], request);
      check_same(g, c);
    }
    // The classifier ran on the dialog without host emotions, on both.
    const Recommendation labelled = gpu.recommend(ds[1], request);
    CHECK(labelled.turns[0].emotions_from_classifier);

    const std::vector<Recommendation> cpu_batch = cpu.recommend_batch(ds, request);
    const std::vector<Recommendation> gpu_batch = gpu.recommend_batch(ds, request);
    REQUIRE(gpu_batch.size() == ds.size());
    for (std::size_t d = 0; d < ds.size(); ++d) {
      CAPTURE(d);
      check_same(gpu_batch[d], cpu_batch[d]);
    }
  }

  // The defaults, excluding mentioned items and reading feedback ("I loved ..."), and a top_k past
  // the number of items: every remaining item.
  Dialog liked = ds[0];
  liked.add_turn({Role::system, "", {}, {}});
  liked.add_turn({Role::user, "I loved The Shining (1980)", {}, {}});
  RecommendRequest request;
  for (const std::size_t k : {std::size_t{3}, cpu.graph().items().size() + 10}) {
    request.top_k = k;
    CAPTURE(k);
    check_same(gpu.recommend(ds[0], request), cpu.recommend(ds[0], request));
    const Recommendation c = cpu.recommend(liked, request);
    CHECK_FALSE(c.feedback.empty());
    check_same(gpu.recommend(liked, request), c);
  }

  // The same typed errors as on the CPU.
  CHECK_THROWS_AS(gpu.recommend(Dialog{}), InputError);
  request.top_k = 0;
  CHECK_THROWS_AS(gpu.recommend(ds[0], request), InputError);
}

TEST_CASE("cuda pipeline: the device KGPrompt equals the CPU's, and its device-built tables the stored ones") {
  ECR_REQUIRE_GPU();
  ECR_REQUIRE_FIXTURES();
  const auto fx = recommender_fixture();
  const Bundle computed_bundle = Bundle::open(fx.bundle);
  const Bundle stored_bundle = Bundle::open(static_tables_fixture());
  REQUIRE(stored_bundle.contains("rec_prompt/static/entity_table"));
  REQUIRE_FALSE(computed_bundle.contains("rec_prompt/static/entity_table"));
  const KnowledgeGraph kg = KnowledgeGraph::load(computed_bundle);
  const RelationCsr edges = RelationCsr::from_graph(kg);
  const CooccurrenceMatrix cooccurrence = CooccurrenceMatrix::load(computed_bundle, kg.num_entities());
  const PromptEncoder cpu = PromptEncoder::load(computed_bundle, "rec_prompt", edges, &cooccurrence);
  const cuda::PromptDevice computed =
      cuda::PromptDevice::load(read_component(computed_bundle, "rec_prompt"), edges, &cooccurrence);
  const cuda::PromptDevice stored =
      cuda::PromptDevice::load(read_component(stored_bundle, "rec_prompt"), edges, &cooccurrence);

  // Built on the device = stored by the converter = built by the CPU, table by table.
  ECR_CHECK_CLOSE(host(computed.entity_table()), host(stored.entity_table()), kScoreTolerance);
  ECR_CHECK_CLOSE(host(computed.emotion_table()), host(stored.emotion_table()), kScoreTolerance);
  ECR_CHECK_CLOSE(host(computed.global_entity_table()), host(stored.global_entity_table()), kScoreTolerance);
  ECR_CHECK_CLOSE(host(computed.prefix_rows()), host(stored.prefix_rows()), kScoreTolerance);
  ECR_CHECK_CLOSE(host(computed.entity_table()), cpu.entity_table(), kScoreTolerance);
  ECR_CHECK_CLOSE(host(computed.emotion_table()), cpu.emotion_table(), kScoreTolerance);
  ECR_CHECK_CLOSE(host(computed.global_entity_table()), cpu.global_entity_table(), kScoreTolerance);
  // The stored tables are uploaded as they are.
  CHECK(max_abs_diff(host(stored.entity_table()), stored_bundle.tensor("rec_prompt/static/entity_table").to_f32()) ==
        0.0f);

  // One request's prefix, with and without emotions and global entities, and without entities.
  std::mt19937 rng(11);
  const Tensor tokens = random_tensor({6, cpu.config().token_hidden_size}, rng, 0.5f, 0.0f, "token states");
  const std::vector<std::int32_t> entities = {kg.items()[0], kg.items()[3], static_cast<std::int32_t>(kg.num_entities() - 2)};
  const std::vector<std::int32_t> emotion_ids = {1, 2, 0, 3, 0, 0, 4, 5, 6};
  const std::vector<float> emotion_probs = {0.5f, 0.3f, 0.0f, 0.9f, 0.0f, 0.0f, 0.4f, 0.4f, 0.2f};
  cuda::Stream stream;
  const Tensor device_tokens = cuda::upload(tokens, stream);
  struct Case {
    std::span<const std::int32_t> entities, ids;
    std::span<const float> probs;
    bool global;
  };
  for (const Case& c : {Case{entities, emotion_ids, emotion_probs, true}, Case{entities, emotion_ids, emotion_probs, false},
                        Case{entities, {}, {}, true}, Case{{}, {}, {}, true}}) {
    CAPTURE(c.entities.size());
    CAPTURE(c.ids.size());
    CAPTURE(c.global);
    const Tensor want = cpu.rec_prompt({tokens, c.entities, c.ids, c.probs, c.global});
    for (const cuda::PromptDevice* device : {&computed, &stored}) {
      const Tensor got = device->rec_prompt(stream, {device_tokens, c.entities, c.ids, c.probs, c.global});
      REQUIRE(got.device() == Device::cuda);
      CHECK(got.shape() == want.shape());
      ECR_CHECK_CLOSE(host(got), want, kScoreTolerance);
    }
  }
  // The CPU twin's typed errors.
  const std::vector<std::int32_t> outside = {static_cast<std::int32_t>(kg.num_entities())};
  CHECK_THROWS_AS(computed.rec_prompt(stream, {device_tokens, outside, {}, {}, true}), InputError);
  CHECK_THROWS_AS(computed.conv_prompt(stream, device_tokens, entities), ConfigError);
  CHECK_THROWS_AS(computed.rec_prompt(stream, {tokens, entities, {}, {}, true}), DeviceError);
}

TEST_CASE("cuda pipeline: the Responder on cuda writes the CPU's template and reply, streamed") {
  ECR_REQUIRE_GPU();
  ECR_REQUIRE_FIXTURES();
  const auto f = responder_fixture();
  const Bundle bundle = Bundle::open(f.bundle);
  ResponderOptions gpu_options;
  gpu_options.device = DeviceSpec::parse("cuda:0");
  const Responder cpu = Responder::load(bundle);
  const Responder gpu = Responder::load(bundle, gpu_options);
  const Dialog dialog = Dialog::parse(R"J({"turns": [
    {"role": "user", "text": "Hi! I loved The Matrix (1999). Anything like it?", "entities": [0],
     "emotions": {"like": 0.8, "curious": 0.3}},
    {"role": "system", "text": "Have you seen Speed (1994)?", "entities": [1]},
    {"role": "user", "text": "Not yet \u2014 who is in it?", "emotions": {"curious": 0.6}}]})J");
  Recommendation recommendation;
  recommendation.items = {{0, "The Matrix (1999)", 2.0f}, {1, "Speed (1994)", 1.0f}};

  std::string streamed;
  const Response c = cpu.respond(dialog, recommendation);
  const Response g = gpu.respond(dialog, recommendation, [&](std::string_view piece) {
    streamed += piece;
    return true;
  });
  CHECK(g.template_input_ids == c.template_input_ids);
  CHECK(g.conv_prompt_ids == c.conv_prompt_ids);
  CHECK(g.conv_entities == c.conv_entities);
  CHECK(g.template_ids == c.template_ids);
  CHECK(g.template_text == c.template_text);
  CHECK(g.prompt_ids == c.prompt_ids);
  CHECK(g.reply_ids == c.reply_ids);
  CHECK(g.text == c.text);
  CHECK(streamed == g.text);
  CHECK_FALSE(g.reply_ids.empty());

  // The conv prompt itself, device against CPU, on the template's inputs.
  const KnowledgeGraph kg = KnowledgeGraph::load(bundle);
  const RelationCsr edges = RelationCsr::from_graph(kg);
  const Component conv = read_component(bundle, "conv_prompt");
  const PromptEncoder cpu_conv = PromptEncoder::load(conv, edges);
  const cuda::PromptDevice gpu_conv = cuda::PromptDevice::load(conv, edges);
  std::mt19937 rng(5);
  const Tensor tokens = random_tensor({7, cpu_conv.config().token_hidden_size}, rng, 0.5f, 0.0f, "token states");
  cuda::Stream stream;
  for (const std::vector<std::int32_t>& entities : {c.conv_entities, std::vector<std::int32_t>{}}) {
    CAPTURE(entities.size());
    const Tensor want = cpu_conv.conv_prompt(tokens, entities);
    const Tensor got = gpu_conv.conv_prompt(stream, cuda::upload(tokens, stream), entities);
    CHECK(got.shape() == want.shape());
    ECR_CHECK_CLOSE(host(got), want, kScoreTolerance);
  }

  // A stream that stops after the first piece stops the device decoding as it stops the CPU's.
  int pieces = 0;
  const auto first_only = [&](std::string_view) { return ++pieces < 1; };
  pieces = 0;
  const Response c1 = cpu.respond(dialog, recommendation, first_only);
  pieces = 0;
  const Response g1 = gpu.respond(dialog, recommendation, first_only);
  CHECK(g1.reply_ids == c1.reply_ids);
  CHECK(g1.reply_ids.size() <= g.reply_ids.size());

  // Two items in the reply.
  ResponderOptions two = gpu_options;
  two.items_in_reply = 2;
  ResponderOptions two_cpu;
  two_cpu.items_in_reply = 2;
  const Response c2 = Responder::load(bundle, two_cpu).respond(dialog, recommendation);
  const Response g2 = Responder::load(bundle, two).respond(dialog, recommendation);
  CHECK(g2.template_ids == c2.template_ids);
  CHECK(g2.reply_ids == c2.reply_ids);
}

#else

TEST_CASE("cuda pipeline: skipped in a build without CUDA") {
  MESSAGE("skipped: this build has no CUDA backend (ECR_WITH_CUDA=OFF)");
}

#endif
