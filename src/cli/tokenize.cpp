// `ecr tokenize`: JSON lines {"text": ...} in, {"text": ..., "ids": [...]} out, with a tokenizer
// from vocab/merges files, a bundle or a GGUF file. A line that cannot be tokenized gives an
// {"error": ...} line in its place and the exit status 1 once every line is done.
#include <cstdio>
#include <limits>

#include <fmt/format.h>

#include "args.hpp"
#include "commands.hpp"
#include "ecr/core/error.hpp"
#include "ecr/core/utf8.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/io/component.hpp"
#include "ecr/io/gguf.hpp"
#include "ecr/text/byte_level_bpe.hpp"
#include "ecr/text/gguf_tokenizer.hpp"
#include "input.hpp"
#include "output.hpp"

namespace ecr::cli {

namespace {

std::shared_ptr<const Tokenizer> load_tokenizer(const Args& args) {
  if (auto gguf_path = args.get_opt("gguf")) {
    if (args.has("bundle") || args.has("vocab") || args.has("merges") || args.has("added"))
      fail<InputError>("--gguf takes the tokenizer from the GGUF file; drop --bundle/--vocab/--merges/--added");
    return text::tokenizer_from_gguf(gguf::File::open(*gguf_path));
  }
  if (args.has("special") || args.has("add-special"))
    fail<InputError>("--special and --add-special are for --gguf (a bundle's tokenizer always reads control tokens)");
  if (auto bundle_path = args.get_opt("bundle")) {
    if (args.has("vocab") || args.has("merges") || args.has("added"))
      fail<InputError>("--bundle takes the tokenizer from the bundle; drop --vocab/--merges/--added");
    const std::string name = args.get("tokenizer");
    BundleOptions options;
    options.verify_checksums = false;  // only the metadata is read
    const Bundle bundle = Bundle::open(*bundle_path, options);
    return make_tokenizer(tokenizer_spec(bundle, name));
  }
  std::map<std::string, std::int32_t> added;
  if (auto text = args.get_opt("added")) {
    const nlohmann::json j = parse_json(*text, "--added");
    if (!j.is_object()) fail<InputError>("--added: expected a JSON object of token -> id");
    // Each id is range-checked before it narrows: 4000000000 must not become -294967296.
    for (const auto& [token, id] : j.items()) {
      if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
          id.get<std::int64_t>() > std::numeric_limits<std::int32_t>::max())
        fail<InputError>("--added: token '{}' has id {}, expected an integer in [0, {}]", token, id.dump(),
                         std::numeric_limits<std::int32_t>::max());
      added.emplace(token, id.get<std::int32_t>());
    }
  }
  return std::make_shared<const text::ByteLevelBpe>(
      text::ByteLevelBpe::from_files(args.get("vocab"), args.get("merges"), std::move(added)));
}

}  // namespace

int tokenize(const Argv& argv) {
  Args args("ecr tokenize (--vocab V --merges M [--added JSON] | --bundle B --tokenizer NAME | --gguf FILE "
            "[--special] [--add-special]) [--input FILE]",
            "Reads JSON lines {\"text\": ...} and writes {\"text\": ..., \"ids\": [...]} for each; a line that "
            "cannot be\ntokenized gives {\"line\": N, \"error\": ...} in its place, and the exit status is 1 "
            "when any did.");
  args.option("vocab", "FILE", "vocab.json / encoder.json (token -> id)")
      .option("merges", "FILE", "merges.txt / vocab.bpe")
      .option("added", "JSON", "added tokens, e.g. '{\"<pad>\": 50257}'")
      .option("bundle", "FILE", "take the tokenizer from this bundle's metadata")
      .option("tokenizer", "NAME", "which of the bundle's tokenizers (a key of metadata \"tokenizers\")")
      .option("gguf", "FILE", "take the tokenizer from this GGUF file's tokenizer.ggml.* metadata")
      .flag("special", "with --gguf: text that spells a control token (<|im_start|>, <s>) is that token "
                       "(default: plain characters)")
      .flag("add-special", "with --gguf: add bos/eos where the file says a sequence has them")
      .option("input", "FILE", "read this file instead of stdin")
      .option("timeout", "SECONDS", kTimeoutHelp, kDefaultTimeout);
  if (!args.parse(argv)) return 0;
  const std::shared_ptr<const Tokenizer> tokenizer = load_tokenizer(args);
  // A bundle's tokenizer reads control tokens in the text, as the pipeline's own prompts need; a
  // GGUF file's does only when asked, since its text usually comes from outside.
  const ControlText control =
      !args.has("gguf") || args.get_flag("special") ? ControlText::as_tokens : ControlText::as_text;
  const bool add_special = args.get_flag("add-special");

  LineReader in(args.get_opt("input").value_or("-"), "input", input_timeout(args));
  const std::string& source = in.source();
  bool failed = false;
  for (std::string line; in.next(line);) {
    const std::size_t line_no = in.line_number();
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const nlohmann::json row = parse_json(line, fmt::format("{}: line {}", source, line_no));
      if (!row.is_object() || !row.contains("text") || !row["text"].is_string())
        fail<InputError>("{}: line {}: expected an object with a string field \"text\"", source, line_no);
      const std::string& text = row["text"].get_ref<const std::string&>();
      std::vector<std::int32_t> ids;
      try {
        ids = add_special ? tokenizer->encode_sequence(text, control) : tokenizer->encode(text, control);
      } catch (const InputError& e) {
        std::string_view why = e.what();
        why.remove_prefix(to_string(e.kind()).size() + 2);  // "input error: "
        fail<InputError>("{}: line {}: {}", source, line_no, why);
      }
      const nlohmann::ordered_json out = {{"text", text}, {"ids", ids}};
      fmt::print("{}\n", json_text(out));
    } catch (const InputError& e) {
      failed = true;
      fmt::print(stderr, "ecr tokenize: {}\n", printable(e.what()));
      const nlohmann::ordered_json out = {{"line", line_no}, {"error", e.what()}};
      fmt::print("{}\n", json_text(out));
    }
  }
  std::fflush(stdout);
  return failed ? 1 : 0;
}

}  // namespace ecr::cli
