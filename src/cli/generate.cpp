// `ecr generate`: decodes from a bundle's GPT-2 component or a Llama-architecture GGUF file,
// given token ids or text, and prints the continuation (text when there is a tokenizer, token ids
// otherwise).
#include <algorithm>
#include <cstdio>
#include <optional>

#include <fmt/format.h>

#include "args.hpp"
#include "commands.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/core/utf8.hpp"
#include "ecr/device/device.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/io/component.hpp"
#include "ecr/lm/generate.hpp"
#include "ecr/io/gguf.hpp"
#include "ecr/models/gpt2.hpp"
#include "ecr/models/llama.hpp"
#include "ecr/text/chat_template.hpp"
#include "ecr/text/gguf_tokenizer.hpp"
#include "ecr/text/tokenizer.hpp"
#ifdef ECR_WITH_CUDA
#include "ecr/models/gpt2_cuda.hpp"
#endif
#include "engine_io.hpp"
#include "output.hpp"

namespace ecr::cli {

namespace {

// The component's tokenizer, when it names one the bundle has.
std::shared_ptr<const Tokenizer> component_tokenizer(const Component& component) {
  if (!component.tokenizer) return nullptr;
  return make_tokenizer(component.tokenizer_spec());
}

// Decodes on the device the options name (lm::generate's semantics on either).
lm::Generation decode(const Component& component, const EngineOptions& engine, std::span<const std::int32_t> prompt,
                  const lm::GenerateOptions& options, const Tensor& prefix) {
  require_device(engine.device);
#ifdef ECR_WITH_CUDA
  if (engine.device.device == Device::cuda) {
    cuda::select_device(engine.device.index);
    const cuda::Gpt2Device model = cuda::Gpt2Device::load(component);
    const std::int64_t prefix_rows = prefix.defined() ? prefix.dim(0) : 0;
    cuda::Gpt2Session session = model.start(
        std::min(prefix_rows + static_cast<std::int64_t>(prompt.size()) + options.max_new_tokens,
                 prefix_rows + model.config().n_positions),
        prefix);
    return session.generate(prompt, options);
  }
#endif
  const Gpt2Model model = Gpt2Model::load(component, std::make_shared<ThreadPool>(static_cast<int>(engine.threads)));
  return lm::generate(model, prompt, options, prefix);
}

// --prompt-ids: token ids separated by spaces or commas.
std::vector<std::int32_t> prompt_ids(std::string text) {
  std::replace_if(text.begin(), text.end(), [](char c) { return c == ' ' || c == '\t' || c == '\n'; }, ',');
  std::string joined;
  for (char c : text)
    if (c != ',' || (!joined.empty() && joined.back() != ',')) joined += c;
  if (!joined.empty() && joined.back() == ',') joined.pop_back();
  return parse_ids(joined, "prompt-ids");
}

// The options the sampler reads, with the GGUF-style spellings (--max-tokens, --repeat-penalty)
// taking precedence when given.
lm::GenerateOptions sampling_options(const Args& args) {
  lm::GenerateOptions options;
  options.max_new_tokens = args.get_int(args.has("max-tokens") ? "max-tokens" : "max-new-tokens");
  options.temperature = static_cast<float>(args.get_double("temperature"));
  options.top_k = args.get_int("top-k");
  options.top_p = static_cast<float>(args.get_double("top-p"));
  options.repetition_penalty =
      static_cast<float>(args.get_double(args.has("repeat-penalty") ? "repeat-penalty" : "repetition-penalty"));
  options.no_repeat_ngram_size = args.get_int("no-repeat-ngram");
  options.seed = static_cast<std::uint64_t>(args.get_int("seed"));
  return options;
}

const char* reason_name(lm::StopReason reason) {
  switch (reason) {
    case lm::StopReason::max_new_tokens: return "max_new_tokens";
    case lm::StopReason::stop_token: return "stop_token";
    case lm::StopReason::callback: return "callback";
  }
  return "";
}

}  // namespace

int generate(const Argv& argv) {
  Args args("ecr generate (--bundle B --component NAME | --gguf FILE) (--ids 1,2,3 | --prompt-ids \"1 2 3\" | "
            "--prompt \"...\") [options]",
            "Continues a prompt with a GPT-2 component or a Llama-architecture GGUF model: greedy by default, "
            "sampling with --temperature > 0. With --chat, a GGUF model's chat template lays the prompt out as "
            "a user turn (after --system, if given) and the model writes the assistant's turn.");
  args.option("bundle", "FILE", "the bundle")
      .option("component", "NAME", "a gpt2 component of the bundle")
      .option("gguf", "FILE", "a GGUF file with general.architecture llama (cpu only)")
      .option("ids", "IDS", "the prompt as comma-separated token ids")
      .option("prompt-ids", "IDS", "the prompt as token ids separated by spaces or commas")
      .option("text", "TEXT", "the prompt as text (needs the component's tokenizer)")
      .option("prompt", "TEXT", "the same as --text")
      .flag("chat", "--gguf: the prompt is a user turn in the model's chat template (control tokens in it stay text)")
      .option("system", "TEXT", "--chat: a system turn before it")
      .option("chat-template", "NAME", kChatTemplateHelp)
      .repeatable("lora", "FILE[:SCALE]", "--gguf: apply a LoRA adapter (llama.cpp's GGUF LoRA; "
                  "tools/convert_peft_lora.py converts a PEFT directory) with SCALE (default 1)")
      .option("prefix", "FILE", "prefix prompt: f32 .npy (S, n_layer * 2 * n_embd)")
      .option("max-new-tokens", "N", "most tokens to generate", "50")
      .option("max-tokens", "N", "the same as --max-new-tokens")
      .option("temperature", "T", "0: greedy; > 0: sample at this temperature", "0")
      .option("top-k", "K", "sampling: keep the K most likely tokens (0: all)", "0")
      .option("top-p", "P", "sampling: nucleus probability", "1")
      .option("repetition-penalty", "R", "HF repetition penalty (1: none)", "1")
      .option("repeat-penalty", "R", "the same as --repetition-penalty")
      .option("no-repeat-ngram", "N", "never repeat an n-gram of this size (0: off)", "0")
      .option("stop", "IDS", "stop after any of these ids (default: the config's eos_token_id, a GGUF file's "
              "eos and end-of-turn tokens, text::end_of_turn_tokens)")
      .option("seed", "S", "sampling seed", "0")
      .option("threads", "N", kThreadsHelp, "0")
      .option("device", "D", kDeviceHelp, "cpu")
      .flag("exact", "--gguf: f32 activations for block-quantized weights (the dequantized weights' exact product) "
            "instead of llama.cpp's 8-bit ones")
      .flag("stream", "print each token as soon as it is chosen")
      .flag("json", "print {\"prompt\", \"generated\", \"text\", \"stop\"} as JSON");
  if (!args.parse(argv)) return 0;
  const EngineOptions engine = engine_options(args);
  require_device(engine.device);
  if (args.has("gguf") == args.has("bundle"))
    fail<InputError>("give the model as exactly one of --gguf or --bundle with --component");
  if (int(args.has("ids")) + int(args.has("text")) + int(args.has("prompt")) + int(args.has("prompt-ids")) != 1)
    fail<InputError>("give the prompt as exactly one of --ids, --prompt-ids or --prompt (--text)");
  const bool text_prompt = args.has("text") || args.has("prompt");
  const std::string prompt_text = text_prompt ? args.get(args.has("prompt") ? "prompt" : "text") : "";
  const bool chat = args.get_flag("chat");
  if (!chat && (args.has("system") || args.has("chat-template")))
    fail<InputError>("--system and --chat-template go with --chat");
  if (chat && (!args.has("gguf") || !text_prompt)) fail<InputError>("--chat takes a --gguf model and a --prompt");
  lm::GenerateOptions options = sampling_options(args);
  std::vector<LoraSpec> lora;
  for (const std::string& arg : args.get_all("lora")) lora.push_back(LoraSpec::parse(arg));
  if (!lora.empty() && !args.has("gguf")) fail<InputError>("--lora goes with a --gguf model");
  std::vector<std::int32_t> prompt;

  // A GGUF file: a Llama model with the tokenizer (and chat template) its metadata describes.
  std::optional<gguf::File> file;
  std::optional<Component> component;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::optional<Bundle> bundle;
  if (args.has("gguf")) {
    if (engine.device.device != Device::cpu)
      fail<ConfigError>("--gguf: Llama models run on the cpu only (--device {})", args.get("device"));
    if (args.has("prefix")) fail<ConfigError>("--gguf: a Llama model takes no --prefix");
    file = gguf::File::open(args.get("gguf"));
    // A file without a tokenizer (a test fixture, a converted checkpoint) takes and gives ids.
    if (file->contains("tokenizer.ggml.model")) tokenizer = text::tokenizer_from_gguf(*file);
    if (!tokenizer && text_prompt)
      fail<ConfigError>("gguf '{}' has no tokenizer (tokenizer.ggml.model): give the prompt as --prompt-ids", file->label());
    if (chat) {
      std::vector<text::ChatMessage> messages;
      if (args.has("system")) messages.push_back({"system", args.get("system")});
      messages.push_back({"user", prompt_text});
      const std::optional<std::string> name = chat_template_name(args);
      prompt = text::encode_chat(*tokenizer, text::ChatTemplate::from_gguf(*file, name), messages, true);
    } else if (text_prompt) {
      prompt = tokenizer->encode_sequence(prompt_text);
    } else {
      prompt = prompt_ids(args.get(args.has("prompt-ids") ? "prompt-ids" : "ids"));
    }
    if (args.has("stop"))
      options.stop_tokens = parse_ids(args.get("stop"), "stop");
    else if (tokenizer)
      options.stop_tokens = text::end_of_turn_tokens(*tokenizer);
    else if (file->contains("tokenizer.ggml.eos_token_id"))
      options.stop_tokens = {static_cast<std::int32_t>(file->get<std::uint32_t>("tokenizer.ggml.eos_token_id"))};
  } else {
    bundle = Bundle::open(args.get("bundle"));
    component = read_component(*bundle, args.get("component"));
    component->expect_type({"gpt2", "gpt2_classifier"});
    const Gpt2Config config = Gpt2Config::from_fields(component->config);
    tokenizer = component_tokenizer(*component);
    if (tokenizer && tokenizer->vocab_size() > config.vocab_size)
      fail<ConfigError>("component '{}': its tokenizer has ids up to {}, beyond its vocab_size {}", component->name,
                        tokenizer->vocab_size() - 1, config.vocab_size);
    if (text_prompt) {
      if (!tokenizer) fail<ConfigError>("component '{}' names no tokenizer in the bundle: use --ids", component->name);
      prompt = tokenizer->encode(prompt_text);
    } else {
      prompt = args.has("ids") ? parse_ids(args.get("ids"), "ids") : prompt_ids(args.get("prompt-ids"));
    }
    if (args.has("stop")) {
      options.stop_tokens = parse_ids(args.get("stop"), "stop");
    } else if (component->config.has("eos_token_id")) {
      options.stop_tokens = {
          static_cast<std::int32_t>(component->config.integer("eos_token_id", 0, config.vocab_size - 1))};
    }
  }

  // Streaming prints each token's text as it comes, a character split across tokens once whole.
  std::optional<DecodeStream> text_stream;
  std::size_t streamed = 0;
  if (args.get_flag("stream") && !args.get_flag("json")) {
    if (tokenizer) text_stream.emplace(*tokenizer);
    options.on_token = [&](std::int32_t token) {
      const bool ends_turn = file && std::find(options.stop_tokens.begin(), options.stop_tokens.end(), token) !=
                                         options.stop_tokens.end();
      if (text_stream && ends_turn) return true;
      if (text_stream)
        fmt::print("{}", printable(text_stream->push(token), true));
      else
        fmt::print("{}{}", streamed++ ? "," : "", token);
      std::fflush(stdout);
      return true;
    };
  }

  lm::Generation result;
  if (file) {
    LlamaOptions llama;
    if (args.get_flag("exact")) llama.activations = nn::Activations::exact;
    const LlamaModel model =
        LlamaModel::load(*file, std::make_shared<ThreadPool>(static_cast<int>(engine.threads)), lora, llama);
    result = lm::generate(model, prompt, options);
  } else {
    const Tensor prefix = args.has("prefix") ? read_npy_f32(args.get("prefix")) : Tensor();
    result = decode(*component, engine, prompt, options, prefix);
  }
  // A GGUF model's text ends before the token that ended its turn (<|im_end|>): that token is
  // the template's, not the reply's. The ids keep it.
  std::span<const std::int32_t> text_ids = result.tokens;
  if (file && result.reason == lm::StopReason::stop_token && !text_ids.empty()) text_ids = text_ids.first(text_ids.size() - 1);
  const std::string text = tokenizer ? tokenizer->decode(text_ids) : "";
  if (args.get_flag("json")) {
    nlohmann::json out = {{"prompt", prompt}, {"generated", result.tokens}, {"stop", reason_name(result.reason)}};
    if (tokenizer) out["text"] = text;
    fmt::print("{}\n", json_text(out));
  } else if (options.on_token) {
    if (text_stream) fmt::print("{}", printable(text_stream->finish(), true));
    fmt::print("\n");
  } else if (tokenizer) {
    fmt::print("{}\n", printable(text, true));  // a model's bytes never drive the terminal
  } else {
    fmt::print("{}\n", fmt::join(result.tokens, ","));
  }
  return 0;
}

}  // namespace ecr::cli
