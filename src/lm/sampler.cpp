#include "ecr/lm/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ecr/core/error.hpp"

namespace ecr::lm {

namespace {

constexpr float kBanned = -std::numeric_limits<float>::infinity();

// The top 53 bits as a double in [0, 1): the same on every standard library.
double uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

void check_generate_options(const GenerateOptions& o) {
  if (o.max_new_tokens < 0) fail<InputError>("generate: max_new_tokens {} is negative", o.max_new_tokens);
  if (!std::isfinite(o.temperature)) fail<InputError>("generate: temperature {} is not a finite number", o.temperature);
  if (o.temperature < 0.0f) fail<InputError>("generate: temperature {} is negative", o.temperature);
  if (o.top_k < 0) fail<InputError>("generate: top_k {} is negative", o.top_k);
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) fail<InputError>("generate: top_p {} is outside (0, 1]", o.top_p);
  if (!(o.repetition_penalty > 0.0f) || std::isinf(o.repetition_penalty))
    fail<InputError>("generate: repetition_penalty {} must be a positive finite number", o.repetition_penalty);
  if (o.no_repeat_ngram_size < 0)
    fail<InputError>("generate: no_repeat_ngram_size {} is negative", o.no_repeat_ngram_size);
  if (o.min_new_tokens < 0) fail<InputError>("generate: min_new_tokens {} is negative", o.min_new_tokens);
}

void apply_repetition_penalty(std::span<float> logits, std::span<const std::int32_t> context, float penalty) {
  if (penalty == 1.0f) return;
  std::vector<bool> seen(logits.size(), false);
  for (const std::int32_t t : context) {
    const auto i = static_cast<std::size_t>(t);
    if (t < 0 || i >= logits.size() || seen[i]) continue;
    seen[i] = true;
    logits[i] = logits[i] < 0 ? logits[i] * penalty : logits[i] / penalty;
  }
}

void ban_repeated_ngrams(std::span<float> logits, std::span<const std::int32_t> context, std::int64_t n) {
  const auto len = static_cast<std::int64_t>(context.size());
  if (n <= 0 || len + 1 < n) return;
  // Every earlier occurrence of the last n-1 tokens bans the token that followed it.
  const auto tail = context.last(static_cast<std::size_t>(n - 1));
  for (std::int64_t start = 0; start + n <= len; ++start) {
    const auto gram = context.subspan(static_cast<std::size_t>(start), static_cast<std::size_t>(n - 1));
    if (!std::equal(gram.begin(), gram.end(), tail.begin())) continue;
    const std::int32_t next = context[static_cast<std::size_t>(start + n - 1)];
    if (next >= 0 && static_cast<std::size_t>(next) < logits.size()) logits[static_cast<std::size_t>(next)] = kBanned;
  }
}

void ban_stop_tokens(std::span<float> logits, std::span<const std::int32_t> stop_tokens) {
  for (const std::int32_t t : stop_tokens)
    if (t >= 0 && static_cast<std::size_t>(t) < logits.size()) logits[static_cast<std::size_t>(t)] = kBanned;
}

void warp_for_sampling(std::span<float> logits, const GenerateOptions& options) {
  if (options.temperature != 1.0f)
    for (float& v : logits) v /= options.temperature;
  if (options.top_k > 0 && static_cast<std::size_t>(options.top_k) < logits.size()) {
    // Keep every token at least as likely as the k-th (ties with it survive, as in HF).
    std::vector<float> sorted(logits.begin(), logits.end());
    std::nth_element(sorted.begin(), sorted.begin() + (options.top_k - 1), sorted.end(), std::greater<>());
    const float kth = sorted[static_cast<std::size_t>(options.top_k - 1)];
    for (float& v : logits)
      if (v < kth) v = kBanned;
  }
  if (options.top_p < 1.0f) {
    // HF: sort ascending, drop tokens while the cumulative probability stays <= 1 - top_p, always
    // keeping the most likely one. Banned tokens have probability 0 and stay banned.
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < logits.size(); ++i)
      if (logits[i] != kBanned) order.push_back(i);
    if (order.empty()) return;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return logits[a] < logits[b]; });
    const float max = logits[order.back()];
    double total = 0;
    for (const std::size_t i : order) total += std::exp(static_cast<double>(logits[i] - max));
    double cumulative = 0;
    for (std::size_t r = 0; r + 1 < order.size(); ++r) {
      cumulative += std::exp(static_cast<double>(logits[order[r]] - max)) / total;
      if (cumulative > 1.0 - options.top_p) break;
      logits[order[r]] = kBanned;
    }
  }
}

std::int32_t choose_token(std::span<float> logits, const GenerateOptions& options, std::mt19937_64& rng) {
  if (logits.empty()) fail<InputError>("generate: no logits to choose from");
  if (options.temperature == 0.0f)
    return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  warp_for_sampling(logits, options);
  const float max = *std::max_element(logits.begin(), logits.end());
  if (max == kBanned) fail<InputError>("generate: every token is banned");
  double total = 0;
  for (const float v : logits) total += std::exp(static_cast<double>(v - max));
  const double target = uniform(rng) * total;
  double cumulative = 0;
  std::size_t last = 0;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] == kBanned) continue;
    cumulative += std::exp(static_cast<double>(logits[i] - max));
    last = i;
    if (cumulative > target) return static_cast<std::int32_t>(i);
  }
  return static_cast<std::int32_t>(last);  // rounding left the target just past the end
}

Sampler::Sampler(std::span<const std::int32_t> prompt, const GenerateOptions& options)
    : options_(&options), prompt_size_(prompt.size()), rng_(options.seed) {
  context_.reserve(prompt.size() + static_cast<std::size_t>(std::max<std::int64_t>(options.max_new_tokens, 0)));
  context_.assign(prompt.begin(), prompt.end());
}

std::int32_t Sampler::next(std::span<float> logits) {
  apply_repetition_penalty(logits, context_, options_->repetition_penalty);
  ban_repeated_ngrams(logits, context_, options_->no_repeat_ngram_size);
  if (static_cast<std::int64_t>(context_.size() - prompt_size_) < options_->min_new_tokens)
    ban_stop_tokens(logits, options_->stop_tokens);
  const std::int32_t token = choose_token(logits, *options_, rng_);
  context_.push_back(token);
  return token;
}

}  // namespace ecr::lm
