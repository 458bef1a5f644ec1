// `ecr judge`: scores replies 0-9 on the paper's five criteria with a chat GGUF model as the
// judge (ecr/eval/judge.hpp). The replies file is tools/reply_report.py's JSON (an object with
// "replies") or an array of objects, each with "reply" and optionally "dialog" (turns with
// "role" user/system/assistant and "text") and "conversation" (an id to show).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "args.hpp"
#include "ecr/core/error.hpp"
#include "ecr/core/utf8.hpp"
#include "ecr/eval/judge.hpp"
#include "input.hpp"
#include "conversation.hpp"

namespace ecr::cli {

namespace {

using nlohmann::json;

struct JudgedReply {
  std::string id;
  std::vector<text::ChatMessage> dialog;
  std::string reply;
};

// The most bytes a replies file may have.
constexpr std::size_t kMaxRepliesBytes = std::size_t{64} << 20;

std::vector<JudgedReply> read_replies(const std::string& path, Timeout timeout) {
  const json doc = parse_json(read_input(path, kMaxRepliesBytes, "replies", timeout), path);
  const json* list = &doc;
  if (doc.is_object()) {
    if (!doc.contains("replies")) fail<InputError>("{}: expected an array of replies or an object with 'replies'", path);
    list = &doc["replies"];
  }
  if (!list->is_array()) fail<InputError>("{}: 'replies' must be an array of objects with 'reply'", path);
  std::vector<JudgedReply> out;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const json& r = (*list)[i];
    const std::string where = fmt::format("{}: replies[{}]", path, i);
    if (!r.is_object() || !r.contains("reply") || !r["reply"].is_string())
      fail<InputError>("{}: expected an object with a string 'reply'", where);
    JudgedReply j{std::to_string(i), {}, r["reply"].get<std::string>()};
    if (r.contains("conversation")) j.id = r["conversation"].is_string() ? r["conversation"].get<std::string>()
                                                                           : r["conversation"].dump();
    if (r.contains("dialog")) {
      if (!r["dialog"].is_array()) fail<InputError>("{}: 'dialog' must be an array of turns", where);
      for (std::size_t t = 0; t < r["dialog"].size(); ++t) {
        const json& turn = r["dialog"][t];
        if (!turn.is_object() || !turn.contains("role") || !turn["role"].is_string() || !turn.contains("text") ||
            !turn["text"].is_string())
          fail<InputError>("{}: dialog[{}]: expected an object with string 'role' and 'text'", where, t);
        const std::string role = turn["role"].get<std::string>();
        if (role != "user" && role != "system" && role != "assistant")
          fail<InputError>("{}: dialog[{}]: 'role' must be user, system or assistant, found '{}'", where, t,
                           printable(role));
        j.dialog.push_back({role == "user" ? "user" : "assistant", turn["text"].get<std::string>()});
      }
    }
    out.push_back(std::move(j));
  }
  if (out.empty()) fail<InputError>("{}: no replies to judge", path);
  return out;
}

}  // namespace

int judge(const Argv& argv) {
  Args args("ecr judge --gguf JUDGE.gguf --replies FILE [options]",
            "Scores each reply 0-9 on the paper's five criteria (emotional intensity, emotional persuasiveness,\n"
            "logic, informativeness, lifelikeness) with a chat GGUF model as the judge: one prompt per reply and\n"
            "criterion, the score the digit token with the largest logit after it (docs/llm-replies.md).\n"
            "FILE: tools/reply_report.py's JSON, or an array of {\"reply\", \"dialog\": [{\"role\", \"text\"}]}.");
  args.option("gguf", "FILE", "the judge: a Llama-architecture chat model with a tokenizer")
      .option("replies", "FILE", "the replies to score (- reads standard input)")
      .option("chat-template", "NAME", kChatTemplateHelp)
      .option("threads", "N", kThreadsHelp, "0")
      .option("timeout", "SECONDS", kTimeoutHelp, kDefaultTimeout)
      .flag("json", "print the scores as one JSON object");
  if (!args.parse(argv)) return 0;
  const std::vector<JudgedReply> replies = read_replies(args.get("replies"), input_timeout(args));
  const std::optional<std::string> name = chat_template_name(args);
  const judge::Judge model = judge::Judge::load(args.get("gguf"), name ? std::optional<std::string_view>(*name) : std::nullopt,
                                               std::make_shared<ThreadPool>(thread_count(args)));
  const auto criteria = judge::criteria();
  std::vector<double> sums(criteria.size(), 0.0);
  json scored = json::array();
  const bool as_json = args.get_flag("json");
  if (!as_json) {
    fmt::print("{:>12}", "reply");
    for (const auto& c : criteria) fmt::print(" {:>24}", c.name);
    fmt::print("\n");
  }
  for (const JudgedReply& r : replies) {
    const std::vector<int> scores = model.score(r.dialog, r.reply);
    json per = json::object();
    for (std::size_t c = 0; c < criteria.size(); ++c) {
      per[std::string(criteria[c].name)] = scores[c];
      sums[c] += scores[c];
    }
    scored.push_back({{"id", r.id}, {"scores", per}});
    if (!as_json) {
      fmt::print("{:>12}", printable(r.id));
      for (const int s : scores) fmt::print(" {:>24}", s);
      fmt::print("\n");
    }
  }
  json means = json::object();
  for (std::size_t c = 0; c < criteria.size(); ++c)
    means[std::string(criteria[c].name)] = sums[c] / static_cast<double>(replies.size());
  if (as_json) {
    print_json({{"judge", args.get("gguf")}, {"replies", std::move(scored)}, {"means", std::move(means)}});
  } else {
    fmt::print("{:>12}", "mean");
    for (const double m : sums) fmt::print(" {:>24.2f}", m / static_cast<double>(replies.size()));
    fmt::print("\n");
  }
  return 0;
}

}  // namespace ecr::cli
