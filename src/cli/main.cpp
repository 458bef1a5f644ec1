// `ecr`: the command-line face of the library. Dispatches to one subcommand per file.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string_view>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "args.hpp"
#include "commands.hpp"
#include "ecr/core/error.hpp"
#include "ecr/core/utf8.hpp"
#include "ecr/nn/linear.hpp"

namespace {

struct Command {
  std::string_view name;
  std::string_view summary;
  int (*run)(const ecr::cli::Argv&);
};

// Subcommands, in the order --help lists them.
constexpr Command kCommands[] = {
    {"inspect", "show a bundle's or a GGUF file's metadata and tensor table; --verify checks a bundle's checksums", ecr::cli::inspect},
    {"link", "find knowledge-graph entities in ReDial dialogs; --eval measures precision and recall", ecr::cli::link},
    {"tokenize", "encode JSON lines of text to token ids (a bundle's tokenizer, or a GGUF file's: BPE, SentencePiece)", ecr::cli::tokenize},
    {"forward", "run a GPT-2 / RoBERTa component over token ids; write hidden states or logits as .npy", ecr::cli::forward},
    {"generate", "continue a prompt with a GPT-2 component (greedy or sampled), printing tokens or text", ecr::cli::generate},
    {"recommend", "recommend items for a dialog (JSON), with the entities and emotions each turn gave", ecr::cli::recommend},
    {"eval", "recommendation metrics (Recall/MRR/NDCG@K, AUC, RT@K) over ReDial dialogs", ecr::cli::eval},
    {"perplexity", "language-model perplexity of a GPT-2 component on ReDial dialogs, per weight type", ecr::cli::perplexity},
    {"respond", "recommend for a dialog (JSON) and write ECR's reply about the best item, streamed", ecr::cli::respond},
    {"judge", "score replies 0-9 on the paper's five criteria with a chat GGUF model as the judge", ecr::cli::judge},
    {"chat", "talk to a bundle: type turns, see ranked items, emotions and the streamed reply", ecr::cli::chat},
    {"serve", "serve a bundle over HTTP: recommend, respond (streamed), sessions, OpenAI chat, a chat page", ecr::cli::serve},
};

void print_help() {
  fmt::print("usage: ecr <command> [options]\n\n"
             "Empathetic Conversational Recommender inference engine.\n\ncommands:\n");
  for (const auto& c : kCommands) fmt::print("  {:<10} {}\n", c.name, c.summary);
  fmt::print("\nRun 'ecr <command> --help' for a command's options; 'ecr --version' for the version and the\n"
             "CPU kernel level in use. Exit status: 0 on success, 2 for a misused command line (an unknown\n"
             "command or option, a missing argument), 1 for any other error.\n");
}

// What went to stdout must have arrived (a full disk, a closed pipe): not a silent success.
void check_stdout() {
  if (std::fflush(stdout) != 0 || std::ferror(stdout))
    ecr::fail<ecr::IoError>("cannot write standard output: {}", std::strerror(errno));
}

// `ecr --help` and `ecr --version`: `status`, or 1 with the reason when stdout was not written.
int print_info(void (*print)(), int status) {
  try {
    print();
    check_stdout();
    return status;
  } catch (const ecr::Error& e) {
    fmt::print(stderr, "ecr: {}\n", ecr::printable(e.what()));
  } catch (const std::system_error& e) {  // fmt::print could not write standard output
    fmt::print(stderr, "ecr: {}: standard output: {}\n", ecr::to_string(ecr::ErrorKind::io), ecr::printable(e.what()));
  }
  return 1;
}

void print_version() {
  // The kernel level depends on this CPU and ECR_ISA: worth knowing when comparing timings.
  fmt::print("ecr {}\ncpu kernels: {}\n", ECR_VERSION, ecr::nn::linear_kernel_level());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return print_info(print_help, ecr::cli::kUsageStatus);
  const std::string_view name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") return print_info(print_help, 0);
  if (name == "--version") return print_info(print_version, 0);
  for (const auto& c : kCommands) {
    if (c.name != name) continue;
    // Messages quote files, dialogs and JSON: printable() keeps their bytes off the terminal.
    try {
      const int status = c.run(ecr::cli::Argv(argv + 2, argv + argc));
      check_stdout();
      return status;
    } catch (const ecr::cli::UsageError& e) {
      fmt::print(stderr, "ecr {}: {}\n", name, ecr::printable(e.what()));
      return ecr::cli::kUsageStatus;
    } catch (const ecr::Error& e) {
      fmt::print(stderr, "ecr {}: {}\n", name, ecr::printable(e.what()));
      return 1;
    } catch (const std::system_error& e) {  // fmt::print could not write standard output
      fmt::print(stderr, "ecr {}: {}: standard output: {}\n", name, ecr::to_string(ecr::ErrorKind::io),
                 ecr::printable(e.what()));
      return 1;
    } catch (const std::exception& e) {
      fmt::print(stderr, "ecr {}: unexpected failure: {}\n", name, ecr::printable(e.what()));
      return 1;
    }
  }
  std::vector<std::string_view> names;
  for (const auto& c : kCommands) names.push_back(c.name);
  const std::string_view hint = ecr::cli::near_miss(name, names);
  fmt::print(stderr, "ecr: unknown command '{}'{} ('ecr --help' lists the commands)\n", ecr::printable(name),
             hint.empty() ? "" : fmt::format("; did you mean '{}'?", hint));
  return ecr::cli::kUsageStatus;
}
