// The evaluation metrics of ECR (docs/math.md section 10): ranking metrics over recommendation
// samples with one gold item, feedback AUC, "true recall" RT@K, and Dist-n over replies.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace ecr::eval {

// The seeker's feedback on the gold movie (ReDial's `liked`): 1 positive, 0 negative, 2 not said.
enum class Feedback : std::uint8_t { negative = 0, positive = 1, unknown = 2 };

// One recommendation sample as the metrics need it.
struct RankedSample {
  std::int64_t gold_rank = 0;  // 1-based rank of the gold item among all items (0: not ranked)
  double gold_probability = 0;  // softmax probability of the gold item over all items
  Feedback feedback = Feedback::unknown;
};

// Per-sample ranking metrics for one K: 1 / 1/rank / 1/log2(rank+1) when rank <= K, else 0.
double recall_at(std::int64_t rank, std::int64_t k);
double mrr_at(std::int64_t rank, std::int64_t k);
double ndcg_at(std::int64_t rank, std::int64_t k);

// AUC over (positive, negative) pairs: 1 when the positive sample's gold probability is the
// higher, 0.5 on a tie. Samples with unknown feedback take no part. Returns -1 without pairs.
double pairwise_auc(std::span<const RankedSample> samples);
// The paper's variant: samples are cut into consecutive batches of `batch_size`, the AUC is taken
// within each batch that has both a positive and a negative, and those AUCs are averaged.
double batch_averaged_auc(std::span<const RankedSample> samples, std::size_t batch_size);

// distinct n-grams / all n-grams over all token sequences (0 when there are no n-grams).
double distinct_n(const std::vector<std::vector<std::string>>& sequences, int n);

inline constexpr std::int64_t kDefaultKsData[] = {1, 10, 50};
inline constexpr std::span<const std::int64_t> kDefaultKs{kDefaultKsData};

// All of section 10 at once, keyed "recall@1", "mrr@10", "ndcg@50", "rt@10", "auc", "auc_batch", ...
struct Report {
  std::map<std::string, double> values;
  std::size_t samples = 0, positives = 0, negatives = 0;
};
Report rank_report(std::span<const RankedSample> samples, std::span<const std::int64_t> ks = kDefaultKs,
                   std::size_t auc_batch_size = 32);
}  // namespace ecr::eval
