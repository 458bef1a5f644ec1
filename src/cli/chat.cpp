// `ecr chat`: talk to a bundle. Each line typed is a user turn; the Recommender ranks items with
// the emotions it read (shown with the feedback it heard in the line and one sentence of reasons
// per item; movies already named stay out), and the Responder's reply streams as it decodes and
// joins the dialog as the system's turn. Works on a terminal and on a pipe alike (no prompts when stdin is not a
// terminal; there, an error ends the chat with exit status 1). With --dialog it answers one
// dialog file with JSON and exits.
//
// A turn's cost stops growing once the chat is longer than the models read: the dialog keeps
// each turn's emotions and entity ids once they are known (the classifier reads only the new
// line), and each turn sends the models only the recent turns that decide their inputs
// (Responder::recent_turns).
#include <unistd.h>

#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "commands.hpp"
#include "conversation.hpp"
#include "ecr/core/error.hpp"
#include "ecr/core/utf8.hpp"
#include "input.hpp"

namespace ecr::cli {

namespace {

constexpr std::string_view kHelp = "commands: /reset starts a new dialog, /json toggles JSON output, /quit leaves";

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

// One user turn: the items and the reply as they come (text), or one JSON object after.
void take_turn(const Conversation& c, Dialog& dialog, std::string text, bool as_json) {
  const auto show_items = [&](const Recommendation& r) {
    if (as_json) return;
    print_items(r);
    fmt::print("ecr> ");
    std::fflush(stdout);
  };
  const Responder::Turn turn = converse_turn(c, dialog, std::move(text), show_items, [&](std::string_view piece) {
    if (!as_json) {
      fmt::print("{}", printable(piece, true));  // a model's bytes never drive the terminal
      std::fflush(stdout);
    }
    return true;
  });
  if (as_json)
    print_json(turn_json(c, turn));
  else
    fmt::print("\n");
}

}  // namespace

int chat(const Argv& argv) {
  Args args("ecr chat [--bundle BUNDLE] [DIALOG.json] [options]",
            "An interactive conversation with a bundle: type a message, see the emotions read from it, what it\n"
            "said about movies (liked, disliked, seen), the ranked items with a reason each (movies already named\n"
            "left out) and the reply as it is written. /reset, /json and /quit are commands. Given a dialog file,\n"
            "answers that dialog (as `ecr respond --json` does) and exits. An item's score is z . E[item]\n"
            "(docs/math.md section 5): higher ranks first; scores compare only within one ranking." +
                emotion_labels_help());
  args.positional("DIALOG", "answer this dialog (JSON; - reads standard input) and exit", false);
  declare_conversation_options(args);
  args.option("dialog", "FILE", "the dialog, as DIALOG")
      .option("timeout", "SECONDS", kTimeoutHelp, kDefaultTimeout)
      .flag("json", "start with JSON output (one object per turn)");
  if (!args.parse(argv)) return 0;
  const ConversationOptions options = conversation_options(args);
  if (const std::optional<std::string> file = dialog_arg(args)) {
    const Dialog dialog = read_dialog(*file, input_timeout(args));  // before the load: a bad file fails fast
    return respond_once(open_conversation(options), dialog, true);
  }
  const Conversation c = open_conversation(options);

  const bool terminal = ::isatty(STDIN_FILENO) != 0;
  bool as_json = args.get_flag("json");
  if (const std::string note = untrained_note(c); !note.empty()) fmt::print("{}\n", note);
  fmt::print("ecr chat: {} items, {}\n", c.recommender.graph().items().size(), kHelp);
  Dialog dialog;
  LineReader input("-", "chat input", std::nullopt);  // lines of at most kMaxLineBytes
  for (std::string line;;) {
    if (terminal) {
      fmt::print("you> ");
      std::fflush(stdout);
    }
    if (!input.next(line)) break;
    line = trim(line);
    if (line.empty()) continue;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      dialog = Dialog{};
      fmt::print("(new dialog)\n");
    } else if (line == "/json") {
      as_json = !as_json;
      fmt::print("(JSON output {})\n", as_json ? "on" : "off");
    } else if (line.front() == '/') {
      fmt::print("{}\n", kHelp);
    } else {
      // On a pipe nothing shows what was typed: the line is echoed after the prompt a terminal
      // would have shown, so a transcript reads question, reply. JSON lines stay JSON alone.
      if (!terminal && !as_json) fmt::print("you> {}\n", printable(line));
      try {
        take_turn(c, dialog, line, as_json);
      } catch (const Error& e) {
        if (!terminal) throw;  // a script hears of it: stderr and exit status 1 (main)
        std::fflush(stdout);
        fmt::print(stderr, "\nerror: {}\n", printable(e.what()));
      }
    }
    std::fflush(stdout);
  }
  if (terminal) fmt::print("\n");
  return 0;
}

}  // namespace ecr::cli
