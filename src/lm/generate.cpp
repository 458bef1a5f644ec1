#include "ecr/lm/generate.hpp"

#include <algorithm>
#include <utility>

#include "ecr/core/error.hpp"

namespace ecr::lm {

std::span<const std::int32_t> fit_prompt(std::span<const std::int32_t> prompt, const GenerateOptions& options,
                                         std::int64_t context_length, std::int64_t held) {
  check_generate_options(options);
  if (prompt.empty()) fail<InputError>("generate: the prompt is empty");
  if (options.max_new_tokens >= context_length)
    fail<InputError>("generate: max_new_tokens {} leaves no room for a prompt in {} positions",
                     options.max_new_tokens, context_length);
  const std::int64_t room = context_length - options.max_new_tokens - held;
  if (room <= 0)
    fail<InputError>("generate: the session holds {} tokens; {} new ones leave no room for a prompt in {} positions",
                     held, options.max_new_tokens, context_length);
  return static_cast<std::int64_t>(prompt.size()) > room ? prompt.last(static_cast<std::size_t>(room)) : prompt;
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

Generation generate(const CausalLM& model, std::span<const std::int32_t> prompt, const GenerateOptions& options,
                    const Tensor& prefix) {
  // One sequence is a batch of one: a single decode loop serves both.
  const GenerateRequest request{prompt, prefix, options};
  return std::move(generate_batch(model, std::span(&request, 1)).front());
}

std::vector<Generation> generate_batch(const CausalLM& model, std::span<const GenerateRequest> requests) {
  // A sequence being decoded: its request, its sampler, and what it feeds next: its prompt, then
  // the token it chose last.
  struct Running {
    std::size_t request;
    Sampler sampler;
    std::span<const std::int32_t> prompt;
    bool prompt_fed = false;
    std::int32_t token = 0;
  };
  std::vector<Generation> results(requests.size());
  std::vector<Running> running;
  std::vector<Tensor> prefixes;
  std::int64_t longest = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const GenerateRequest& r = requests[i];
    const std::span<const std::int32_t> prompt = fit_prompt(r.prompt, r.options, model.context_length());
    if (r.options.max_new_tokens == 0) continue;
    running.push_back({i, Sampler(prompt, r.options), prompt});
    prefixes.push_back(r.prefix);
    longest = std::max(longest, static_cast<std::int64_t>(prompt.size()) + r.options.max_new_tokens);
  }
  if (running.empty()) return results;

  const std::unique_ptr<State> state = model.new_state(prefixes, longest);
  std::vector<std::span<const std::int32_t>> feed;
  const auto vocab = static_cast<std::size_t>(model.vocab_size());
  std::vector<std::size_t> stopped;
  for (;;) {
    feed.clear();
    for (const Running& r : running) feed.push_back(r.prompt_fed ? std::span(&r.token, 1) : r.prompt);
    Tensor logits = model.forward_last(*state, feed);  // the sampler edits it in place
    stopped.clear();
    for (std::size_t j = 0; j < running.size(); ++j) {  // row j of the logits is running[j]'s
      Running& r = running[j];
      r.token = r.sampler.next(logits.span<float>().subspan(j * vocab, vocab));
      r.prompt_fed = true;
      if (accept_token(results[r.request], r.token, requests[r.request].options)) stopped.push_back(j);
    }
    // The batch shrinks: a stopped sequence leaves the state, its keys and values with it.
    for (auto j = stopped.rbegin(); j != stopped.rend(); ++j) {
      running.erase(running.begin() + static_cast<std::ptrdiff_t>(*j));
      state->remove(*j);
    }
    if (running.empty()) return results;
  }
}

std::vector<Generation> generate_batch(const CausalLM& model, std::span<const std::vector<std::int32_t>> prompts,
                                       const GenerateOptions& options, std::span<const Tensor> prefixes) {
  if (!prefixes.empty() && prefixes.size() != prompts.size())
    fail<InputError>("generate_batch: {} prefixes for {} prompts", prefixes.size(), prompts.size());
  std::vector<GenerateRequest> requests;
  requests.reserve(prompts.size());
  for (std::size_t i = 0; i < prompts.size(); ++i)
    requests.push_back({prompts[i], prefixes.empty() ? Tensor() : prefixes[i], options});
  return generate_batch(model, requests);
}

}  // namespace ecr::lm
