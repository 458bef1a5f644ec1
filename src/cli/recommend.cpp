// `ecr recommend`: one dialog (Dialog JSON) through the Recommender, printing the ranked items
// with the reason for each, the feedback read from the dialog and, per turn, the entities and
// emotions the prompt used; --json prints all of it.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "args.hpp"
#include "commands.hpp"
#include "ecr/core/error.hpp"
#include "ecr/core/utf8.hpp"
#include "ecr/recommender.hpp"
#include "input.hpp"
#include "listening.hpp"
#include "output.hpp"

namespace ecr::cli {

namespace {

using nlohmann::json;

std::string emotions_text(const TurnEmotions& e) {
  std::string s;
  for (std::size_t k = 0; k < e.ids.size(); ++k)
    if (e.ids[k] != kPadEmotion) s += fmt::format("{}{} {:.2f}", s.empty() ? "" : ", ", kEmotionLabels[e.ids[k]], e.probs[k]);
  return s.empty() ? "none over 0.1" : s;
}

void print_table(const Recommendation& r, const KnowledgeGraph& kg) {
  fmt::print("top {} of {} items\n{:>4}  {:>10}  {:>7}  {}\n", r.items.size(), kg.items().size(), "rank", "score", "id",
             "item");
  for (std::size_t i = 0; i < r.items.size(); ++i) {
    fmt::print("{:>4}  {:>10.4f}  {:>7}  {}\n", i + 1, r.items[i].score, r.items[i].id, printable(r.items[i].name));
    if (const std::string why = explain(r.items[i]); !why.empty()) fmt::print("{:>25}{}\n", "", printable(why));
  }
  if (const std::string read = feedback_text(r.feedback); !read.empty())
    fmt::print("\nfeedback read: {}\n", printable(read));
  fmt::print("\nturns{}\n", r.emotion_fusion ? "" : " (no emotions: the prompt ran without emotion fusion)");
  for (std::size_t t = 0; t < r.turns.size(); ++t) {
    const auto& turn = r.turns[t];
    fmt::print("{:>4}  {:<6}  {}\n", t, role_name(turn.role), printable(turn.text));  // no terminal commands
    if (turn.emotions)
      fmt::print("{:>14}emotions ({}): {}\n", "", turn.emotions_from_classifier ? "classifier" : "host",
                 emotions_text(turn.selected));
    std::string linked;
    for (const auto& e : turn.entities)
      linked += fmt::format("{}{} [{}, {}]", linked.empty() ? "" : "; ", printable(e.name), e.id,
                            link_source_name(e.source));
    if (!linked.empty()) fmt::print("{:>14}entities: {}\n", "", linked);
  }
  if (!r.context_entities.empty()) {
    fmt::print("\ncontext entities by affinity (z . E[e])\n");
    for (const auto& e : r.context_entities) fmt::print("{:>10.4f}  {:>7}  {}\n", e.score, e.id, printable(e.name));
  }
}

}  // namespace

int recommend(const Argv& argv) {
  Args args("ecr recommend [--bundle BUNDLE] DIALOG.json [options]",
            "Recommends items for a dialog: {\"turns\": [{\"role\": \"user\"|\"system\", \"text\": ..., \"entities\": [ids],\n"
            "\"emotions\": {label: prob}}], \"movieMentions\": {...}} (entities and emotions optional: the linker and\n"
            "the bundle's emotion classifier fill them in). Prints the ranked items and, per turn, the entities\n"
            "and emotions the prompt used. Items the dialog already mentions are left out, and what the user says about\n"
            "a movie (liked, disliked, seen) moves its neighbours; each item comes with its reasons. An item's score\n"
            "is z . E[item] plus the feedback term (docs/math.md section 5): higher ranks first; scores compare only\n"
            "within one ranking." + emotion_labels_help());
  args.positional("DIALOG", kDialogHelp, false)
      .option("bundle", "BUNDLE", kBundleHelp)
      .option("dialog", "FILE", "the dialog, as DIALOG")
      .option("timeout", "SECONDS", kTimeoutHelp, kDefaultTimeout)
      .option("top-k", "K", "items to return", "10")
      .option("threads", "N", kThreadsHelp, "0")
      .option("device", "D", kDeviceHelp, "cpu")
      .flag("json", "print everything as one JSON object")
      .flag("all-scores", "with --json: include the score of every entity")
      .flag("keep-mentioned", "rank items the dialog already mentions too (the paper's setting; default: left out)")
      .option("feedback-strength", "B", "how far liked / disliked movies move their neighbours (0: off)", "1")
      .flag("no-global-entities", "leave the co-occurrence (global) entities out of the prompt")
      .flag("no-link", "use only the entity ids the dialog carries, not the linker");
  if (!args.parse(argv)) return 0;
  const long long top_k = args.get_int("top-k");
  const EngineOptions engine = engine_options(args);
  if (top_k < 1) fail<InputError>("--top-k must be at least 1, got {}", top_k);

  const Dialog dialog = read_dialog(dialog_path(args), input_timeout(args));

  RecommenderOptions options;
  static_cast<EngineOptions&>(options) = engine;
  options.exclude_mentioned = !args.get_flag("keep-mentioned");
  options.feedback_strength = static_cast<float>(args.get_double("feedback-strength"));
  options.global_entities = !args.get_flag("no-global-entities");
  options.link_text = !args.get_flag("no-link");
  const Recommender recommender = Recommender::load(bundle_or_default(args), options);
  RecommendRequest request;
  request.top_k = static_cast<std::size_t>(top_k);
  request.all_scores = args.get_flag("all-scores");
  const Recommendation r = recommender.recommend(dialog, request);
  // tools/make_random_bundle.py marks random weights this way.
  const auto& meta = recommender.bundle().metadata();
  const bool untrained = meta.contains("untrained") && meta["untrained"] == true;
  if (args.get_flag("json")) {
    json out = recommendation_json(r);
    out["untrained"] = untrained;
    fmt::print("{}\n", json_text(out));
    return 0;
  }
  if (untrained)
    fmt::print("note: bundle '{}' was built from random, untrained checkpoints: its ranking is noise\n\n",
               printable(recommender.bundle().label()));
  print_table(r, recommender.graph());
  return 0;
}

}  // namespace ecr::cli
