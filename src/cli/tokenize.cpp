// `ecr tokenize`: JSON lines {"text": ...} in, {"text": ..., "ids": [...]} out, with a tokenizer
// from vocab/merges files or from a bundle.
#include <cstdio>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "args.hpp"
#include "commands.hpp"
#include "ecr/core/error.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/text/tokenizer.hpp"

namespace ecr::cli {

namespace {

Tokenizer load_tokenizer(const Args& args) {
  if (auto bundle_path = args.get_opt("bundle")) {
    if (args.has("vocab") || args.has("merges") || args.has("added"))
      fail<InputError>("--bundle takes the tokenizer from the bundle; drop --vocab/--merges/--added");
    const std::string name = args.get("tokenizer");
    BundleOptions options;
    options.verify_checksums = false;  // only the metadata is read
    const Bundle bundle = Bundle::open(*bundle_path, options);
    const auto& tokenizers = bundle.metadata().value("tokenizers", nlohmann::json::object());
    if (!tokenizers.is_object() || !tokenizers.contains(name))
      fail<ConfigError>("bundle '{}' has no tokenizer '{}' in its metadata's \"tokenizers\"", *bundle_path, name);
    return Tokenizer::from_json(tokenizers.at(name));
  }
  std::map<std::string, std::int32_t> added;
  if (auto text = args.get_opt("added")) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(*text);
      added = j.get<std::map<std::string, std::int32_t>>();
    } catch (const nlohmann::json::exception& e) {
      fail<InputError>("--added: expected a JSON object of token -> id, got '{}' ({})", *text, e.what());
    }
  }
  return Tokenizer::from_files(args.get("vocab"), args.get("merges"), std::move(added));
}

}  // namespace

int tokenize(const Argv& argv) {
  Args args("ecr tokenize (--vocab V --merges M [--added JSON] | --bundle B --tokenizer NAME) [--input FILE]",
            "Reads JSON lines {\"text\": ...} and writes {\"text\": ..., \"ids\": [...]} for each.");
  args.option("vocab", "FILE", "vocab.json / encoder.json (token -> id)")
      .option("merges", "FILE", "merges.txt / vocab.bpe")
      .option("added", "JSON", "added tokens, e.g. '{\"<pad>\": 50257}'")
      .option("bundle", "FILE", "take the tokenizer from this bundle's metadata")
      .option("tokenizer", "NAME", "which of the bundle's tokenizers (a key of metadata \"tokenizers\")")
      .option("input", "FILE", "read this file instead of stdin");
  if (!args.parse(argv)) return 0;
  const Tokenizer tokenizer = load_tokenizer(args);

  std::ifstream file;
  if (auto input = args.get_opt("input")) {
    file.open(*input, std::ios::binary);
    if (!file) fail<IoError>("cannot open input '{}'", *input);
  }
  std::istream& in = file.is_open() ? file : std::cin;
  const std::string source = args.get_opt("input").value_or("<stdin>");
  std::size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail<InputError>("{}: line {}: invalid JSON ({})", source, line_no, e.what());
    }
    if (!row.is_object() || !row.contains("text") || !row["text"].is_string())
      fail<InputError>("{}: line {}: expected an object with a string field \"text\"", source, line_no);
    const std::string& text = row["text"].get_ref<const std::string&>();
    std::vector<std::int32_t> ids;
    try {
      ids = tokenizer.encode(text);
    } catch (const InputError& e) {
      std::string_view why = e.what();
      why.remove_prefix(to_string(e.kind()).size() + 2);  // "input error: "
      fail<InputError>("{}: line {}: {}", source, line_no, why);
    }
    const nlohmann::ordered_json out = {{"text", text}, {"ids", ids}};
    fmt::print("{}\n", out.dump());
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace ecr::cli
