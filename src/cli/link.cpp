// `ecr link`: the entity linker over ReDial dialogs (JSON lines), printing the entities of each
// message, or with --eval its precision and recall against the messages' annotations.
#include <cstdio>
#include <set>

#include <fmt/format.h>

#include "args.hpp"
#include "commands.hpp"
#include "ecr/core/error.hpp"
#include "ecr/dialog.hpp"
#include "ecr/kg/entity_linker.hpp"
#include "input.hpp"
#include "output.hpp"

namespace ecr::cli {

namespace {

struct Counts {
  long long tp = 0, fp = 0, fn = 0;
  void add(const std::set<std::int64_t>& predicted, const std::set<std::int64_t>& gold) {
    for (auto id : predicted) (gold.count(id) ? tp : fp) += 1;
    for (auto id : gold) fn += predicted.count(id) ? 0 : 1;
  }
  double precision() const { return tp + fp ? static_cast<double>(tp) / static_cast<double>(tp + fp) : 0.0; }
  double recall() const { return tp + fn ? static_cast<double>(tp) / static_cast<double>(tp + fn) : 0.0; }
};

// The annotated names of a message field as ids (names the KG lacks cannot be found either).
std::set<std::int64_t> gold_ids(const nlohmann::json& message, const char* field, const KnowledgeGraph& kg) {
  std::set<std::int64_t> out;
  if (!message.contains(field) || !message[field].is_array()) return out;
  for (const auto& name : message[field])
    if (name.is_string())
      if (auto id = kg.entity_id(name.get_ref<const std::string&>())) out.insert(*id);
  return out;
}

}  // namespace

int link(const Argv& argv) {
  Args args("ecr link (--bundle BUNDLE | --kg DIR) [--dialogs FILE] [--eval]",
            "Finds knowledge-graph entities in ReDial dialogs (JSON lines): @mentions through movieMentions,\n"
            "and movies, people and genres written in the text. Prints one JSON line per message, or with\n"
            "--eval precision and recall against each message's annotated 'item' (movies) and 'entity' lists.");
  args.option("bundle", "BUNDLE", "bundle with a knowledge graph")
      .option("kg", "DIR", "UniCRS/ECR KG folder (entity2id.json, kg.json, ...) instead of a bundle")
      .option("dialogs", "FILE", "ReDial dialogs, one JSON object a line (default: standard input)")
      .option("timeout", "SECONDS", kTimeoutHelp, kDefaultTimeout)
      .flag("eval", "print micro-averaged precision and recall, movies and other entities apart")
      .flag("no-text-movies", "link movies only through @mentions, not titles written in the text")
      .flag("no-ambiguity-rules", "link every name of 3 letters or more in any case (to measure the rules)");
  if (!args.parse(argv)) return 0;
  if (args.has("bundle") == args.has("kg")) fail<InputError>("give exactly one of --bundle and --kg");

  const KnowledgeGraph kg = args.has("kg") ? KnowledgeGraph::from_files(args.get("kg"))
                                           : KnowledgeGraph::load(Bundle::open(args.get("bundle")));
  LinkerOptions options;
  options.movies_in_text = !args.get_flag("no-text-movies");
  options.ambiguity_rules = !args.get_flag("no-ambiguity-rules");
  const EntityLinker linker(kg, options);

  LineReader in(args.get_opt("dialogs").value_or("-"), "dialogs", input_timeout(args));
  const std::string& source = in.source();
  const bool eval = args.get_flag("eval");

  auto is_movie = [&](std::int64_t id) { return kg.entity_type(id) == EntityType::movie || kg.is_item(id); };
  Counts movies, others;
  long long dialogs = 0, messages = 0;
  for (std::string line; in.next(line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json record = parse_json(line, fmt::format("{}:{}", source, in.line_number()));
    // Parsing the record as a Dialog checks it (and its movieMentions) the way hosts' input is.
    const Dialog dialog = Dialog::from_redial(record, &kg);
    ++dialogs;
    const auto& list = record["messages"];
    for (std::size_t m = 0; m < list.size(); ++m) {
      const auto& message = list[m];
      const std::string& text = message["text"].get_ref<const std::string&>();
      const auto found = linker.link(text, &dialog.movie_mentions);
      ++messages;
      if (eval) {
        std::set<std::int64_t> predicted_movies, predicted_others;
        for (const auto& e : found) (is_movie(e.id) ? predicted_movies : predicted_others).insert(e.id);
        movies.add(predicted_movies, gold_ids(message, message.contains("item") ? "item" : "movie", kg));
        others.add(predicted_others, gold_ids(message, "entity", kg));
        continue;
      }
      nlohmann::json entities = nlohmann::json::array();
      for (const auto& e : found)
        entities.push_back({{"id", e.id}, {"name", e.name}, {"begin", e.begin}, {"end", e.end},
                            {"source", link_source_name(e.source)}});
      nlohmann::json out = {{"dialog", record.value("conversationId", nlohmann::json(dialogs - 1))},
                            {"message", m},
                            {"role", message["senderWorkerId"] == record["initiatorWorkerId"] ? "user" : "system"},
                            {"entities", std::move(entities)}};
      fmt::print("{}\n", json_text(out));
    }
  }
  if (eval) {
    fmt::print("{} dialogs, {} messages (micro-averaged over messages, matching by entity id)\n", dialogs, messages);
    fmt::print("{:<16} {:>7} {:>7} {:>7} {:>10} {:>8}\n", "", "tp", "fp", "fn", "precision", "recall");
    for (const auto& [name, c] : {std::pair<const char*, const Counts&>{"movies", movies}, {"other entities", others}})
      fmt::print("{:<16} {:>7} {:>7} {:>7} {:>10.4f} {:>8.4f}\n", name, c.tp, c.fp, c.fn, c.precision(), c.recall());
  }
  return 0;
}

}  // namespace ecr::cli
