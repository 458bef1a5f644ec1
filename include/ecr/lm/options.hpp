// What one generation asks for: how each token is chosen (ecr/lm/sampler.hpp) and when decoding
// stops (ecr/lm/generate.hpp). The same options drive every decoder, CPU or device.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace ecr::lm {

struct GenerateOptions {
  std::int64_t max_new_tokens = 50;
  float temperature = 0.0f;  // 0: greedy; > 0: sample at this temperature
  std::int64_t top_k = 0;    // sampling: keep the k most likely tokens (0: all)
  float top_p = 1.0f;        // sampling: keep the smallest set with this much probability
  float repetition_penalty = 1.0f;     // > 1 discourages tokens already present
  std::int64_t no_repeat_ngram_size = 0;  // > 0: never repeat an n-gram of this size
  std::vector<std::int32_t> stop_tokens;  // generation ends after producing one of these
  // The stop tokens are banned until this many new tokens are chosen (HF's min_new_tokens): a
  // small chat model that would end its turn after one sentence has to say more.
  std::int64_t min_new_tokens = 0;
  std::uint64_t seed = 0;
  // Called with each new token as soon as it is chosen; return false to stop after it.
  std::function<bool(std::int32_t)> on_token;
};

// InputError naming the option when `options` asks for something impossible (a negative count,
// top_p outside (0, 1], a non-positive penalty). Every decoder calls it before decoding.
void check_generate_options(const GenerateOptions& options);

}  // namespace ecr::lm
