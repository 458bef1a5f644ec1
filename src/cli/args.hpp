// A small argument parser shared by the `ecr` subcommands: `--name value`, `--name=value`,
// boolean `--flag`, positionals, and a generated `--help`. Unknown options are an error, so a
// typo never silently falls back to a default.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ecr/core/error.hpp"
#include "ecr/engine.hpp"

namespace ecr::cli {

// Misuse of the command line (an unknown option or command, a missing argument): `ecr` exits with
// status 2 for it, 1 for every other error.
class UsageError : public InputError {
 public:
  using InputError::InputError;
};
inline constexpr int kUsageStatus = 2;

// The name among `names` that `typed` most likely misspells (at most two edits: a letter added,
// dropped, changed, or two swapped), for a "did you mean" hint; empty when none is that close.
std::string_view near_miss(std::string_view typed, const std::vector<std::string_view>& names);

class Args {
 public:
  // `usage` is the first line of --help ("ecr inspect BUNDLE [options]").
  Args(std::string usage, std::string summary) : usage_(std::move(usage)), summary_(std::move(summary)) {}

  // Declare before parse(). `metavar` empty means a boolean flag.
  Args& option(std::string name, std::string metavar, std::string help, std::optional<std::string> def = {});
  Args& flag(std::string name, std::string help) { return option(std::move(name), "", std::move(help)); }
  // An option that may be given any number of times (--lora A --lora B); get_all() has them in order.
  Args& repeatable(std::string name, std::string metavar, std::string help);
  Args& positional(std::string name, std::string help, bool required = true);

  // Returns false when --help was printed (the caller exits 0). Throws ecr::InputError on misuse.
  bool parse(const std::vector<std::string>& argv);

  bool has(std::string_view name) const;
  std::string get(std::string_view name) const;  // value or default; InputError when missing
  std::optional<std::string> get_opt(std::string_view name) const;
  long long get_int(std::string_view name) const;
  double get_double(std::string_view name) const;
  bool get_flag(std::string_view name) const { return has(name); }
  std::vector<std::string> get_all(std::string_view name) const;  // a repeatable option's values
  const std::vector<std::string>& rest() const { return rest_; }  // positionals beyond the declared ones

  std::string help() const;

 private:
  struct Opt {
    std::string name, metavar, help;
    std::optional<std::string> def;
    bool repeatable = false;
  };
  struct Pos {
    std::string name, help;
    bool required;
  };
  const Opt* find(std::string_view name) const;

  std::string usage_, summary_;
  std::vector<Opt> opts_;
  std::vector<Pos> pos_;
  std::map<std::string, std::string, std::less<>> values_;
  std::map<std::string, std::vector<std::string>, std::less<>> repeated_;
  std::vector<std::string> rest_;
};

// --threads: 0 (one per core) to ThreadPool::kMaxThreads; InputError otherwise.
int thread_count(const Args& args);
inline constexpr const char* kThreadsHelp = "threads (0: one per core; at most 1024)";

// --threads and --device: what the Engine is loaded with.
EngineOptions engine_options(const Args& args);
inline constexpr const char* kDeviceHelp = "where to run: cpu, cuda or cuda:N";

// --bundle when given, else the shipped model (ecr::default_bundle_path()).
std::filesystem::path bundle_or_default(const Args& args);
inline constexpr const char* kBundleHelp = "the bundle (default: the shipped model, models/README.md; or $ECR_BUNDLE)";

// --chat-template NAME: the chat template family to use instead of the one recognised from a
// GGUF file's tokenizer.chat_template; nullopt when absent. ConfigError naming the known ones.
std::optional<std::string> chat_template_name(const Args& args);
inline constexpr const char* kChatTemplateHelp =
    "chat template: chatml, llama2, llama3, zephyr or mistral (default: recognised from the model file)";

// --timeout: how long an input path may go without bytes (input.hpp); 0 waits for ever.
std::optional<std::chrono::milliseconds> input_timeout(const Args& args);
inline constexpr const char* kTimeoutHelp =
    "seconds an input path (a FIFO, a pipe, a device) may go without data before it is an error "
    "(0: wait for ever; - always waits for its writer)";
inline constexpr const char* kDefaultTimeout = "10";

inline constexpr const char* kDialogHelp =
    "the dialog as JSON (- reads standard input; default: standard input unless it is a terminal)";

// The dialog file of recommend, respond and chat: the DIALOG argument or --dialog (InputError when
// both are given), else nullopt.
std::optional<std::string> dialog_arg(const Args& args);
// dialog_arg(), else standard input ("-") when it is not a terminal: a dialog is not typed at a
// prompt that says nothing, so on a terminal InputError says how to name one.
std::string dialog_path(const Args& args);

// The emotion labels a dialog's "emotions" may name (ecr::kEmotionLabels), for the help of the
// commands that read dialogs: a user guessing "sad" learns it is "negative".
std::string emotion_labels_help();

}  // namespace ecr::cli
