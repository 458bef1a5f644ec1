#include "ecr/models/generate.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ecr {

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

bool accept_token(Generation& generation, std::int32_t token, const GenerateOptions& options) {
  generation.tokens.push_back(token);
  if (options.on_token && !options.on_token(token)) {
    generation.reason = StopReason::callback;
    return true;
  }
  if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), token) != options.stop_tokens.end()) {
    generation.reason = StopReason::stop_token;
    return true;
  }
  return static_cast<std::int64_t>(generation.tokens.size()) >= options.max_new_tokens;
}

namespace {

// Checks `options` and `prompt`, and returns the prompt's newest tokens that leave room for
// max_new_tokens in the model's positions.
std::span<const std::int32_t> fit_prompt(const Gpt2Model& model, std::span<const std::int32_t> prompt,
                                         const GenerateOptions& options) {
  check_generate_options(options);
  if (prompt.empty()) fail<InputError>("generate: the prompt is empty");
  const std::int64_t positions = model.config().n_positions;
  if (options.max_new_tokens >= positions)
    fail<InputError>("generate: max_new_tokens {} leaves no room for a prompt in {} positions",
                     options.max_new_tokens, positions);
  const auto room = static_cast<std::size_t>(positions - options.max_new_tokens);
  return prompt.size() > room ? prompt.last(room) : prompt;
}

// A sequence being decoded: the processors' context (prompt + generated) and its own sampler.
struct Decoding {
  std::size_t request = 0;
  std::vector<std::int32_t> context;
  std::mt19937_64 rng;
};

// The processors and the token choice on `logits`, then the stop rule; true when `d` stops.
bool decode_step(std::span<float> logits, Decoding& d, const GenerateOptions& options, Generation& result,
                 std::int32_t& token) {
  apply_repetition_penalty(logits, d.context, options.repetition_penalty);
  ban_repeated_ngrams(logits, d.context, options.no_repeat_ngram_size);
  token = choose_token(logits, options, d.rng);
  d.context.push_back(token);
  return accept_token(result, token, options);
}

}  // namespace

Generation generate(const Gpt2Model& model, std::span<const std::int32_t> prompt, const GenerateOptions& options,
                    const Tensor& prefix) {
  prompt = fit_prompt(model, prompt, options);
  Generation result;
  if (options.max_new_tokens == 0) return result;
  Decoding d{0, std::vector<std::int32_t>(prompt.begin(), prompt.end()), std::mt19937_64(options.seed)};
  d.context.reserve(prompt.size() + static_cast<std::size_t>(options.max_new_tokens));
  result.tokens.reserve(static_cast<std::size_t>(options.max_new_tokens));

  Gpt2State state = model.start(prefix);
  state.reserve(static_cast<std::int64_t>(d.context.capacity()));
  Gpt2Output out = model.forward(state, prompt, Logits::last);
  std::int32_t token = 0;
  while (!decode_step(out.logits.span<float>(), d, options, result, token))
    out = model.forward(state, std::span<const std::int32_t>(&token, 1), Logits::last);
  return result;
}

std::vector<Generation> generate_batch(const Gpt2Model& model, std::span<const GenerateRequest> requests) {
  std::vector<Generation> results(requests.size());
  std::vector<Decoding> running;
  std::vector<Tensor> prefixes;
  std::vector<std::vector<std::int32_t>> feed;  // each running sequence's tokens for the next forward
  std::int64_t longest = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const GenerateRequest& r = requests[i];
    const std::span<const std::int32_t> prompt = fit_prompt(model, r.prompt, r.options);
    if (r.options.max_new_tokens == 0) continue;
    running.push_back({i, std::vector<std::int32_t>(prompt.begin(), prompt.end()), std::mt19937_64(r.options.seed)});
    prefixes.push_back(r.prefix);
    feed.emplace_back(prompt.begin(), prompt.end());
    longest = std::max(longest, static_cast<std::int64_t>(prompt.size()) + r.options.max_new_tokens);
  }
  if (running.empty()) return results;

  Gpt2State state = model.start(prefixes);
  state.reserve(longest);
  Gpt2Output out = model.forward(state, feed, Logits::last);
  const auto vocab = static_cast<std::size_t>(model.config().vocab_size);
  std::vector<std::size_t> stopped;
  for (;;) {
    stopped.clear();
    for (std::size_t j = 0; j < running.size(); ++j) {  // row j of the logits is running[j]'s
      Decoding& d = running[j];
      std::int32_t token = 0;
      if (decode_step(out.logits.span<float>().subspan(j * vocab, vocab), d, requests[d.request].options,
                      results[d.request], token))
        stopped.push_back(j);
      else
        feed[j].assign(1, token);
    }
    // The batch shrinks: a stopped sequence leaves the state, its keys and values with it.
    for (auto j = stopped.rbegin(); j != stopped.rend(); ++j) {
      running.erase(running.begin() + static_cast<std::ptrdiff_t>(*j));
      feed.erase(feed.begin() + static_cast<std::ptrdiff_t>(*j));
      state.remove(*j);
    }
    if (running.empty()) return results;
    out = model.forward(state, feed, Logits::last);
  }
}

std::vector<Generation> generate_batch(const Gpt2Model& model, std::span<const std::vector<std::int32_t>> prompts,
                                       const GenerateOptions& options, std::span<const Tensor> prefixes) {
  if (!prefixes.empty() && prefixes.size() != prompts.size())
    fail<InputError>("generate_batch: {} prefixes for {} prompts", prefixes.size(), prompts.size());
  std::vector<GenerateRequest> requests;
  requests.reserve(prompts.size());
  for (std::size_t i = 0; i < prompts.size(); ++i)
    requests.push_back({prompts[i], prefixes.empty() ? Tensor() : prefixes[i], options});
  return generate_batch(model, requests);
}

}  // namespace ecr
