// Greedy decoding with llama.cpp's library, for tools/llamacpp_parity.sh (which builds it against
// a llama.cpp build; it is not part of ecr's build):
//
//   llamacpp_greedy MODEL.gguf N THREADS ids 1 2 3     continue these token ids
//   llamacpp_greedy MODEL.gguf N THREADS text "..."    tokenize the text first (special tokens
//                                                      such as <|im_start|> parsed as tokens)
//
// Prints two lines: the prompt's ids, then up to N greedy tokens (the first arg max of each
// step's logits), ending early after an end-of-generation token, as ecr generate does.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "llama.h"

int main(int argc, char** argv) {
  if (argc < 6 || (std::strcmp(argv[4], "ids") != 0 && std::strcmp(argv[4], "text") != 0)) {
    std::fprintf(stderr, "usage: llamacpp_greedy MODEL N THREADS (ids ID... | text TEXT)\n");
    return 2;
  }
  const int n_gen = std::atoi(argv[2]), threads = std::atoi(argv[3]);
  llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) {
    std::fprintf(stderr, "cannot load %s\n", argv[1]);
    return 1;
  }
  const llama_vocab* vocab = llama_model_get_vocab(model);

  std::vector<llama_token> prompt;
  if (std::strcmp(argv[4], "ids") == 0) {
    for (int i = 5; i < argc; ++i) prompt.push_back(std::atoi(argv[i]));
  } else {
    const std::string text = argv[5];
    prompt.resize(text.size() + 8);
    const int n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), prompt.data(),
                                 static_cast<int32_t>(prompt.size()), /*add_special=*/false, /*parse_special=*/true);
    if (n < 0) return 1;
    prompt.resize(static_cast<std::size_t>(n));
  }

  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(prompt.size() + n_gen + 8);
  cp.n_batch = cp.n_ctx;
  cp.n_threads = cp.n_threads_batch = threads;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (!ctx) return 1;

  for (std::size_t i = 0; i < prompt.size(); ++i) std::printf("%s%d", i ? " " : "", prompt[i]);
  std::printf("\n");
  const int n_vocab = llama_vocab_n_tokens(vocab);
  std::vector<llama_token> feed = prompt;
  for (int step = 0; step < n_gen; ++step) {
    if (llama_decode(ctx, llama_batch_get_one(feed.data(), static_cast<int32_t>(feed.size()))) != 0) return 1;
    const float* logits = llama_get_logits_ith(ctx, -1);
    llama_token best = 0;
    for (llama_token t = 1; t < n_vocab; ++t)
      if (logits[t] > logits[best]) best = t;
    std::printf("%s%d", step ? " " : "", best);
    if (llama_vocab_is_eog(vocab, best)) break;
    feed.assign(1, best);
  }
  std::printf("\n");
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
