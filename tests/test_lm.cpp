// The language-model layer against a scripted model: lm::generate and lm::generate_batch drive
// any lm::CausalLM (stops, budget, prompt fitting, a batch equal to its sequences alone, a batch
// that shrinks), and the sampler's pieces that the GPT-2 tests do not reach (its order, the
// option checks, the stop rule's precedence). No bundle or Python needed.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string_view>
#include <vector>

#include "ecr/core/error.hpp"
#include "ecr/lm/generate.hpp"
#include "support.hpp"

using namespace ecr;
using namespace ecr::lm;

using ecr::test::check_refused;
namespace {

constexpr std::int64_t kVocab = 8;

// Every sequence fed so far, and its prefix's shift.
struct ScriptedState final : State {
  struct Sequence {
    std::vector<std::int32_t> fed;
    std::int32_t shift = 0;
  };
  std::vector<Sequence> sequences;
  std::vector<float> logits;
  std::size_t batch() const override { return sequences.size(); }
  void remove(std::size_t b) override { sequences.erase(sequences.begin() + static_cast<std::ptrdiff_t>(b)); }
};

// The most likely next token is (last token + 1 + shift) mod kVocab, each step further round the
// ring one unit less likely, so greedy decoding counts up and sampling has a real distribution.
// A prefix is (S, 1) f32; the sum of its rows is the shift. Records what each call was fed.
class ScriptedLM final : public CausalLM {
 public:
  explicit ScriptedLM(std::int64_t context) : context_(context) {}
  std::int64_t vocab_size() const override { return kVocab; }
  std::int64_t context_length() const override { return context_; }

  std::unique_ptr<State> new_state(std::span<const Tensor> prefixes, std::int64_t reserve) const override {
    reserved.push_back(reserve);
    auto state = std::make_unique<ScriptedState>();
    for (const Tensor& p : prefixes) {
      ScriptedState::Sequence s;
      if (p.defined()) {
        if (p.dtype() != DType::f32 || p.rank() != 2 || p.dim(1) != 1)
          fail<ShapeError>("scripted prefix must be f32 (S, 1), found {}", shape_string(p.shape()));
        for (const float v : p.span<float>()) s.shift += static_cast<std::int32_t>(v);
      }
      state->sequences.push_back(s);
    }
    return state;
  }

  Tensor forward_last(State& state, std::span<const std::span<const std::int32_t>> tokens) const override {
    auto& s = dynamic_cast<ScriptedState&>(state);
    REQUIRE(tokens.size() == s.batch());
    batches.push_back(tokens.size());
    s.logits.assign(tokens.size() * kVocab, 0.0f);
    for (std::size_t b = 0; b < tokens.size(); ++b) {
      auto& seq = s.sequences[b];
      if (tokens[b].empty()) fail<InputError>("scripted: sequence {} fed nothing", b);
      seq.fed.insert(seq.fed.end(), tokens[b].begin(), tokens[b].end());
      if (static_cast<std::int64_t>(seq.fed.size()) > context_)
        fail<InputError>("scripted: sequence {} passed {} positions", b, context_);
      const std::int64_t target = (seq.fed.back() + 1 + seq.shift) % kVocab;
      for (std::int64_t t = 0; t < kVocab; ++t)
        s.logits[b * kVocab + static_cast<std::size_t>(t)] = -static_cast<float>((t - target + kVocab) % kVocab);
      fed.push_back(std::vector<std::int32_t>(tokens[b].begin(), tokens[b].end()));
    }
    return Tensor::from_vector(s.logits, {static_cast<std::int64_t>(tokens.size()), kVocab});
  }

  mutable std::vector<std::int64_t> reserved;
  mutable std::vector<std::size_t> batches;              // sequences per forward_last
  mutable std::vector<std::vector<std::int32_t>> fed;    // every sequence's tokens, call by call

 private:
  std::int64_t context_;
};


GenerateOptions budget(std::int64_t max_new) {
  GenerateOptions o;
  o.max_new_tokens = max_new;
  return o;
}

}  // namespace

TEST_CASE("lm::generate: a stop token, the callback and the budget end decoding") {
  const ScriptedLM model(64);
  const std::vector<std::int32_t> prompt = {2};
  const Generation full = generate(model, prompt, budget(6));
  CHECK(full.tokens == std::vector<std::int32_t>{3, 4, 5, 6, 7, 0});
  CHECK(full.reason == StopReason::max_new_tokens);
  // The prompt, then one token per step; the state had room for all of them from the start.
  CHECK(model.fed.front() == prompt);
  CHECK(model.fed.size() == 6);
  CHECK(model.reserved.back() == 7);

  GenerateOptions o = budget(6);
  o.stop_tokens = {5, 7};
  const Generation stopped = generate(model, prompt, o);
  CHECK(stopped.tokens == std::vector<std::int32_t>{3, 4, 5});
  CHECK(stopped.reason == StopReason::stop_token);

  std::vector<std::int32_t> streamed;
  o.on_token = [&](std::int32_t t) {
    streamed.push_back(t);
    return t != 4;
  };
  const Generation cut = generate(model, prompt, o);
  CHECK(cut.tokens == std::vector<std::int32_t>{3, 4});
  CHECK(cut.reason == StopReason::callback);
  CHECK(streamed == cut.tokens);

  CHECK(generate(model, prompt, budget(0)).tokens.empty());
}

TEST_CASE("lm::accept_token: the callback's verdict, then the stop tokens, then the budget") {
  GenerateOptions o = budget(2);
  o.stop_tokens = {9};
  o.on_token = [](std::int32_t t) { return t != 9; };
  Generation g;
  CHECK_FALSE(accept_token(g, 1, o));
  CHECK(accept_token(g, 9, o));  // both the callback and the stop token end here: the callback says why
  CHECK(g.reason == StopReason::callback);
  CHECK(g.tokens == std::vector<std::int32_t>{1, 9});

  o.on_token = nullptr;
  Generation h;
  CHECK_FALSE(accept_token(h, 1, o));
  CHECK(accept_token(h, 9, o));  // the stop token is also the last of the budget
  CHECK(h.reason == StopReason::stop_token);
  Generation k;
  CHECK_FALSE(accept_token(k, 1, o));
  CHECK(accept_token(k, 2, o));
  CHECK(k.reason == StopReason::max_new_tokens);
}

TEST_CASE("lm::fit_prompt: the newest tokens that leave room for the budget") {
  const std::vector<std::int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 0};
  CHECK(std::ranges::equal(fit_prompt(prompt, budget(4), 10), std::vector<std::int32_t>{3, 4, 5, 6, 7, 0}));
  CHECK(std::ranges::equal(fit_prompt(prompt, budget(2), 10), prompt));
  // A session already holding tokens has that much less room.
  CHECK(std::ranges::equal(fit_prompt(prompt, budget(4), 10, 3), std::vector<std::int32_t>{6, 7, 0}));
  check_refused<InputError>([&] { fit_prompt(prompt, budget(4), 10, 6); }, {"session holds 6 tokens"});
  check_refused<InputError>([&] { fit_prompt(prompt, budget(10), 10); }, {"max_new_tokens 10", "10 positions"});
  check_refused<InputError>([&] { fit_prompt({}, budget(4), 10); }, {"prompt is empty"});
  check_refused<InputError>([&] { fit_prompt(prompt, budget(-1), 10); }, {"max_new_tokens -1"});

  // generate() feeds the model the fitted prompt and never passes its context.
  const ScriptedLM model(10);
  const Generation g = generate(model, prompt, budget(4));
  CHECK(model.fed.front() == std::vector<std::int32_t>{3, 4, 5, 6, 7, 0});
  CHECK(g.tokens == std::vector<std::int32_t>{1, 2, 3, 4});
}

TEST_CASE("lm::check_generate_options names each impossible option") {
  const auto refused_option = [](auto change, std::initializer_list<std::string_view> words) {
    GenerateOptions o;
    change(o);
    check_refused<InputError>([&] { check_generate_options(o); }, words);
  };
  refused_option([](GenerateOptions& o) { o.max_new_tokens = -1; }, {"max_new_tokens -1 is negative"});
  refused_option([](GenerateOptions& o) { o.temperature = std::numeric_limits<float>::infinity(); }, {"not a finite number"});
  refused_option([](GenerateOptions& o) { o.top_k = -2; }, {"top_k -2 is negative"});
  refused_option([](GenerateOptions& o) { o.top_p = 1.5f; }, {"top_p 1.5 is outside (0, 1]"});
  refused_option([](GenerateOptions& o) { o.repetition_penalty = 0.0f; }, {"repetition_penalty 0"});
  refused_option([](GenerateOptions& o) { o.repetition_penalty = std::numeric_limits<float>::infinity(); },
          {"repetition_penalty inf"});
  refused_option([](GenerateOptions& o) { o.no_repeat_ngram_size = -3; }, {"no_repeat_ngram_size -3 is negative"});
  refused_option([](GenerateOptions& o) { o.min_new_tokens = -1; }, {"min_new_tokens -1 is negative"});
  check_generate_options(GenerateOptions{});
}

TEST_CASE("lm::Sampler: penalty, then n-gram ban, then the choice, over prompt and generated tokens") {
  // The penalty sees the prompt: token 0 (2 -> 1) falls below token 1 (1.5).
  GenerateOptions o;
  o.repetition_penalty = 2.0f;
  const std::vector<std::int32_t> prompt = {0};
  Sampler penalised(prompt, o);
  std::vector<float> logits = {2.0f, 1.5f, 0.0f};
  CHECK(penalised.next(logits) == 1);
  CHECK(logits == std::vector<float>{1.0f, 1.5f, 0.0f});
  // The chosen token joins the context: now both 0 and 1 are penalised.
  logits = {2.0f, 1.5f, 1.2f};
  CHECK(penalised.next(logits) == 2);

  // The n-gram ban follows the penalty and precedes sampling: with top_k 1 the sampler takes the
  // best token that is not banned.
  o = {};
  o.no_repeat_ngram_size = 2;
  o.temperature = 1.0f;
  o.top_k = 1;
  const std::vector<std::int32_t> repeats = {1, 2, 1};
  Sampler banned(repeats, o);
  logits = {0.0f, 0.0f, 5.0f, 4.0f};
  CHECK(banned.next(logits) == 3);  // "1 2" was seen: 2 after 1 is banned

  // A seed gives the same draws to two samplers, and another seed other draws.
  o = {};
  o.temperature = 1.0f;
  const std::vector<float> flat(kVocab, 0.0f);
  const auto draws = [&](std::uint64_t seed) {
    GenerateOptions s = o;
    s.seed = seed;
    Sampler sampler(prompt, s);
    std::vector<std::int32_t> out;
    for (int i = 0; i < 32; ++i) {
      std::vector<float> l = flat;
      out.push_back(sampler.next(l));
    }
    return out;
  };
  CHECK(draws(5) == draws(5));
  CHECK(draws(5) != draws(6));
}

TEST_CASE("lm::Sampler: min_new_tokens bans the stop tokens until that many tokens are new, then not") {
  GenerateOptions o;
  o.stop_tokens = {2, 7};  // 7 is outside the logits: ignored
  o.min_new_tokens = 2;
  const std::vector<std::int32_t> prompt = {2, 2, 2};  // the prompt's tokens do not count as new
  Sampler sampler(prompt, o);
  std::vector<float> logits = {0.0f, 1.0f, 5.0f};
  CHECK(sampler.next(logits) == 1);
  CHECK(logits[2] == -std::numeric_limits<float>::infinity());
  logits = {0.0f, 1.0f, 5.0f};
  CHECK(sampler.next(logits) == 1);
  logits = {0.0f, 1.0f, 5.0f};
  CHECK(sampler.next(logits) == 2);  // two new tokens: the stop token is allowed again
  // Without the option the first choice is the stop token.
  o.min_new_tokens = 0;
  Sampler free_to_stop(prompt, o);
  logits = {0.0f, 1.0f, 5.0f};
  CHECK(free_to_stop.next(logits) == 2);
}

TEST_CASE("lm::generate_batch: each sequence equals generate alone, and the batch shrinks as they stop") {
  const ScriptedLM model(32);
  const std::vector<std::vector<std::int32_t>> prompts = {{1}, {4, 5, 6}, {7, 2}, {3}, {0, 0}};
  const std::vector<Tensor> prefixes = {Tensor(), Tensor::from_vector(std::vector<float>{1.0f, 2.0f}, {2, 1}),
                                        Tensor(), Tensor(), Tensor::from_vector(std::vector<float>{1.0f}, {1, 1})};
  std::vector<GenerateOptions> options(5);
  options[0] = budget(5);
  options[1] = budget(9);
  options[1].stop_tokens = {6};  // after 2, with the prefix's shift of 3
  options[2] = budget(12);  // sampled, penalised, seeded
  options[2].temperature = 1.5f;
  options[2].repetition_penalty = 1.3f;
  options[2].seed = 3;
  options[3] = budget(0);  // nothing to do: never fed
  options[4] = budget(7);
  options[4].no_repeat_ngram_size = 2;

  std::vector<Generation> alone;
  for (std::size_t i = 0; i < prompts.size(); ++i) alone.push_back(generate(model, prompts[i], options[i], prefixes[i]));
  REQUIRE(alone[1].reason == StopReason::stop_token);
  REQUIRE(alone[1].tokens.size() < 9);
  REQUIRE(alone[3].tokens.empty());
  // The prefix reaches the tokens.
  CHECK(alone[1].tokens != generate(model, prompts[1], options[1]).tokens);

  std::vector<GenerateRequest> requests;
  for (std::size_t i = 0; i < prompts.size(); ++i) requests.push_back({prompts[i], prefixes[i], options[i]});
  model.batches.clear();
  const std::vector<Generation> together = generate_batch(model, requests);
  REQUIRE(together.size() == alone.size());
  for (std::size_t i = 0; i < alone.size(); ++i) {
    INFO("sequence " << i);
    CHECK(together[i].tokens == alone[i].tokens);
    CHECK(together[i].reason == alone[i].reason);
  }
  // Four sequences start (the one with no budget never does); each leaves when it stops.
  std::size_t steps_with = 4;
  std::vector<std::size_t> expected;
  std::vector<std::size_t> lengths;
  for (const std::size_t i : {0, 1, 2, 4}) lengths.push_back(alone[i].tokens.size());
  for (std::size_t step = 1; steps_with > 0; ++step) {
    expected.push_back(steps_with);
    steps_with = static_cast<std::size_t>(std::count_if(lengths.begin(), lengths.end(), [&](std::size_t n) { return n > step; }));
  }
  CHECK(model.batches == expected);

  // The shared-options form, and bad batches refused before any decoding.
  const auto shared = generate_batch(model, prompts, options[0], prefixes);
  for (std::size_t i = 0; i < prompts.size(); ++i)
    CHECK(shared[i].tokens == generate(model, prompts[i], options[0], prefixes[i]).tokens);
  CHECK(generate_batch(model, std::span<const GenerateRequest>()).empty());
  check_refused<InputError>([&] { generate_batch(model, prompts, options[0], std::span(prefixes).first(2)); },
                            {"2 prefixes for 5 prompts"});
  model.batches.clear();
  requests[3].prompt = {};
  check_refused<InputError>([&] { generate_batch(model, requests); }, {"prompt is empty"});
  requests[3].prompt = prompts[3];
  requests[0].prefix = Tensor::zeros(DType::f32, {2, 3});
  check_refused<ShapeError>([&] { generate_batch(model, requests); }, {"(S, 1)"});
  CHECK(model.batches.empty());
}
