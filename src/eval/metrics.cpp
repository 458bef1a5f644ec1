#include "ecr/eval/metrics.hpp"

#include <cmath>
#include <set>

#include <fmt/format.h>

namespace ecr::eval {

double recall_at(std::int64_t rank, std::int64_t k) { return rank >= 1 && rank <= k ? 1.0 : 0.0; }
double mrr_at(std::int64_t rank, std::int64_t k) { return rank >= 1 && rank <= k ? 1.0 / static_cast<double>(rank) : 0.0; }
double ndcg_at(std::int64_t rank, std::int64_t k) {
  return rank >= 1 && rank <= k ? 1.0 / std::log2(static_cast<double>(rank) + 1.0) : 0.0;
}

namespace {
// Sum of pair scores and pair count, so that the global and the per-batch AUC share one loop.
std::pair<double, std::size_t> auc_pairs(std::span<const RankedSample> samples) {
  double score = 0;
  std::size_t pairs = 0;
  for (const auto& p : samples) {
    if (p.feedback != Feedback::positive) continue;
    for (const auto& n : samples) {
      if (n.feedback != Feedback::negative) continue;
      score += p.gold_probability > n.gold_probability ? 1.0 : p.gold_probability == n.gold_probability ? 0.5 : 0.0;
      ++pairs;
    }
  }
  return {score, pairs};
}
}  // namespace

double pairwise_auc(std::span<const RankedSample> samples) {
  auto [score, pairs] = auc_pairs(samples);
  return pairs == 0 ? -1.0 : score / static_cast<double>(pairs);
}

double batch_averaged_auc(std::span<const RankedSample> samples, std::size_t batch_size) {
  if (batch_size == 0) batch_size = samples.size();
  double sum = 0;
  std::size_t batches = 0;
  for (std::size_t begin = 0; begin < samples.size(); begin += batch_size) {
    auto [score, pairs] = auc_pairs(samples.subspan(begin, std::min(batch_size, samples.size() - begin)));
    if (pairs == 0) continue;
    sum += score / static_cast<double>(pairs);
    ++batches;
  }
  return batches == 0 ? -1.0 : sum / static_cast<double>(batches);
}

double distinct_n(const std::vector<std::vector<std::string>>& sequences, int n) {
  std::set<std::vector<std::string>> distinct;
  std::size_t total = 0;
  for (const auto& seq : sequences) {
    for (std::size_t i = 0; i + static_cast<std::size_t>(n) <= seq.size(); ++i) {
      distinct.emplace(seq.begin() + static_cast<long>(i), seq.begin() + static_cast<long>(i) + n);
      ++total;
    }
  }
  return total == 0 ? 0.0 : static_cast<double>(distinct.size()) / static_cast<double>(total);
}

Report rank_report(std::span<const RankedSample> samples, std::span<const std::int64_t> ks, std::size_t auc_batch_size) {
  Report r;
  r.samples = samples.size();
  for (const auto& s : samples) {
    r.positives += s.feedback == Feedback::positive;
    r.negatives += s.feedback == Feedback::negative;
  }
  const double n = samples.empty() ? 1.0 : static_cast<double>(samples.size());
  const double npos = r.positives == 0 ? 1.0 : static_cast<double>(r.positives);
  for (std::int64_t k : ks) {
    double recall = 0, mrr = 0, ndcg = 0, rt = 0;
    for (const auto& s : samples) {
      recall += recall_at(s.gold_rank, k);
      mrr += mrr_at(s.gold_rank, k);
      ndcg += ndcg_at(s.gold_rank, k);
      if (s.feedback == Feedback::positive) rt += recall_at(s.gold_rank, k);
    }
    r.values[fmt::format("recall@{}", k)] = recall / n;
    r.values[fmt::format("mrr@{}", k)] = mrr / n;
    r.values[fmt::format("ndcg@{}", k)] = ndcg / n;
    r.values[fmt::format("rt@{}", k)] = rt / npos;
  }
  r.values["auc"] = pairwise_auc(samples);
  r.values["auc_batch"] = batch_averaged_auc(samples, auc_batch_size);
  return r;
}

}  // namespace ecr::eval
