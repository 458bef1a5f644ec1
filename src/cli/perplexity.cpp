// `ecr perplexity`: the language-model perplexity of a bundle's GPT-2 component on ReDial
// dialogs, with its matrices as stored or cast at load to each weight type asked for (the cast
// Gpt2Model::load does: f32 widens, f16 / bf16 round, int8 quantizes per row), so that what a
// weight type costs in quality is one command away.
//
// Text: each dialog as the Recommender's context has it (context_text: "User: ...<|endoftext|>
// System: ...<|endoftext|>", @mentions as titles) after one <|endoftext|>, so that every token of
// the dialog is predicted. A dialog longer than n_positions runs in windows of n_positions tokens
// that overlap by one: each token after the first is scored once, with its window before it.
// Perplexity = exp(sum of -ln p(token | tokens before it) / tokens scored), over the dialogs
// scored: by default 300 spread evenly over the file (read_dialogs says why not the first).
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "args.hpp"
#include "commands.hpp"
#include "ecr/core/error.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/dialog.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/io/component.hpp"
#include "ecr/io/output_file.hpp"
#include "ecr/models/gpt2.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/text/tokenizer.hpp"
#include "input.hpp"

namespace ecr::cli {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string weight_name(DType dtype) { return dtype == DType::i8 ? "int8" : std::string(dtype_name(dtype)); }

// --dtype: "stored" or a weight type, comma-separated.
std::vector<nn::MatrixType> weight_types(const std::string& list) {
  std::vector<nn::MatrixType> types;
  std::size_t begin = 0;
  while (begin <= list.size()) {
    const std::size_t end = std::min(list.find(',', begin), list.size());
    const std::string name = list.substr(begin, end - begin);
    begin = end + 1;
    if (name == "stored") {
      types.push_back(nn::kAsStored);
    } else if (name == "int8") {
      types.push_back(DType::i8);
    } else if (const auto d = dtype_from_name(name);
               d && (*d == DType::f32 || *d == DType::f16 || *d == DType::bf16 || *d == DType::q8_0 ||
                     *d == DType::q4_0)) {
      types.push_back(*d);
    } else {
      fail<InputError>("--dtype takes stored, f32, f16, bf16, int8, q8_0 or q4_0 (comma-separated), not '{}'", name);
    }
  }
  return types;
}

// The token ids (<|endoftext|>, then the context text) of `sample` dialogs of the file spread
// evenly over it, the i-th of n being dialog floor(i n / sample) (0: every dialog). A file's
// dialogs are seldom in random order (ReDial's test split grows harder towards its end), so its
// first dialogs would not stand for the whole.
std::vector<std::vector<std::int32_t>> read_dialogs(const std::string& path, std::size_t sample,
                                                    const Tokenizer& tokenizer, Timeout timeout) {
  constexpr std::string_view eos = "<|endoftext|>";
  struct Line {
    std::string text;
    std::size_t number;
  };
  std::vector<Line> lines;
  LineReader in(path, "dialogs", timeout);
  for (std::string line; in.next(line);)
    if (line.find_first_not_of(" \t\r") != std::string::npos) lines.push_back({std::move(line), in.line_number()});
  const std::size_t n = sample ? std::min(sample, lines.size()) : lines.size();
  std::vector<std::vector<std::int32_t>> dialogs;
  for (std::size_t i = 0; i < n; ++i) {
    const Line& line = lines[i * lines.size() / n];
    const std::string where = fmt::format("{}:{}", path, line.number);
    const json record = parse_json(line.text, where);
    try {
      dialogs.push_back(tokenizer.encode(std::string(eos) + context_text(Dialog::from_redial(record), eos)));
    } catch (const InputError& e) {
      fail<InputError>("{}: {}", where, e.what());
    }
  }
  return dialogs;
}

// -ln p(ids[t] | ids[..t]) summed over t >= 1, window by window (see the top of the file).
double nll(const Gpt2Model& model, std::span<const std::int32_t> ids) {
  double sum = 0;
  const auto window_size = static_cast<std::size_t>(model.config().n_positions);
  for (std::size_t start = 0; start + 1 < ids.size(); start += window_size - 1) {
    const auto window = ids.subspan(start, std::min(window_size, ids.size() - start));
    const Tensor logits = model.forward(window, {}, Logits::all).logits;
    const auto rows = nn::view(logits);
    for (std::size_t t = 0; t + 1 < window.size(); ++t) {
      const auto row = rows.row(static_cast<Eigen::Index>(t));
      const float top = row.maxCoeff();
      const double log_z = top + std::log(static_cast<double>((row.array() - top).exp().sum()));
      sum += log_z - row(window[t + 1]);
    }
  }
  return sum;
}

}  // namespace

int perplexity(const Argv& argv) {
  Args args("ecr perplexity --dialogs FILE.jsonl [--bundle B] [--component NAME] [--dtype LIST] [options]",
            "Language-model perplexity of a GPT-2 component on ReDial dialogs (one JSON object a line), each as\n"
            "the contexts have it (\"User: ...<|endoftext|>System: ...\"), with the matrices as stored or cast at\n"
            "load to each weight type of --dtype: one row each.");
  args.option("bundle", "BUNDLE", kBundleHelp)
      .option("component", "NAME", "a gpt2 component of the bundle (generator: the Responder's reply decoder)",
              "generator")
      .option("dialogs", "FILE", "ReDial dialogs, JSON lines")
      .option("timeout", "SECONDS", kTimeoutHelp, kDefaultTimeout)
      .option("sample", "N", "score N dialogs spread evenly over the file (0: all)", "300")
      .option("dtype", "LIST", "comma-separated weight types: stored, f32, f16, bf16, int8, q8_0, q4_0", "stored")
      .option("threads", "N", kThreadsHelp, "0")
      .option("json", "OUT", "also write the results as JSON to OUT");
  if (!args.parse(argv)) return 0;
  const long long sample = args.get_int("sample");
  if (sample < 0) fail<InputError>("--sample must be 0 (all) or more, got {}", sample);
  const std::vector<nn::MatrixType> types = weight_types(args.get("dtype"));
  const std::filesystem::path bundle_path = bundle_or_default(args);
  const Bundle bundle = Bundle::open(bundle_path);
  const Component component = read_component(bundle, args.get("component"));
  component.expect_type({"gpt2"});
  const Gpt2Config config = Gpt2Config::from_fields(component.config);
  if (config.n_positions < 2)
    fail<ConfigError>("component '{}': n_positions {} leaves nothing to predict", component.name, config.n_positions);
  const std::string path = args.get("dialogs");
  const auto dialogs =
      read_dialogs(path, static_cast<std::size_t>(sample), *make_tokenizer(component.tokenizer_spec()),
                   input_timeout(args));
  std::size_t tokens = 0;  // every token after a dialog's first
  for (const auto& ids : dialogs) tokens += ids.size() - 1;
  if (!tokens) fail<InputError>("{}: no text in the {} dialogs sampled", path, dialogs.size());
  auto pool = std::make_shared<ThreadPool>(thread_count(args));

  json results = json::array();
  for (const nn::MatrixType& type : types) {
    const auto t0 = Clock::now();
    const Gpt2Model model = Gpt2Model::load(component, pool, type);
    double sum = 0;
    for (const auto& ids : dialogs) sum += nll(model, ids);
    const double mean = sum / static_cast<double>(tokens);
    results.push_back({{"dtype", type ? weight_name(*type) : "stored"},
                       {"weights", weight_name(model.weight_dtype())},
                       {"mean_nll", mean},
                       {"perplexity", std::exp(mean)},
                       {"seconds", std::chrono::duration<double>(Clock::now() - t0).count()}});
  }

  fmt::print("{} '{}' ({} layers, hidden {}, {} positions); {} dialogs of {}, {} tokens scored; kernels {}\n",
             bundle_path.string(), component.name, config.n_layer, config.n_embd, config.n_positions, dialogs.size(),
             path, tokens, nn::linear_kernel_level());
  fmt::print("{:<14} {:>12} {:>10} {:>9}\n", "weights", "perplexity", "mean NLL", "seconds");
  for (const json& r : results) {
    const std::string name = r["dtype"] == "stored" ? fmt::format("{} (stored)", r["weights"].get<std::string>())
                                                    : r["dtype"].get<std::string>();
    fmt::print("{:<14} {:>12.4f} {:>10.6f} {:>9.2f}\n", name, r["perplexity"].get<double>(),
               r["mean_nll"].get<double>(), r["seconds"].get<double>());
  }
  if (const auto out = args.get_opt("json")) {
    json j = {{"bundle", bundle_path.string()}, {"component", component.name},  {"dialogs_file", path},
              {"dialogs", dialogs.size()},      {"tokens", tokens},              {"kernels", nn::linear_kernel_level()},
              {"results", results}};
    write_file(*out, j.dump(2) + "\n");
  }
  return 0;
}

}  // namespace ecr::cli
