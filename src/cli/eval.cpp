// `ecr eval`: ECR's recommendation metrics (docs/math.md section 10) over ReDial dialogs.
//
// Samples, as UniCRS/ECR build them: every system turn that mentions a recommendable movie
// (its annotated `item` names that are KG items) gives one sample per such movie, with the dialog
// before that turn as the context. Entities are the messages' annotations; a record without any
// (the raw ReDial test split) is annotated by the linker first, message by message, exactly as
// the trainer (tools/train) annotates its training dialogs. Feedback is the seeker's `liked`
// for that movie in initiatorQuestions, else the recommender's report of it in
// respondentQuestions, else unknown (no AUC pair).
//
// Baselines go through the same samples and metrics: `--baseline random` (seeded uniform
// scores), `--baseline popularity` (how often each item is mentioned in --popularity-from's
// dialogs, annotated the same way) and `--baseline cooccurrence` (how many conversations of
// --cooccurrence-from's movie sequences name the item together with a movie the context names,
// summed over those movies; popularity in the same conversations breaks ties); `--no-emotions`
// is ECR's "w/o emotion" ablation.
//
// The ranking is the paper's: every item, the ones the context already names included. The
// de-duplicated variant, reported beside it, is what a user of `ecr recommend` sees: the items
// the context names (any turn, either role) leave the ranking, and samples whose gold item the
// context already names are dropped.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "args.hpp"
#include "commands.hpp"
#include "ecr/core/error.hpp"
#include "ecr/core/utf8.hpp"
#include "ecr/eval/metrics.hpp"
#include "ecr/io/output_file.hpp"
#include "ecr/recommender.hpp"
#include "ecr/responder.hpp"
#include "input.hpp"

namespace ecr::cli {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Sample {
  Dialog context;
  std::int64_t gold = 0;
  eval::Feedback feedback = eval::Feedback::unknown;
  std::set<std::int64_t> mentioned;  // every entity of the context
};

struct Counts {
  std::size_t dialogs = 0, unknown_feedback = 0, not_items = 0;
};

eval::Feedback feedback_of(const json& record, const std::string& movie_id) {
  for (const char* field : {"initiatorQuestions", "respondentQuestions"}) {
    const auto questions = record.find(field);
    if (questions == record.end() || !questions->is_object()) continue;
    const auto answers = questions->find(movie_id);
    if (answers == questions->end() || !answers->is_object()) continue;
    const auto liked = answers->find("liked");
    if (liked == answers->end() || !liked->is_number_integer()) continue;
    const auto value = liked->get<int>();
    if (value == 0) return eval::Feedback::negative;
    if (value == 1) return eval::Feedback::positive;
    return eval::Feedback::unknown;
  }
  return eval::Feedback::unknown;
}

bool has_annotations(const json& record) {
  for (const auto& m : record["messages"])
    if (m.is_object() && (m.contains("item") || m.contains("movie") || m.contains("entity"))) return true;
  return false;
}

// A ReDial record as a Dialog with entity ids: its annotations, else the linker's entities of
// each message (movies as `item`, the rest as `entity`, as the annotations have them).
Dialog annotated_dialog(const json& record, const Recommender& recommender) {
  const KnowledgeGraph& kg = recommender.graph();
  if (!record.is_object() || !record.contains("messages") || !record["messages"].is_array() ||
      has_annotations(record))
    return Dialog::from_redial(record, &kg);
  const MovieMentions mentions = Dialog::from_redial(record).movie_mentions;
  json copy = record;
  for (auto& m : copy["messages"]) {
    if (!m.is_object() || !m.contains("text") || !m["text"].is_string()) continue;
    json items = json::array(), others = json::array();
    for (const auto& e : recommender.linker().link(m["text"].get_ref<const std::string&>(), &mentions))
      (kg.is_item(e.id) ? items : others).push_back(std::string(kg.entity_key(e.id)));
    m["item"] = std::move(items);
    m["entity"] = std::move(others);
  }
  return Dialog::from_redial(copy, &kg);
}

// The samples of one ReDial record.
void add_samples(const json& record, const Recommender& recommender, std::vector<Sample>& out, Counts& counts) {
  const KnowledgeGraph& kg = recommender.graph();
  const Dialog dialog = annotated_dialog(record, recommender);
  // KG movie -> the ReDial ids (movieMentions keys) whose title resolves to it.
  std::map<std::int64_t, std::string> redial_id;
  for (const auto& [id, title] : dialog.movie_mentions)
    if (const auto entity = recommender.linker().resolve_title(title)) redial_id.emplace(*entity, id);

  for (std::size_t t = 1; t < dialog.turns.size(); ++t) {
    const Turn& turn = dialog.turns[t];
    if (turn.role != Role::system) continue;
    std::vector<std::int64_t> golds;
    for (std::int64_t e : turn.entities) {
      if (std::find(golds.begin(), golds.end(), e) != golds.end()) continue;
      if (kg.is_item(e))
        golds.push_back(e);
      else if (kg.entity_type(e) == EntityType::movie)
        ++counts.not_items;
    }
    if (golds.empty()) continue;
    Dialog context;
    context.movie_mentions = dialog.movie_mentions;
    context.turns.assign(dialog.turns.begin(), dialog.turns.begin() + static_cast<std::ptrdiff_t>(t));
    std::set<std::int64_t> mentioned;
    for (const Turn& before : context.turns) mentioned.insert(before.entities.begin(), before.entities.end());
    for (std::int64_t gold : golds) {
      const auto id = redial_id.find(gold);
      const auto feedback = id == redial_id.end() ? eval::Feedback::unknown : feedback_of(record, id->second);
      out.push_back({context, gold, feedback, mentioned});
    }
  }
}

// How often each entity is mentioned in the dialogs of `files` (comma-separated): the
// popularity baseline's scores.
std::vector<float> mention_counts(const std::string& files, const Recommender& recommender, Timeout timeout) {
  std::vector<float> counts(static_cast<std::size_t>(recommender.graph().num_entities()), 0.f);
  std::size_t begin = 0;
  while (begin <= files.size()) {
    const std::size_t end = std::min(files.find(',', begin), files.size());
    const std::string path = files.substr(begin, end - begin);
    begin = end + 1;
    if (path.empty()) continue;
    LineReader in(path, "--popularity-from", timeout);
    for (std::string line; in.next(line);) {
      const std::size_t line_number = in.line_number();
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const json record = parse_json(line, fmt::format("{}:{}", path, line_number));
      try {
        for (const Turn& turn : annotated_dialog(record, recommender).turns)
          for (std::int64_t e : turn.entities)
            if (recommender.graph().is_item(e)) counts[static_cast<std::size_t>(e)] += 1.f;
      } catch (const json::exception& e) {
        fail<InputError>("{}:{}: {}", path, line_number, printable(e.what()));
      } catch (const InputError& e) {
        fail<InputError>("{}:{}: {}", path, line_number, e.what());
      }
    }
  }
  return counts;
}

// The co-occurrence baseline's counts: for each item, the items named in the same conversation
// of the movie sequences (ReDial ids, resolved through the titles of `names`, id2info.json), with
// the number of such conversations; and each item's number of conversations.
struct CooccurrenceCounts {
  std::map<std::int64_t, std::map<std::int64_t, float>> together;
  std::vector<float> conversations;
};

CooccurrenceCounts cooccurrence_counts(const std::string& sequences, const std::string& names,
                                       const Recommender& recommender, Timeout timeout) {
  const KnowledgeGraph& kg = recommender.graph();
  const json info = parse_json(read_input(names, std::size_t{256} << 20, "--movie-names", timeout), names);
  if (!info.is_object()) fail<InputError>("{}: expected an object of ReDial movie id -> {{\"name\": ...}}", names);
  std::map<std::string, std::int64_t, std::less<>> entity_of;
  for (const auto& [id, movie] : info.items()) {
    if (!movie.is_object() || !movie.contains("name") || !movie["name"].is_string())
      fail<InputError>("{}: movie '{}' has no string \"name\"", names, printable(id));
    if (const auto e = recommender.linker().resolve_title(movie["name"].get_ref<const std::string&>()); e && kg.is_item(*e))
      entity_of.emplace(id, *e);
  }
  CooccurrenceCounts out;
  out.conversations.assign(static_cast<std::size_t>(kg.num_entities()), 0.f);
  LineReader in(sequences, "--cooccurrence-from", timeout);
  for (std::string line; in.next(line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", sequences, in.line_number());
    const json record = parse_json(line, where);
    if (!record.is_object() || !record.contains("movies") || !record["movies"].is_array())
      fail<InputError>("{}: expected {{\"movies\": [[ReDial movie id, liked], ...]}}", where);
    std::set<std::int64_t> movies;
    for (const json& m : record["movies"]) {
      if (!m.is_array() || m.empty() || !m[0].is_string())
        fail<InputError>("{}: a movie is not [\"<ReDial id>\", liked]", where);
      if (const auto e = entity_of.find(m[0].get_ref<const std::string&>()); e != entity_of.end()) movies.insert(e->second);
    }
    for (std::int64_t a : movies) {
      out.conversations[static_cast<std::size_t>(a)] += 1.f;
      for (std::int64_t b : movies)
        if (a != b) out.together[a][b] += 1.f;
    }
  }
  return out;
}

// A sample's co-occurrence scores: conversations shared with the context's movies, plus the
// item's conversations scaled under 1 so that they only break ties.
void cooccurrence_scores(const Sample& s, const CooccurrenceCounts& counts, const KnowledgeGraph& kg,
                         std::vector<float>& scores) {
  const float most = *std::max_element(counts.conversations.begin(), counts.conversations.end());
  for (std::size_t i = 0; i < scores.size(); ++i) scores[i] = counts.conversations[i] / (most + 1.f);
  for (std::int64_t m : s.mentioned) {
    if (!kg.is_item(m)) continue;
    const auto row = counts.together.find(m);
    if (row == counts.together.end()) continue;
    for (const auto& [item, n] : row->second) scores[static_cast<std::size_t>(item)] += n;
  }
}

// 1-based rank of the gold item among all items (ties: the lower id first, as the Recommender
// ranks) and its softmax probability over the items.
eval::RankedSample rank_of(const Sample& s, const std::vector<float>& scores, std::span<const std::int32_t> items) {
  const float gold = scores[static_cast<std::size_t>(s.gold)];
  float top = gold;
  for (std::int32_t id : items) top = std::max(top, scores[static_cast<std::size_t>(id)]);
  std::int64_t rank = 1;
  double sum = 0;
  for (std::int32_t id : items) {
    const float v = scores[static_cast<std::size_t>(id)];
    if (v > gold || (v == gold && id < s.gold)) ++rank;
    sum += std::exp(static_cast<double>(v) - top);
  }
  return {rank, std::exp(static_cast<double>(gold) - top) / sum, s.feedback};
}

// The de-duplicated variant: ranked among the items the context does not name; none when the
// context names the gold item.
std::optional<eval::RankedSample> rank_unmentioned(const Sample& s, const std::vector<float>& scores,
                                                   std::span<const std::int32_t> items) {
  if (s.mentioned.count(s.gold)) return std::nullopt;
  std::vector<std::int32_t> rest;
  rest.reserve(items.size());
  for (std::int32_t id : items)
    if (!s.mentioned.count(id)) rest.push_back(id);
  return rank_of(s, scores, rest);
}

class Progress {
 public:
  explicit Progress(std::size_t total) : total_(total), tty_(::isatty(::fileno(stderr)) != 0), start_(Clock::now()) {}
  void update(std::size_t done) {
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    if (tty_) {
      constexpr std::size_t width = 30;
      const std::size_t filled = total_ ? done * width / total_ : width;
      fmt::print(stderr, "\r[{}{}] {}/{} samples, {:.1f} s", std::string(filled, '='), std::string(width - filled, ' '),
                 done, total_, seconds);
      if (done == total_) fmt::print(stderr, "\n");
    } else if (done == total_ || done * 10 / std::max<std::size_t>(total_, 1) > reported_) {
      reported_ = done * 10 / std::max<std::size_t>(total_, 1);
      fmt::print(stderr, "eval: {}/{} samples, {:.1f} s\n", done, total_, seconds);
    }
    std::fflush(stderr);
  }

 private:
  std::size_t total_, reported_ = 0;
  bool tty_;
  Clock::time_point start_;
};

// --- replies (--responses): ECR's generation metrics over the Responder's replies ------------------

struct ReplyStats {
  std::vector<std::vector<std::string>> words;  // each reply split on whitespace, as ECR's evaluate_conv
  double seconds = 0;
};

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  std::size_t at = 0;
  while ((at = text.find_first_not_of(" \t\n\r\f\v", at)) != std::string::npos) {
    const std::size_t end = std::min(text.find_first_of(" \t\n\r\f\v", at), text.size());
    words.push_back(text.substr(at, end - at));
    at = end;
  }
  return words;
}

// Dist-n as docs/math.md section 10 defines it (distinct / all n-grams) and as ECR's evaluate_conv reports
// it (distinct n-grams / non-empty replies), and the mean reply length in words.
json reply_report(const ReplyStats& stats) {
  std::size_t words = 0, replies = 0;
  for (const auto& w : stats.words) {
    words += w.size();
    replies += !w.empty();
  }
  json out = {{"replies", stats.words.size()},
              {"avg_words", stats.words.empty() ? 0.0 : static_cast<double>(words) / stats.words.size()},
              {"seconds", stats.seconds}};
  for (int n = 1; n <= 4; ++n) {
    std::set<std::vector<std::string>> distinct;
    for (const auto& w : stats.words)
      for (std::size_t i = 0; i + n <= w.size(); ++i) distinct.emplace(w.begin() + i, w.begin() + i + n);
    out[fmt::format("dist@{}", n)] = eval::distinct_n(stats.words, n);
    out[fmt::format("dist@{}_per_reply", n)] = replies ? static_cast<double>(distinct.size()) / replies : 0.0;
  }
  return out;
}

Args eval_args() {
  Args args("ecr eval [--bundle BUNDLE] --dialogs FILE.jsonl [options]",
            "Recommendation metrics of ECR over ReDial dialogs (one JSON object a line): every system turn that\n"
            "mentions a recommendable movie is a sample with the dialog before it as context. Prints Recall, MRR\n"
            "and NDCG @1/10/50, RT@K (recall over liked movies) and the feedback AUC, global and batch-averaged,\n"
            "ranking every item as the paper does (the items the context names included); then the same metrics\n"
            "de-duplicated, as `ecr recommend` ranks: the items the context names (any turn) left out, and the\n"
            "samples whose gold item the context already names dropped.");
  args.option("bundle", "BUNDLE", kBundleHelp)
      .option("dialogs", "FILE", "ReDial dialogs, JSON lines")
      .option("timeout", "SECONDS", kTimeoutHelp, kDefaultTimeout)
      .option("batch-size", "N", "samples per Recommender batch and per AUC batch", "32")
      .option("limit", "N", "read only the first N dialogs")
      .option("threads", "N", kThreadsHelp, "0")
      .option("device", "D", kDeviceHelp, "cpu")
      .option("json", "OUT", "also write the metrics as JSON to OUT")
      .option("responses", "N", "also write replies for the first N samples (conv_prompt and generator needed) and "
              "report Dist-1..4 and their mean length", "0")
      .flag("link-text", "also link entities in turns without annotations")
      .flag("no-global-entities", "leave the co-occurrence (global) entities out of the prompt")
      .flag("no-emotions", "ECR's ablation: no emotions (no classifier, no emotion fusion, no global entities)")
      .option("baseline", "NAME", "model (the bundle), random, popularity or cooccurrence", "model")
      .option("popularity-from", "FILES", "comma-separated ReDial files whose item mentions rank --baseline popularity")
      .option("cooccurrence-from", "FILE", "movie sequences (movie_sequences.jsonl) that rank --baseline cooccurrence")
      .option("movie-names", "FILE", "ReDial movie id -> name (id2info.json) for --cooccurrence-from "
              "(default: id2info.json beside it)")
      .option("seed", "S", "seed of --baseline random", "0")
      .option("feedback-strength", "B", "the de-duplicated variant ranks with the feedback rule at this strength, "
              "as `ecr recommend` does (0: the model's scores)", "0");
  return args;
}

// What the command line asks for, every option checked before anything is loaded.
struct Plan {
  RecommenderOptions options;
  std::size_t batch_size = 0;
  long long limit = -1;  // dialogs to read; -1: all
  std::string baseline;
  double feedback_strength = 0;
  std::uint64_t seed = 0;
};

Plan read_plan(const Args& args) {
  Plan plan;
  const long long batch_size = args.get_int("batch-size");
  const EngineOptions engine_opts = engine_options(args);
  const long long limit = args.has("limit") ? args.get_int("limit") : -1;
  if (batch_size < 1) fail<InputError>("--batch-size must be at least 1, got {}", batch_size);
  if (args.has("limit") && limit < 1) fail<InputError>("--limit must be at least 1, got {}", limit);
  plan.batch_size = static_cast<std::size_t>(batch_size);
  plan.limit = limit;

  RecommenderOptions& options = plan.options;
  static_cast<EngineOptions&>(options) = engine_opts;
  options.exclude_mentioned = false;  // the paper's protocol; the de-duplicated variant is computed here
  options.feedback_strength = 0;
  options.link_text = args.get_flag("link-text");
  options.global_entities = !args.get_flag("no-global-entities");
  options.emotions = !args.get_flag("no-emotions");
  const std::string baseline = args.get("baseline");
  if (baseline != "model" && baseline != "random" && baseline != "popularity" && baseline != "cooccurrence")
    fail<InputError>("--baseline must be model, random, popularity or cooccurrence, got '{}'", baseline);
  if ((baseline == "popularity") != args.has("popularity-from"))
    fail<InputError>("--baseline popularity and --popularity-from FILES go together");
  if ((baseline == "cooccurrence") != args.has("cooccurrence-from"))
    fail<InputError>("--baseline cooccurrence and --cooccurrence-from FILE go together");
  if (args.has("movie-names") && !args.has("cooccurrence-from"))
    fail<InputError>("--movie-names goes with --cooccurrence-from");
  plan.baseline = baseline;
  const double feedback_strength = args.get_double("feedback-strength");
  if (!(feedback_strength >= 0) || !std::isfinite(feedback_strength))
    fail<InputError>("--feedback-strength must be finite and >= 0, got {}", feedback_strength);
  if (feedback_strength > 0 && baseline != "model")
    fail<InputError>("--feedback-strength goes with --baseline model");
  plan.feedback_strength = feedback_strength;
  const long long seed = args.get_int("seed");
  if (seed < 0) fail<InputError>("--seed must be 0 or more, got {}", seed);
  plan.seed = static_cast<std::uint64_t>(seed);
  return plan;
}

// The samples of the first `limit` dialogs of `path` (all when -1).
std::vector<Sample> read_samples(const std::string& path, long long limit, const Recommender& recommender,
                                 Timeout timeout, Counts& counts) {
  LineReader in(path, "dialogs", timeout);
  std::vector<Sample> samples;
  for (std::string line; (limit < 0 || static_cast<long long>(counts.dialogs) < limit) && in.next(line);) {
    const std::size_t line_number = in.line_number();
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const json record = parse_json(line, fmt::format("{}:{}", path, line_number));
    try {
      add_samples(record, recommender, samples, counts);
    } catch (const InputError& e) {
      fail<InputError>("{}:{}: {}", path, line_number, e.what());
    }
    ++counts.dialogs;
  }
  return samples;
}

// What a baseline other than the model ranks by, read from the files its options name.
struct BaselineData {
  std::vector<float> popularity;
  CooccurrenceCounts cooccurrence;
};

BaselineData read_baseline(const Args& args, const std::string& baseline, const Recommender& recommender) {
  BaselineData data;
  if (baseline == "popularity")
    data.popularity = mention_counts(args.get("popularity-from"), recommender, input_timeout(args));
  if (baseline == "cooccurrence") {
    const std::string sequences = args.get("cooccurrence-from");
    const std::string names = args.has("movie-names")
                                  ? args.get("movie-names")
                                  : (std::filesystem::path(sequences).parent_path() / "id2info.json").string();
    data.cooccurrence = cooccurrence_counts(sequences, names, recommender, input_timeout(args));
  }
  return data;
}

// Every sample's rank, the paper's way and de-duplicated.
struct Ranks {
  std::vector<eval::RankedSample> ranked, unmentioned;
  double seconds = 0;
};

// Ranks the samples by a baseline's scores.
void rank_by_baseline(const Plan& plan, const BaselineData& data, std::span<const Sample> samples,
                      const Recommender& recommender, Ranks& ranks) {
  const auto items = recommender.graph().items();
  std::mt19937_64 random_scores(plan.seed);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  std::vector<float> scores(static_cast<std::size_t>(recommender.graph().num_entities()));
  Progress progress(samples.size());
  for (std::size_t first = 0; first < samples.size(); first += plan.batch_size) {
    const std::size_t count = std::min(plan.batch_size, samples.size() - first);
    for (std::size_t i = first; i < first + count; ++i) {
      if (plan.baseline == "random")
        for (float& v : scores) v = uniform(random_scores);
      if (plan.baseline == "cooccurrence") cooccurrence_scores(samples[i], data.cooccurrence, recommender.graph(), scores);
      const std::vector<float>& by = plan.baseline == "popularity" ? data.popularity : scores;
      ranks.ranked.push_back(rank_of(samples[i], by, items));
      if (auto r = rank_unmentioned(samples[i], by, items)) ranks.unmentioned.push_back(*r);
    }
    progress.update(first + count);
  }
}

// Ranks the samples by the model's scores, a batch at a time, and writes a reply for the first
// `responses` of them when there is a responder.
void rank_by_model(const Plan& plan, std::span<const Sample> samples, const Recommender& recommender,
                   const std::optional<Responder>& responder, std::size_t responses, ReplyStats& replies,
                   Ranks& ranks) {
  const auto items = recommender.graph().items();
  RecommendRequest request;
  request.top_k = 1;
  request.all_scores = true;
  if (plan.feedback_strength > 0) {  // every remaining item, ranked as `ecr recommend` ranks them
    request.top_k = items.size();
    request.exclude_mentioned = true;
    request.feedback_strength = static_cast<float>(plan.feedback_strength);
  }
  std::vector<float> listened(static_cast<std::size_t>(recommender.graph().num_entities()));
  Progress progress(samples.size());
  for (std::size_t first = 0; first < samples.size(); first += plan.batch_size) {
    const std::size_t count = std::min(plan.batch_size, samples.size() - first);
    std::vector<Dialog> batch;
    for (std::size_t i = first; i < first + count; ++i) batch.push_back(samples[i].context);
    const auto results = recommender.recommend_batch(batch, request);
    for (std::size_t i = 0; i < count; ++i) {
      const Sample& s = samples[first + i];
      const std::vector<float>& scores = *results[i].all_scores;
      ranks.ranked.push_back(rank_of(s, scores, items));
      if (plan.feedback_strength > 0) {
        std::fill(listened.begin(), listened.end(), -std::numeric_limits<float>::infinity());
        for (const RecommendedItem& item : results[i].items) listened[static_cast<std::size_t>(item.id)] = item.score;
      }
      if (auto r = rank_unmentioned(s, plan.feedback_strength > 0 ? listened : scores, items))
        ranks.unmentioned.push_back(*r);
    }
    for (std::size_t i = 0; responder && i < count && first + i < responses; ++i) {
      const auto r0 = Clock::now();  // the reply about the top item, as ECR's rec_gen is the top-1 prediction
      replies.words.push_back(split_words(responder->respond(samples[first + i].context, results[i]).text));
      replies.seconds += std::chrono::duration<double>(Clock::now() - r0).count();
    }
    progress.update(first + count);
  }
}

void print_report(const eval::Report& r, std::size_t batch_size) {
  fmt::print("{:<8}", "");
  for (std::int64_t k : eval::kDefaultKs) fmt::print(" {:>8}", fmt::format("@{}", k));
  fmt::print("\n");
  for (const char* metric : {"recall", "mrr", "ndcg", "rt"}) {
    fmt::print("{:<8}", metric);
    for (std::int64_t k : eval::kDefaultKs) fmt::print(" {:>8.4f}", r.values.at(fmt::format("{}@{}", metric, k)));
    fmt::print("\n");
  }
  fmt::print("auc {:.4f}, auc_batch {:.4f} (batches of {}; -1: no positive/negative pair)\n", r.values.at("auc"),
             r.values.at("auc_batch"), batch_size);
}

void print_replies(const json& replies, const ReplyStats& stats) {
  fmt::print("replies {} ({:.2f} s each), {:.1f} words on average\n", replies["replies"].get<std::size_t>(),
             stats.words.empty() ? 0.0 : stats.seconds / stats.words.size(), replies["avg_words"].get<double>());
  fmt::print("{:<8}", "");
  for (int n = 1; n <= 4; ++n) fmt::print(" {:>8}", fmt::format("dist@{}", n));
  fmt::print("\n{:<8}", "ratio");
  for (int n = 1; n <= 4; ++n) fmt::print(" {:>8.4f}", replies[fmt::format("dist@{}", n)].get<double>());
  fmt::print("\n{:<8}", "/reply");
  for (int n = 1; n <= 4; ++n) fmt::print(" {:>8.4f}", replies[fmt::format("dist@{}_per_reply", n)].get<double>());
  fmt::print("\n(ratio: distinct / all n-grams, docs/math.md section 10; /reply: distinct n-grams per reply, ECR's evaluate_conv)\n");
}

// What a run found, as the summary and --json report it.
struct Results {
  Counts counts;
  eval::Report report, dedup;
  std::size_t items = 0;
  double load_seconds = 0, eval_seconds = 0;
  std::optional<json> replies;  // with --responses
};

void print_results(const Plan& plan, const Results& r, const ReplyStats& reply_stats) {
  fmt::print("{} dialogs, {} samples ({} positive, {} negative, {} without feedback), {} items; "
             "load {:.2f} s, eval {:.2f} s ({:.1f} ms/sample)\n",
             r.counts.dialogs, r.report.samples, r.report.positives, r.report.negatives, r.counts.unknown_feedback,
             r.items, r.load_seconds, r.eval_seconds,
             r.report.samples ? 1000.0 * r.eval_seconds / r.report.samples : 0.0);
  print_report(r.report, plan.batch_size);
  fmt::print("\nde-duplicated: {} samples (gold not named before), the items the context names left out{}\n",
             r.dedup.samples,
             plan.feedback_strength > 0 ? fmt::format(", feedback strength {}", plan.feedback_strength) : "");
  print_report(r.dedup, plan.batch_size);
  if (r.replies) print_replies(*r.replies, reply_stats);
}

json results_json(const Plan& plan, const Results& r, const std::filesystem::path& bundle_path,
                  const std::string& dialogs_path) {
  json j = {{"bundle", bundle_path.string()},
            {"baseline", plan.baseline},
            {"emotions", plan.options.emotions},
            {"feedback_strength", plan.feedback_strength},
            {"dialogs_file", dialogs_path},
            {"dialogs", r.counts.dialogs},
            {"samples", r.report.samples},
            {"positives", r.report.positives},
            {"negatives", r.report.negatives},
            {"unknown_feedback", r.counts.unknown_feedback},
            {"movies_not_items", r.counts.not_items},
            {"items", r.items},
            {"batch_size", plan.batch_size},
            {"load_seconds", r.load_seconds},
            {"eval_seconds", r.eval_seconds},
            {"metrics", r.report.values},
            {"dedup_samples", r.dedup.samples},
            {"dedup_metrics", r.dedup.values}};
  if (r.replies) j["replies"] = *r.replies;
  return j;
}

}  // namespace

int eval(const Argv& argv) {
  Args args = eval_args();
  if (!args.parse(argv)) return 0;
  const Plan plan = read_plan(args);

  const auto t0 = Clock::now();
  const std::filesystem::path bundle_path = bundle_or_default(args);
  const Engine engine = Engine::load(bundle_path, plan.options);
  const Recommender recommender = Recommender::load(engine, plan.options);
  const long long responses = args.get_int("responses");
  if (responses < 0) fail<InputError>("--responses must be 0 or more, got {}", responses);
  const std::optional<Responder> responder =
      responses ? std::optional(Responder::load(engine, ResponderOptions{})) : std::nullopt;
  const double load_seconds = std::chrono::duration<double>(Clock::now() - t0).count();

  const std::string path = args.get("dialogs");
  Counts counts;
  const std::vector<Sample> samples = read_samples(path, plan.limit, recommender, input_timeout(args), counts);
  const BaselineData baseline = read_baseline(args, plan.baseline, recommender);
  const auto t1 = Clock::now();
  Ranks ranks;
  ReplyStats reply_stats;
  if (plan.baseline == "model")
    rank_by_model(plan, samples, recommender, responder, static_cast<std::size_t>(responses), reply_stats, ranks);
  else
    rank_by_baseline(plan, baseline, samples, recommender, ranks);
  const double eval_seconds = std::chrono::duration<double>(Clock::now() - t1).count();

  Results results{counts,
                  eval::rank_report(ranks.ranked, eval::kDefaultKs, plan.batch_size),
                  eval::rank_report(ranks.unmentioned, eval::kDefaultKs, plan.batch_size),
                  recommender.graph().items().size(),
                  load_seconds,
                  eval_seconds,
                  responder ? std::optional(reply_report(reply_stats)) : std::nullopt};
  for (const eval::RankedSample& s : ranks.ranked)
    results.counts.unknown_feedback += s.feedback == eval::Feedback::unknown;
  print_results(plan, results, reply_stats);
  if (const auto out = args.get_opt("json")) {
    // Checked to the last byte and renamed into place: a full disk is an error, not an empty file.
    write_file(*out, results_json(plan, results, bundle_path, path).dump(2, ' ', false, json::error_handler_t::replace) +
                         "\n");
  }
  return 0;
}

}  // namespace ecr::cli
