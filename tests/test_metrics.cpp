// Metrics on hand-computed cases (docs/math.md section 10).
#include "ecr/eval/metrics.hpp"
#include "support.hpp"

using namespace ecr::eval;
using doctest::Approx;

TEST_CASE("metrics: recall, MRR and NDCG of one sample") {
  CHECK(recall_at(1, 1) == 1.0);
  CHECK(recall_at(2, 1) == 0.0);
  CHECK(recall_at(10, 10) == 1.0);
  CHECK(recall_at(0, 50) == 0.0);  // not ranked at all
  CHECK(mrr_at(4, 10) == Approx(0.25));
  CHECK(mrr_at(11, 10) == 0.0);
  CHECK(ndcg_at(1, 10) == Approx(1.0));
  CHECK(ndcg_at(3, 10) == Approx(0.5));  // 1 / log2(4)
  CHECK(ndcg_at(7, 10) == Approx(1.0 / 3.0));  // 1 / log2(8)
}

TEST_CASE("metrics: AUC over positive/negative pairs, ties count half, unknown feedback ignored") {
  const std::vector<RankedSample> s = {
      {1, 0.9, Feedback::positive}, {5, 0.2, Feedback::negative}, {3, 0.5, Feedback::positive},
      {2, 0.5, Feedback::negative}, {9, 0.99, Feedback::unknown},
  };
  // pairs: (0.9,0.2)=1 (0.9,0.5)=1 (0.5,0.2)=1 (0.5,0.5)=0.5 -> 3.5 / 4
  CHECK(pairwise_auc(s) == Approx(0.875));
  // batches of 2: {pos .9, neg .2} -> 1; {pos .5, neg .5} -> 0.5; {unknown} -> skipped
  CHECK(batch_averaged_auc(s, 2) == Approx(0.75));
  CHECK(pairwise_auc(std::vector<RankedSample>{{1, 0.5, Feedback::positive}}) == -1.0);
}

TEST_CASE("metrics: report averages over samples and RT@K over positives only") {
  const std::vector<RankedSample> s = {
      {1, 0.9, Feedback::positive}, {20, 0.1, Feedback::negative}, {60, 0.3, Feedback::positive}};
  const Report r = rank_report(s);
  CHECK(r.samples == 3);
  CHECK(r.positives == 2);
  CHECK(r.values.at("recall@1") == Approx(1.0 / 3));
  CHECK(r.values.at("recall@50") == Approx(2.0 / 3));
  CHECK(r.values.at("mrr@50") == Approx((1.0 + 1.0 / 20) / 3));
  CHECK(r.values.at("rt@50") == Approx(0.5));  // of the 2 positives only rank 1 is within 50
  CHECK(r.values.at("auc") == Approx(1.0));   // 0.9 > 0.1 and 0.3 > 0.1
}

TEST_CASE("metrics: Dist-n counts distinct n-grams over all replies") {
  const std::vector<std::vector<std::string>> replies = {{"i", "like", "it"}, {"i", "like", "this"}};
  CHECK(distinct_n(replies, 1) == Approx(4.0 / 6));
  CHECK(distinct_n(replies, 2) == Approx(3.0 / 4));
  CHECK(distinct_n(replies, 3) == Approx(2.0 / 2));
  CHECK(distinct_n(replies, 4) == 0.0);
}
