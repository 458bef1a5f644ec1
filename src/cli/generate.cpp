// `ecr generate`: decodes from a bundle's GPT-2 component, given token ids or text, and prints
// the continuation (text when the component has a tokenizer, token ids otherwise).
#include <cstdio>
#include <optional>

#include <fmt/format.h>

#include "args.hpp"
#include "commands.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/core/utf8.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/models/generate.hpp"
#include "ecr/models/gpt2.hpp"
#include "ecr/text/tokenizer.hpp"
#include "engine_io.hpp"
#include "output.hpp"

namespace ecr::cli {

namespace {

std::optional<Tokenizer> component_tokenizer(const Bundle& bundle, const std::string& component) {
  const auto& meta = bundle.metadata();
  const auto& entry = meta.value("components", nlohmann::json::object()).value(component, nlohmann::json::object());
  const std::string name = entry.value("tokenizer", "");
  const auto& tokenizers = meta.value("tokenizers", nlohmann::json::object());
  if (name.empty() || !tokenizers.contains(name)) return std::nullopt;
  return Tokenizer::from_json(tokenizers.at(name));
}

const char* reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::max_new_tokens: return "max_new_tokens";
    case StopReason::stop_token: return "stop_token";
    case StopReason::callback: return "callback";
  }
  return "";
}

}  // namespace

int generate(const Argv& argv) {
  Args args("ecr generate --bundle B --component NAME (--ids 1,2,3 | --text \"...\") [options]",
            "Continues a prompt with a GPT-2 component: greedy by default, sampling with --temperature > 0.");
  args.option("bundle", "FILE", "the bundle")
      .option("component", "NAME", "a gpt2 component of the bundle")
      .option("ids", "IDS", "the prompt as comma-separated token ids")
      .option("text", "TEXT", "the prompt as text (needs the component's tokenizer)")
      .option("prefix", "FILE", "prefix prompt: f32 .npy (S, n_layer * 2 * n_embd)")
      .option("max-new-tokens", "N", "most tokens to generate", "50")
      .option("temperature", "T", "0: greedy; > 0: sample at this temperature", "0")
      .option("top-k", "K", "sampling: keep the K most likely tokens (0: all)", "0")
      .option("top-p", "P", "sampling: nucleus probability", "1")
      .option("repetition-penalty", "R", "HF repetition penalty (1: none)", "1")
      .option("no-repeat-ngram", "N", "never repeat an n-gram of this size (0: off)", "0")
      .option("stop", "IDS", "stop after any of these ids (default: the config's eos_token_id)")
      .option("seed", "S", "sampling seed", "0")
      .option("threads", "N", kThreadsHelp, "0")
      .flag("stream", "print each token as soon as it is chosen")
      .flag("json", "print {\"prompt\", \"generated\", \"text\", \"stop\"} as JSON");
  if (!args.parse(argv)) return 0;
  const Bundle bundle = Bundle::open(args.get("bundle"));
  const std::string component = args.get("component");
  const Gpt2Model model =
      Gpt2Model::load(bundle, component, std::make_shared<ThreadPool>(thread_count(args)));
  const std::optional<Tokenizer> tokenizer = component_tokenizer(bundle, component);
  if (tokenizer && tokenizer->vocab_size() > model.config().vocab_size)
    fail<ConfigError>("component '{}': its tokenizer has ids up to {}, beyond its vocab_size {}", component,
                      tokenizer->vocab_size() - 1, model.config().vocab_size);

  if (args.has("ids") == args.has("text")) fail<InputError>("give the prompt as exactly one of --ids or --text");
  std::vector<std::int32_t> prompt;
  if (args.has("text")) {
    if (!tokenizer) fail<ConfigError>("component '{}' names no tokenizer in the bundle: use --ids", component);
    prompt = tokenizer->encode(args.get("text"));
  } else {
    prompt = parse_ids(args.get("ids"), "ids");
  }

  GenerateOptions options;
  options.max_new_tokens = args.get_int("max-new-tokens");
  options.temperature = static_cast<float>(args.get_double("temperature"));
  options.top_k = args.get_int("top-k");
  options.top_p = static_cast<float>(args.get_double("top-p"));
  options.repetition_penalty = static_cast<float>(args.get_double("repetition-penalty"));
  options.no_repeat_ngram_size = args.get_int("no-repeat-ngram");
  options.seed = static_cast<std::uint64_t>(args.get_int("seed"));
  if (args.has("stop")) {
    options.stop_tokens = parse_ids(args.get("stop"), "stop");
  } else {
    const auto& config = bundle.metadata()["components"][component]["config"];
    if (config.contains("eos_token_id") && config["eos_token_id"].is_number_integer())
      options.stop_tokens = {config["eos_token_id"].get<std::int32_t>()};
  }

  // Streaming prints the text decoded so far beyond what is already out, holding back a
  // trailing U+FFFD: it may be a character whose bytes are split across tokens.
  std::vector<std::int32_t> streamed;
  std::size_t printed = 0;
  if (args.get_flag("stream") && !args.get_flag("json")) {
    options.on_token = [&](std::int32_t token) {
      streamed.push_back(token);
      if (!tokenizer) {
        fmt::print("{}{}", streamed.size() > 1 ? "," : "", token);
      } else {
        const std::string text = tokenizer->decode(streamed);
        std::size_t end = text.size();
        if (text.ends_with("\xEF\xBF\xBD")) end -= 3;
        if (end > printed) fmt::print("{}", printable(std::string_view(text).substr(printed, end - printed), true));
        printed = std::max(printed, end);
      }
      std::fflush(stdout);
      return true;
    };
  }

  const Tensor prefix = args.has("prefix") ? read_npy_f32(args.get("prefix")) : Tensor();
  const Generation result = ecr::generate(model, prompt, options, prefix);
  const std::string text = tokenizer ? tokenizer->decode(result.tokens) : "";
  if (args.get_flag("json")) {
    nlohmann::json out = {{"prompt", prompt}, {"generated", result.tokens}, {"stop", reason_name(result.reason)}};
    if (tokenizer) out["text"] = text;
    fmt::print("{}\n", json_text(out));
  } else if (options.on_token) {
    if (tokenizer && printed < text.size()) fmt::print("{}", printable(text.substr(printed), true));
    fmt::print("\n");
  } else if (tokenizer) {
    fmt::print("{}\n", printable(text, true));  // a model's bytes never drive the terminal
  } else {
    fmt::print("{}\n", fmt::join(result.tokens, ","));
  }
  return 0;
}

}  // namespace ecr::cli
