// ecr.LLM: a Llama-architecture GGUF model (include/ecr/models/llama.hpp) with the tokenizer and
// chat template its metadata describes, decoding as `ecr generate --gguf` does (src/cli/generate.cpp):
// the same tokenizer, chat template, stop tokens and lm::generate, so the same arguments give the
// same tokens. Everything a request reads is built at load; a loaded LLM is immutable and shared
// across Python threads, and generation runs without the GIL.
#include <algorithm>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "ecr/core/error.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/io/gguf.hpp"
#include "ecr/lm/generate.hpp"
#include "ecr/models/llama.hpp"
#include "ecr/text/chat_template.hpp"
#include "ecr/text/gguf_tokenizer.hpp"
#include "ecr/text/tokenizer.hpp"
#include "stream.hpp"

namespace ecr::python {

namespace {

class LLM {
 public:
  static std::shared_ptr<const LLM> load(py::handle path, py::handle lora, long long threads,
                                         std::optional<std::string> chat_template, bool exact) {
    const std::filesystem::path file_path = path_arg(path);
    const std::vector<LoraSpec> adapters = lora_specs(lora);
    const std::size_t n_threads = thread_count(threads);
    if (chat_template) text::ChatTemplate::by_name(*chat_template);  // an unknown name fails now, not at the first chat
    auto llm = std::make_shared<LLM>();
    py::gil_scoped_release unlocked;
    const gguf::File file = gguf::File::open(file_path);
    LlamaOptions options;
    if (exact) options.activations = nn::Activations::exact;
    llm->model_.emplace(
        LlamaModel::load(file, std::make_shared<ThreadPool>(static_cast<int>(n_threads)), adapters, options));
    llm->label_ = file.label();
    llm->architecture_ = file.get<std::string>("general.architecture");
    // A file without a tokenizer (a test fixture, a converted checkpoint) takes and gives ids.
    if (file.contains("tokenizer.ggml.model")) llm->tokenizer_ = text::tokenizer_from_gguf(file);
    if (llm->tokenizer_) {
      llm->stop_tokens_ = text::end_of_turn_tokens(*llm->tokenizer_);
      // A model without a template it names (or one ecr does not know) still continues text;
      // chat=True then raises the error from_gguf gave.
      try {
        llm->chat_.emplace(text::ChatTemplate::from_gguf(file, chat_template));
      } catch (const Error&) {
        llm->chat_error_ = std::current_exception();
      }
    } else if (file.contains("tokenizer.ggml.eos_token_id")) {
      llm->stop_tokens_ = {static_cast<std::int32_t>(file.get<std::uint32_t>("tokenizer.ggml.eos_token_id"))};
    }
    return llm;
  }

  const LlamaModel& model() const { return *model_; }
  const std::string& label() const { return label_; }
  const std::string& architecture() const { return architecture_; }
  const std::vector<std::int32_t>& stop_tokens() const { return stop_tokens_; }
  std::optional<std::string> chat_template() const {
    return chat_ ? std::optional<std::string>(chat_->name()) : std::nullopt;
  }
  const std::shared_ptr<const Tokenizer>& tokenizer() const { return tokenizer_; }

  const Tokenizer& require_tokenizer() const {
    if (!tokenizer_)
      fail<ConfigError>("gguf '{}' has no tokenizer (tokenizer.ggml.model): give prompts as token ids", label_);
    return *tokenizer_;
  }

  // The prompt's ids: given as ids, as text (the tokenizer's BOS rule applied), or with
  // `chat` as a user turn (after `system`) in the model's chat template, as `ecr generate --chat`.
  std::vector<std::int32_t> prompt_ids(py::handle prompt, bool chat, const std::optional<std::string>& system) const {
    if (!chat && system) fail<InputError>("system goes with chat=True");
    if (py::isinstance<py::str>(prompt)) {
      const std::string text = prompt.cast<std::string>();
      const Tokenizer& tokenizer = require_tokenizer();
      py::gil_scoped_release unlocked;
      if (!chat) return tokenizer.encode_sequence(text);
      if (!chat_) std::rethrow_exception(chat_error_);
      std::vector<text::ChatMessage> messages;
      if (system) messages.push_back({"system", *system});
      messages.push_back({"user", text});
      return text::encode_chat(tokenizer, *chat_, messages, true);
    }
    if (chat) throw py::type_error("prompt: chat=True takes the user's turn as a str");
    if (!py::isinstance<py::sequence>(prompt))
      throw py::type_error(fmt::format("prompt: expected a str or a list of token ids, got {}",
                                       py::str(py::type::handle_of(prompt).attr("__name__")).cast<std::string>()));
    std::vector<std::int32_t> ids;
    for (py::handle id : prompt.cast<py::sequence>()) {
      const long long value = id.cast<long long>();
      if (value < 0 || value >= model_->vocab_size())
        fail<InputError>("prompt: token id {} is outside the vocabulary (0 to {})", value, model_->vocab_size() - 1);
      ids.push_back(static_cast<std::int32_t>(value));
    }
    if (ids.empty()) fail<InputError>("prompt: no tokens");
    return ids;
  }

  // The text of a generation: its tokens less the one that ended the turn (<|im_end|> is the
  // template's, not the reply's), as the CLI prints it.
  std::string text_of(const lm::Generation& generation) const {
    std::span<const std::int32_t> ids = generation.tokens;
    if (generation.reason == lm::StopReason::stop_token && !ids.empty()) ids = ids.first(ids.size() - 1);
    return require_tokenizer().decode(ids);
  }

 private:
  std::optional<LlamaModel> model_;
  std::string label_, architecture_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::optional<text::ChatTemplate> chat_;
  std::exception_ptr chat_error_;
  std::vector<std::int32_t> stop_tokens_;  // the end-of-turn tokens (the file's eos without a tokenizer)
};

lm::GenerateOptions generate_options(const LLM& llm, long long max_tokens, float temperature, long long top_k,
                                     float top_p, float repetition_penalty, long long no_repeat_ngram,
                                     std::uint64_t seed, const std::optional<std::vector<std::int32_t>>& stop) {
  lm::GenerateOptions options;
  options.max_new_tokens = max_tokens;
  options.temperature = temperature;
  options.top_k = top_k;
  options.top_p = top_p;
  options.repetition_penalty = repetition_penalty;
  options.no_repeat_ngram_size = no_repeat_ngram;
  options.seed = seed;
  options.stop_tokens = stop ? *stop : llm.stop_tokens();
  lm::check_generate_options(options);
  return options;
}

// generate()'s arguments after the prompt, bound once for generate, generate_ids and generate_stream.
#define ECR_LLM_GENERATE_ARGS                                                                                      \
  py::arg("prompt"), py::kw_only(), py::arg("max_tokens") = 50, py::arg("temperature") = 0.0f,                   \
      py::arg("top_k") = 0, py::arg("top_p") = 1.0f, py::arg("repetition_penalty") = 1.0f,                       \
      py::arg("no_repeat_ngram") = 0, py::arg("seed") = 0, py::arg("stop") = py::none(), py::arg("chat") = false, \
      py::arg("system") = py::none()

using Stop = std::optional<std::vector<std::int32_t>>;
using System = std::optional<std::string>;

lm::Generation run(const LLM& llm, const std::vector<std::int32_t>& prompt, const lm::GenerateOptions& options) {
  py::gil_scoped_release unlocked;
  return lm::generate(llm.model(), prompt, options);
}

}  // namespace

void bind_llm(py::module_& m) {
  py::class_<LLM, std::shared_ptr<LLM>>(m, "LLM", R"doc(
A Llama-architecture GGUF model (Llama 2/3, TinyLlama, SmolLM2, Mistral-style) with the tokenizer
and chat template its metadata describes; generate() decodes as `ecr generate --gguf` does, token
for token. Immutable after load, shared across threads; generation releases the GIL.

    llm = ecr.LLM.load("SmolLM2-135M-Instruct.Q4_1.gguf")
    print(llm.generate("Recommend a movie.", chat=True, max_tokens=40))
    for piece in llm.generate_stream("Once upon a time", temperature=0.8, seed=1):
        print(piece, end="", flush=True))doc")
      .def_static(
          "load",
          [](py::handle path, py::handle lora, long long threads, std::optional<std::string> chat_template,
             bool exact) {
            return std::const_pointer_cast<LLM>(LLM::load(path, lora, threads, std::move(chat_template), exact));
          },
          py::arg("path"), py::kw_only(), py::arg("lora") = py::none(), py::arg("threads") = 0,
          py::arg("chat_template") = py::none(), py::arg("exact") = false, R"doc(
Loads a GGUF file (memory-mapped; quantized weights stay quantized). lora: LoRA adapters
(llama.cpp GGUF LoRA files; tools/convert_peft_lora.py converts a PEFT directory), each
"FILE[:SCALE]", a path, or a (path, scale) pair. threads: for the ops of one request (0: one per
core). chat_template: a family by name ("chatml", "llama2", "llama3", "zephyr", "mistral") instead
of the one detected from tokenizer.chat_template. exact: f32 activations for every matrix (the
dequantized weights' exact product, `ecr generate --exact`) instead of llama.cpp's 8-bit ones for
the blocks of 32. FormatError / ConfigError / ShapeError / IoError
naming the file, tensor or key.)doc")
      .def_property_readonly("architecture", &LLM::architecture, "general.architecture (\"llama\").")
      .def_property_readonly("vocab_size", [](const LLM& llm) { return llm.model().vocab_size(); })
      .def_property_readonly("context_length", [](const LLM& llm) { return llm.model().context_length(); })
      .def_property_readonly("chat_template", &LLM::chat_template,
                             "The chat template's family name, None when the file has none ecr knows.")
      .def_property_readonly(
          "tokenizer",
          [](const LLM& llm) -> py::object {
            if (!llm.tokenizer()) return py::none();
            return py::cast(std::const_pointer_cast<Tokenizer>(llm.tokenizer()));
          },
          "The ecr.Tokenizer from the file's metadata, None when it has none.")
      .def_property_readonly("stop_tokens", &LLM::stop_tokens,
                             "The ids that end generation by default: eos and the end-of-turn tokens.")
      .def(
          "tokenize",
          [](const LLM& llm, const std::string& text) {
            const Tokenizer& tokenizer = llm.require_tokenizer();
            py::gil_scoped_release unlocked;
            return tokenizer.encode_sequence(text);
          },
          py::arg("text"), "The ids of a text as generate() reads a str prompt (bos first when the file asks for it).")
      .def(
          "detokenize",
          [](const LLM& llm, const std::vector<std::int32_t>& ids) { return llm.require_tokenizer().decode(ids); },
          py::arg("ids"), "The text of token ids (InputError for an id outside the vocabulary).")
      .def(
          "generate",
          [](const LLM& llm, py::handle prompt, long long max_tokens, float temperature, long long top_k, float top_p,
             float repetition_penalty, long long no_repeat_ngram, std::uint64_t seed, const Stop& stop, bool chat,
             const System& system) {
            const auto options = generate_options(llm, max_tokens, temperature, top_k, top_p, repetition_penalty,
                                                  no_repeat_ngram, seed, stop);
            llm.require_tokenizer();
            return llm.text_of(run(llm, llm.prompt_ids(prompt, chat, system), options));
          },
          ECR_LLM_GENERATE_ARGS, R"doc(
The continuation of a prompt (a str, or a list of token ids) as text, ending before the token
that ended the turn. Greedy at temperature 0; else sampled with top_k (0: all), top_p and seed
(the same seed, the same text). repetition_penalty > 1 discourages tokens already present;
no_repeat_ngram > 0 never repeats an n-gram of that size. stop: the token ids that end it
(default: eos and the end-of-turn tokens). chat=True lays the prompt out as a user turn in the
model's chat template (after a system turn when system is given), and the model writes the
assistant's turn.)doc")
      .def(
          "generate_ids",
          [](const LLM& llm, py::handle prompt, long long max_tokens, float temperature, long long top_k, float top_p,
             float repetition_penalty, long long no_repeat_ngram, std::uint64_t seed, const Stop& stop, bool chat,
             const System& system) {
            const auto options = generate_options(llm, max_tokens, temperature, top_k, top_p, repetition_penalty,
                                                  no_repeat_ngram, seed, stop);
            return run(llm, llm.prompt_ids(prompt, chat, system), options).tokens;
          },
          ECR_LLM_GENERATE_ARGS,
          "generate()'s new token ids, the one that ended the turn included (works without a tokenizer).")
      .def(
          "generate_stream",
          [](std::shared_ptr<LLM> self, py::handle prompt, long long max_tokens, float temperature, long long top_k,
             float top_p, float repetition_penalty, long long no_repeat_ngram, std::uint64_t seed, const Stop& stop,
             bool chat, const System& system) {
            std::shared_ptr<const LLM> llm = self;
            lm::GenerateOptions options = generate_options(*llm, max_tokens, temperature, top_k, top_p,
                                                           repetition_penalty, no_repeat_ngram, seed, stop);
            llm->require_tokenizer();
            std::vector<std::int32_t> ids = llm->prompt_ids(prompt, chat, system);
            return std::make_unique<TextStream>(
                [llm, ids = std::move(ids), options = std::move(options)](const TextStream::Sink& sink) mutable {
                  // Each token's text once its characters are whole; the token that ends the turn
                  // is left out, as generate() leaves it out.
                  DecodeStream text(*llm->tokenizer());
                  options.on_token = [&](std::int32_t token) {
                    if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), token) !=
                        options.stop_tokens.end())
                      return true;
                    const std::string piece = text.push(token);
                    return piece.empty() || sink(piece);
                  };
                  lm::generate(llm->model(), ids, options);
                  const std::string rest = text.finish();
                  if (!rest.empty()) sink(rest);
                });
          },
          ECR_LLM_GENERATE_ARGS, R"doc(
generate() as an ecr.TextStream: iterate for the text's pieces (whole UTF-8 characters, as soon as
they are decoded), which add up to generate()'s text; close() stops it early.)doc")
      .def("__repr__", [](const LLM& llm) {
        return fmt::format("ecr.LLM('{}', {}, vocab_size={}, context_length={}, chat_template={})", llm.label(),
                           llm.architecture(), llm.model().vocab_size(), llm.model().context_length(),
                           llm.chat_template().value_or("None"));
      });
}

#undef ECR_LLM_GENERATE_ARGS

}  // namespace ecr::python
