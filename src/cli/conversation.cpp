#include "conversation.hpp"

#include <fmt/format.h>

#include "ecr/core/error.hpp"
#include "ecr/core/utf8.hpp"
#include "listening.hpp"
#include "output.hpp"

namespace ecr::cli {

namespace {

using nlohmann::json;

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  for (std::size_t begin = 0; begin <= text.size();) {
    const std::size_t end = std::min(text.find(',', begin), text.size());
    if (end > begin) out.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return out;
}

long long at_least(const Args& args, const char* name, long long min) {
  const long long v = args.get_int(name);
  if (v < min) fail<InputError>("--{} must be at least {}, got {}", name, min, v);
  return v;
}

// Keeps what the Recommender found for the window's turns in the dialog, so that no later turn
// classifies or links them again. The dialog is merged as it grows (add_turn), so the window's
// turns are its last ones, one for one.
void remember(Dialog& dialog, const Recommendation& r) {
  if (r.turns.size() > dialog.turns.size()) return;
  const std::size_t first = dialog.turns.size() - r.turns.size();
  for (std::size_t t = 0; t < r.turns.size(); ++t) {
    Turn& turn = dialog.turns[first + t];
    const TurnAnalysis& seen = r.turns[t];
    if (turn.role != seen.role) return;
    if (!turn.emotions && seen.emotions) turn.emotions = seen.emotions;
    if (turn.entities.empty())
      for (const LinkedEntity& e : seen.entities) turn.entities.push_back(e.id);
  }
}

}  // namespace

void declare_conversation_options(Args& args) {
  args.option("bundle", "BUNDLE", kBundleHelp)
      .option("top-k", "K", "items to rank", "5")
      .option("generator", "G", "who writes the reply: llm (a GGUF chat model, docs/llm-replies.md), gpt2 (ECR's "
              "generator) or auto (llm when --llm is given or the default LLM is installed, else gpt2)", "auto")
      .option("llm", "FILE.gguf", "the LLM (a Llama-architecture GGUF chat model; default: $ECR_LLM, else "
              "SmolLM2-135M-Instruct where tools/fetch_llm.sh puts it)")
      .option("chat-template", "NAME", "the LLM's chat template instead of its file's: chatml, llama2, llama3, "
              "zephyr or mistral")
      .repeatable("lora", "FILE[:SCALE]", "a LoRA adapter over the LLM (llama.cpp's GGUF LoRA; "
                  "tools/convert_peft_lora.py converts a PEFT directory) with SCALE (default 1)")
      .option("items", "N", "recommended items the reply names (ECR: 1)", "1")
      .option("max-new-tokens", "N", "gpt2: most tokens of the reply (ECR: 150)", "150")
      .option("llm-max-new-tokens", "N", "llm: most tokens of the reply", "120")
      .option("llm-min-new-tokens", "N", "llm: tokens the reply has before it may end its turn",
              std::to_string(ResponderOptions().llm_generation.min_new_tokens))
      .option("llm-repetition-penalty", "R", "llm: HF repetition penalty (1: none)", "1.1")
      .option("llm-no-repeat-ngram", "N", "llm: never repeat an n-gram of this size, prompt included (0: off)",
              std::to_string(ResponderOptions().llm_generation.no_repeat_ngram_size))
      .option("temperature", "T", "0: greedy (ECR); > 0: sample the reply at this temperature (either generator)", "0")
      .option("sample-top-k", "K", "sampling: keep the K most likely tokens (0: all)", "0")
      .option("top-p", "P", "sampling: nucleus probability", "1")
      .option("repetition-penalty", "R", "gpt2: HF repetition penalty (1: none)", "1")
      .option("no-repeat-ngram", "N", "gpt2: never repeat an n-gram of this size (ECR: 3; 0: off)", "3")
      .option("seed", "S", "sampling seed for the reply", "0")
      .option("knowledge-seed", "S", "sample review entities and KG triples as ECR does (default: most frequent first)")
      .option("relations", "LIST", "comma-separated KG relations for knowledge (default: the bundle's, else ECR's)")
      .option("threads", "N", kThreadsHelp, "0")
      .option("device", "D", kDeviceHelp, "cpu")
      .flag("no-link", "use only the entity ids the dialog carries, not the linker")
      .flag("keep-mentioned", "rank items the dialog already mentions too (default: left out)")
      .option("feedback-strength", "B", "how far liked / disliked movies move their neighbours (0: off)", "1");
}

ConversationOptions conversation_options(const Args& args) {
  ConversationOptions o;
  o.bundle = bundle_or_default(args);
  o.engine = engine_options(args);
  o.recommender.link_text = !args.get_flag("no-link");
  o.recommender.exclude_mentioned = !args.get_flag("keep-mentioned");
  o.recommender.feedback_strength = static_cast<float>(args.get_double("feedback-strength"));
  ResponderOptions& resp = o.responder;
  resp.items_in_reply = static_cast<std::size_t>(at_least(args, "items", 1));
  resp.generation.max_new_tokens = at_least(args, "max-new-tokens", 1);
  resp.generation.temperature = static_cast<float>(args.get_double("temperature"));
  resp.generation.top_k = at_least(args, "sample-top-k", 0);
  resp.generation.top_p = static_cast<float>(args.get_double("top-p"));
  resp.generation.repetition_penalty = static_cast<float>(args.get_double("repetition-penalty"));
  resp.generation.no_repeat_ngram_size = at_least(args, "no-repeat-ngram", 0);
  resp.generation.seed = static_cast<std::uint64_t>(at_least(args, "seed", 0));
  if (args.has("knowledge-seed"))
    resp.knowledge_seed = static_cast<std::uint64_t>(at_least(args, "knowledge-seed", 0));
  resp.generator = parse_reply_generator(args.get("generator"));
  if (args.has("llm")) resp.llm_path = args.get("llm");
  if (args.has("chat-template")) resp.chat_template = args.get("chat-template");
  for (const std::string& arg : args.get_all("lora")) resp.llm_lora.push_back(LoraSpec::parse(arg));
  resp.llm_generation.max_new_tokens = at_least(args, "llm-max-new-tokens", 1);
  resp.llm_generation.min_new_tokens = at_least(args, "llm-min-new-tokens", 0);
  resp.llm_generation.repetition_penalty = static_cast<float>(args.get_double("llm-repetition-penalty"));
  resp.llm_generation.no_repeat_ngram_size = at_least(args, "llm-no-repeat-ngram", 0);
  resp.llm_generation.temperature = resp.generation.temperature;
  resp.llm_generation.top_k = resp.generation.top_k;
  resp.llm_generation.top_p = resp.generation.top_p;
  resp.llm_generation.seed = resp.generation.seed;
  lm::check_generate_options(resp.llm_generation);
  if (args.has("relations")) resp.knowledge_relations = split_list(args.get("relations"));
  o.top_k = static_cast<std::size_t>(at_least(args, "top-k", 1));
  return o;
}

Conversation open_conversation(const ConversationOptions& o) {
  Conversation c;
  // One engine serves both: the backbone, text encoder and knowledge graph load once.
  BundleOptions bundle_options;
  bundle_options.verify_checksums = o.engine.verify_checksums;
  c.bundle = Bundle::open(o.bundle, bundle_options);
  const Engine loaded = Engine::load(c.bundle, o.engine);
  c.recommender = Recommender::load(loaded, o.recommender);
  c.responder = Responder::load(loaded, o.responder);
  c.request.top_k = o.top_k;
  const auto& meta = c.bundle.metadata();
  c.untrained = meta.contains("untrained") && meta["untrained"] == true;
  return c;
}

std::string untrained_note(const Conversation& c) {
  if (!c.untrained) return "";
  return fmt::format("note: bundle '{}' was built from random, untrained checkpoints: its items and replies are "
                     "noise that only shows the machinery works.",
                     printable(c.bundle.label()));
}

std::string emotions_text(const TurnEmotions& e) {
  std::string s;
  for (std::size_t k = 0; k < e.ids.size(); ++k)
    if (e.ids[k] != kPadEmotion)
      s += fmt::format("{}{} {:.2f}", s.empty() ? "" : ", ", kEmotionLabels[e.ids[k]], e.probs[k]);
  return s.empty() ? "none over 0.1" : s;
}

nlohmann::json turn_json(const Conversation& c, const Responder::Turn& turn) {
  const Recommendation& rec = turn.recommendation;
  const Response& r = turn.response;
  json items = json::array(), named = json::array(), knowledge = json::array();
  for (const auto& item : rec.items) items.push_back(item_json(item));
  for (const auto& item : r.items) named.push_back({{"id", item.id}, {"name", item.name}});
  for (const auto& t : r.knowledge) knowledge.push_back(t.text());
  return {{"untrained", c.untrained},
          {"items", std::move(items)},
          {"user_emotions", emotions_json(rec.user_emotions)},
          {"feedback", feedback_json(rec.feedback)},
          {"generator", reply_generator_name(r.generator)},
          {"reply", r.text},
          {"template", r.template_text},
          {"first_sentence", r.first_sentence},
          {"reply_items", std::move(named)},
          {"review_entities", r.review_entities},
          {"knowledge", std::move(knowledge)},
          {"prompt_text", r.prompt_text},
          {"template_ids", r.template_ids},
          {"reply_ids", r.reply_ids}};
}

Responder::Turn converse_turn(const Conversation& c, Dialog& dialog, std::string text,
                              const std::function<void(const Recommendation&)>& ranked, const ReplyStream& stream) {
  const Dialog before = dialog;
  dialog.add_turn({Role::user, std::move(text), {}, {}});
  Responder::Turn turn;
  try {
    const Dialog window = Responder::recent_turns(c.recommender, c.responder, dialog);
    turn.recommendation = c.recommender.recommend(window, c.request);
    remember(dialog, turn.recommendation);
    if (ranked) ranked(turn.recommendation);
    turn.response = c.responder.respond(window, turn.recommendation, stream);
  } catch (...) {
    dialog = before;  // the turn failed: the dialog stays as it was
    throw;
  }
  // The reply names the items where the template had slots: their ids join the dialog with it.
  Turn reply{Role::system, turn.response.text, {}, {}};
  if (turn.response.template_text.find("<movie>") != std::string::npos)
    for (const auto& item : turn.response.items) reply.entities.push_back(item.id);
  dialog.add_turn(std::move(reply));
  return turn;
}

void print_items(const Recommendation& r) {
  fmt::print("emotions: {}\n", emotions_text(r.user_emotions));
  // What this turn said (the earlier turns' feedback still counts, but was shown with them).
  std::vector<Feedback> latest;
  for (const Feedback& f : r.feedback)
    if (f.turn + 1 == r.turns.size()) latest.push_back(f);
  if (const std::string read = feedback_text(latest); !read.empty()) fmt::print("heard: {}\n", printable(read));
  for (std::size_t i = 0; i < r.items.size(); ++i) {
    fmt::print("{:>4}. {}  ({:.3f})\n", i + 1, printable(r.items[i].name), r.items[i].score);
    if (const std::string why = explain(r.items[i]); !why.empty()) fmt::print("      {}\n", printable(why));
  }
}

void print_json(const nlohmann::json& j) {
  fmt::print("{}\n", json_text(j));
}

}  // namespace ecr::cli
