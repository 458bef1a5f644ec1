// One Recommender and one Responder, loaded once, shared by eight host threads: every thread's
// results equal the serial ones bit for bit. CI builds this test alone with ThreadSanitizer
// (.ci/run), so a data race anywhere on the request path fails it.
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "ecr/recommender.hpp"
#include "ecr/responder.hpp"
#include "recommender_fixture.hpp"

using namespace ecr;

namespace {

std::vector<Dialog> dialogs() {
  const char* texts[][3] = {
      {"Hi! I love horror movies like The Shining (1980). Any ideas?", "Have you seen Halloween (1978)?",
       "Yes, too slow for me. Something newer?"},
      {"I want a funny comedy for the weekend", "Superbad (2007) is a good one.", "Seen it! Another?"},
      {"My kids liked Toy Story (1995)", "", "Something animated but for adults?"},
  };
  std::vector<Dialog> out;
  for (const auto& t : texts) {
    Dialog d;
    d.add_turn({Role::user, t[0], {}, {}});
    if (*t[1]) d.add_turn({Role::system, t[1], {}, {}});
    d.add_turn({Role::user, t[2], {}, {}});
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace

TEST_CASE("concurrency: one Recommender and Responder shared by 8 threads give the serial results") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto fx = test::recommender_fixture();
  // Loaded once from one Bundle (its tensors are made at first use, under a lock).
  const Bundle bundle = Bundle::open(fx.bundle);
  const Recommender recommender = Recommender::load(bundle);
  ResponderOptions options = ecr::test::gpt2_responder();
  options.generation.max_new_tokens = 24;
  const Responder responder = Responder::load(bundle, options);
  const std::vector<Dialog> inputs = dialogs();
  RecommendRequest request;
  request.top_k = 10;
  request.all_scores = true;

  std::vector<Responder::Turn> serial;
  for (const Dialog& d : inputs) serial.push_back(Responder::converse(recommender, responder, d, request));

  constexpr int kThreads = 8;
  std::vector<std::vector<Responder::Turn>> seen(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      // Each thread starts at another dialog, so different requests overlap.
      for (std::size_t k = 0; k < inputs.size(); ++k) {
        const std::size_t i = (k + static_cast<std::size_t>(t)) % inputs.size();
        seen[static_cast<std::size_t>(t)].push_back(
            Responder::converse(recommender, responder, inputs[i], request));
      }
    });
  for (auto& t : threads) t.join();

  for (int t = 0; t < kThreads; ++t)
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      const std::size_t i = (k + static_cast<std::size_t>(t)) % inputs.size();
      CAPTURE(t);
      CAPTURE(i);
      const Responder::Turn& got = seen[static_cast<std::size_t>(t)][k];
      const Responder::Turn& want = serial[i];
      CHECK(*got.recommendation.all_scores == *want.recommendation.all_scores);
      CHECK(got.recommendation.context_ids == want.recommendation.context_ids);
      CHECK(got.response.template_ids == want.response.template_ids);
      CHECK(got.response.reply_ids == want.response.reply_ids);
      CHECK(got.response.text == want.response.text);
    }
}
