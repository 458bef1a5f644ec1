#include "args.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ecr/core/error.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/default_bundle.hpp"
#include "ecr/dialog.hpp"
#include "ecr/text/chat_template.hpp"

namespace ecr::cli {

Args& Args::option(std::string name, std::string metavar, std::string help, std::optional<std::string> def) {
  opts_.push_back({std::move(name), std::move(metavar), std::move(help), std::move(def)});
  return *this;
}

Args& Args::repeatable(std::string name, std::string metavar, std::string help) {
  opts_.push_back({std::move(name), std::move(metavar), std::move(help), std::nullopt, true});
  return *this;
}

std::vector<std::string> Args::get_all(std::string_view name) const {
  const auto it = repeated_.find(name);
  return it == repeated_.end() ? std::vector<std::string>{} : it->second;
}

Args& Args::positional(std::string name, std::string help, bool required) {
  pos_.push_back({std::move(name), std::move(help), required});
  return *this;
}

std::string_view near_miss(std::string_view typed, const std::vector<std::string_view>& names) {
  // Optimal string alignment distance: Levenshtein plus the swap of two neighbours.
  const auto distance = [](std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i)
      for (std::size_t j = 1; j <= b.size(); ++j) {
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
          d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    return d[a.size()][b.size()];
  };
  constexpr std::size_t kMaxEdits = 2;
  std::string_view best;
  std::size_t best_distance = kMaxEdits + 1;
  for (const std::string_view name : names) {
    const std::size_t dist = distance(typed, name);
    // A one- or two-letter typo of nothing in particular suggests nothing.
    if (dist < best_distance && dist < typed.size()) {
      best = name;
      best_distance = dist;
    }
  }
  return best;
}

const Args::Opt* Args::find(std::string_view name) const {
  for (const auto& o : opts_)
    if (o.name == name) return &o;
  return nullptr;
}

bool Args::parse(const std::vector<std::string>& argv) {
  std::size_t next_pos = 0;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--help" || a == "-h") {
      fmt::print("{}", help());
      return false;
    }
    if (a.size() > 2 && a.starts_with("--")) {
      std::string name = a.substr(2), value;
      bool inline_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.resize(eq);
        inline_value = true;
      }
      const Opt* o = find(name);
      if (!o) {
        std::vector<std::string_view> names;
        for (const auto& known : opts_) names.push_back(known.name);
        names.push_back("help");
        const std::string_view hint = near_miss(name, names);
        if (!hint.empty()) fail<UsageError>("unknown option '--{}'; did you mean '--{}'? (see --help)", name, hint);
        fail<UsageError>("unknown option '--{}' (see --help)", name);
      }
      if (has(name) && !o->repeatable) fail<UsageError>("option '--{}' is given twice", name);
      if (o->metavar.empty()) {
        if (inline_value) fail<UsageError>("option '--{}' takes no value", name);
        values_[name] = "1";
      } else {
        if (!inline_value) {
          if (i + 1 >= argv.size()) fail<UsageError>("option '--{}' expects a value {}", name, o->metavar);
          value = argv[++i];
        }
        values_[name] = value;
        if (o->repeatable) repeated_[name].push_back(value);
      }
      continue;
    }
    if (next_pos < pos_.size()) values_[pos_[next_pos++].name] = a;
    else rest_.push_back(a);
  }
  for (std::size_t p = next_pos; p < pos_.size(); ++p)
    if (pos_[p].required) fail<UsageError>("missing argument {} (see --help)", pos_[p].name);
  return true;
}

bool Args::has(std::string_view name) const { return values_.find(name) != values_.end(); }

std::optional<std::string> Args::get_opt(std::string_view name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  if (const Opt* o = find(name); o && o->def) return o->def;
  return std::nullopt;
}

std::string Args::get(std::string_view name) const {
  if (auto v = get_opt(name)) return *v;
  fail<UsageError>("missing required option '--{}' (see --help)", name);
}

long long Args::get_int(std::string_view name) const {
  const std::string v = get(name);
  long long out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size())
    fail<InputError>("option '--{}': expected an integer, got '{}'", name, v);
  return out;
}

double Args::get_double(std::string_view name) const {
  const std::string v = get(name);
  double d = 0;
  std::size_t used = 0;
  try {
    d = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v.size()) fail<InputError>("option '--{}': expected a number, got '{}'", name, v);
  // stod reads "nan" and "inf"; no option means either.
  if (std::isnan(d)) fail<InputError>("option '--{}': '{}' is not a number", name, v);
  if (std::isinf(d)) fail<InputError>("option '--{}': '{}' is not a finite number", name, v);
  return d;
}

std::string Args::help() const {
  std::string out = fmt::format("usage: {}\n\n{}\n", usage_, summary_);
  if (!pos_.empty()) {
    out += "\narguments:\n";
    for (const auto& p : pos_) out += fmt::format("  {:<24} {}\n", p.name, p.help);
  }
  out += "\noptions:\n";
  for (const auto& o : opts_) {
    std::string left = "--" + o.name + (o.metavar.empty() ? "" : " " + o.metavar) + (o.repeatable ? " ..." : "");
    out += fmt::format("  {:<24} {}{}\n", left, o.help, o.def ? fmt::format(" (default: {})", *o.def) : "");
  }
  out += fmt::format("  {:<24} {}\n", "--help", "show this help");
  return out;
}

static_assert(ThreadPool::kMaxThreads == 1024, "kThreadsHelp states the bound");

int thread_count(const Args& args) {
  const long long n = args.get_int("threads");
  if (n < 0 || n > ThreadPool::kMaxThreads)
    fail<InputError>("--threads must be 0 (one per core) to {}, got {}", ThreadPool::kMaxThreads, n);
  return static_cast<int>(n);
}

EngineOptions engine_options(const Args& args) {
  EngineOptions options;
  options.threads = static_cast<std::size_t>(thread_count(args));
  options.device = DeviceSpec::parse(args.get("device"));
  return options;
}

std::string emotion_labels_help() {
  return fmt::format("\nEmotion labels (docs/math.md section 0): {}.\n"
                     "Unhappy reactions (sad, angry, bored) are 'negative'.", fmt::join(kEmotionLabels, ", "));
}

std::filesystem::path bundle_or_default(const Args& args) {
  if (auto given = args.get_opt("bundle")) return *given;
  return default_bundle_path();
}

std::optional<std::string> chat_template_name(const Args& args) {
  auto name = args.get_opt("chat-template");
  if (name) text::ChatTemplate::by_name(*name);  // refuses an unknown name now, not at the first turn
  return name;
}

std::optional<std::chrono::milliseconds> input_timeout(const Args& args) {
  const double seconds = args.get_double("timeout");
  if (seconds < 0 || seconds > 1e6) fail<InputError>("--timeout must be 0 (wait for ever) to 1e6 seconds, got {}", seconds);
  if (seconds == 0) return std::nullopt;
  return std::chrono::milliseconds(std::max<long long>(1, std::llround(seconds * 1000)));
}

std::optional<std::string> dialog_arg(const Args& args) {
  const auto named = args.get_opt("DIALOG"), option = args.get_opt("dialog");
  if (named && option)
    fail<InputError>("the dialog is given twice, as '{}' and as --dialog '{}': give one", *named, *option);
  if (!args.rest().empty()) fail<InputError>("unexpected argument '{}' (see --help)", args.rest().front());
  return named ? named : option;
}

std::string dialog_path(const Args& args) {
  if (auto given = dialog_arg(args)) return *given;
  if (::isatty(STDIN_FILENO))
    fail<InputError>("no dialog given: name its file (DIALOG.json or --dialog DIALOG.json), or - to type it "
                     "on standard input");
  return "-";
}

}  // namespace ecr::cli
