// `ecr respond`: one dialog (Dialog JSON) through the Recommender and the Responder: the ranked
// items, the template the backbone wrote, the knowledge, and the reply, streamed as it decodes.
#include <cstdio>

#include <fmt/format.h>

#include "commands.hpp"
#include "conversation.hpp"
#include "ecr/core/error.hpp"
#include "ecr/core/utf8.hpp"
#include "input.hpp"

namespace ecr::cli {

// Shared with `ecr chat --dialog`: one turn for a dialog, as JSON or text.
int respond_once(const Conversation& c, const Dialog& dialog, bool as_json) {
  if (as_json) {
    print_json(turn_json(c, Responder::converse(c.recommender, c.responder, dialog, c.request)));
    return 0;
  }
  if (const std::string note = untrained_note(c); !note.empty()) fmt::print("{}\n\n", note);
  const Recommendation rec = c.recommender.recommend(dialog, c.request);
  print_items(rec);
  fmt::print("reply: ");
  std::fflush(stdout);
  const Response r = c.responder.respond(dialog, rec, [](std::string_view piece) {
    fmt::print("{}", printable(piece, true));  // a model's bytes never drive the terminal
    std::fflush(stdout);
    return true;
  });
  fmt::print("\n\ngenerator: {}\n", reply_generator_name(r.generator));
  if (r.generator == ReplyGenerator::gpt2) fmt::print("template: {}\n", printable(r.template_text));
  for (const auto& e : r.review_entities) fmt::print("review entity: {}\n", printable(e));
  for (const auto& t : r.knowledge) fmt::print("knowledge: {}\n", printable(t.text()));
  return 0;
}

int respond(const Argv& argv) {
  Args args("ecr respond [--bundle BUNDLE] DIALOG.json [options]",
            "Recommends items for a dialog and writes ECR's reply about the best one (docs/math.md sections 7, 8):\n"
            "the template from the backbone with the conv prompt, review entities and KG knowledge of the item,\n"
            "then the generator; or, with the LLM (--generator, the default when one is installed), ECR's\n"
            "retrieval-augmented prompt through the LLM's chat template (docs/llm-replies.md). The reply streams as it decodes; --json prints one JSON object instead." +
                emotion_labels_help());
  args.positional("DIALOG", kDialogHelp, false);
  declare_conversation_options(args);
  args.option("dialog", "FILE", "the dialog, as DIALOG")
      .option("timeout", "SECONDS", kTimeoutHelp, kDefaultTimeout)
      .flag("json", "print the turn as one JSON object");
  if (!args.parse(argv)) return 0;
  const ConversationOptions options = conversation_options(args);
  const Dialog dialog = read_dialog(dialog_path(args), input_timeout(args));  // before the load: a bad file fails fast
  return respond_once(open_conversation(options), dialog, args.get_flag("json"));
}

}  // namespace ecr::cli
