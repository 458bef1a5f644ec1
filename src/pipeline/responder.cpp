// The Responder composes the engine's parts into ECR's reply (docs/math.md sections 7 and 8): UniCRS's conv
// model writes a template, ECR's generator writes the reply from the items, their knowledge and
// that template.
#include "ecr/responder.hpp"

#include <algorithm>
#include <set>

#include "ecr/core/thread_pool.hpp"
#include "ecr/default_bundle.hpp"
#include "ecr/io/gguf.hpp"
#include "ecr/models/llama.hpp"
#include "ecr/text/chat_template.hpp"
#include "ecr/text/gguf_tokenizer.hpp"
#include "ecr/models/entity_encoder.hpp"
#include "ecr/models/gpt2.hpp"
#include "ecr/models/prompt_encoder.hpp"
#include "ecr/models/roberta.hpp"
#include "ecr/text/tokenizer.hpp"
#include "components.hpp"
#include "engine_impl.hpp"
#ifdef ECR_WITH_CUDA
#include "engine_cuda.hpp"
#endif
#include "llm_prompt.hpp"
#include "reply_text.hpp"
#include "retrieval.hpp"

namespace ecr {

using namespace pipeline;

namespace {

// UniCRS's conv collator appends the tokens of "System:" to the context to make it answer.
constexpr std::string_view kSystemCue = "System:";

// The dialog as the models read it: turns merged, text prepared as ECR prepares it, and the
// entities (and emotions) the Recommender found when it analysed the turns.
Dialog model_view(const Dialog& dialog, const Recommendation& recommendation) {
  Dialog view;
  view.movie_mentions = dialog.movie_mentions;
  if (recommendation.turns.empty()) {
    for (const Turn& turn : dialog.turns) view.add_turn(turn);
  } else {
    for (const TurnAnalysis& t : recommendation.turns) {
      Turn turn{t.role, t.text, {}, t.emotions};
      for (const LinkedEntity& e : t.entities) turn.entities.push_back(e.id);
      view.add_turn(std::move(turn));
    }
  }
  for (Turn& turn : view.turns) turn.text = redial_text(turn.text, view.movie_mentions);
  return view;
}

// The user's emotions as words, strongest first (the classifier's or the host's labels).
std::vector<std::string> emotion_words(const TurnEmotions& e) {
  std::vector<std::string> words;
  for (std::int32_t id : e.ids)
    if (id != kPadEmotion && id >= 0 && static_cast<std::size_t>(id) < kEmotionLabels.size())
      words.emplace_back(kEmotionLabels[static_cast<std::size_t>(id)]);
  return words;
}

// The LLM, its tokenizer and chat template, loaded once and shared by every request.
struct Llm {
  LlamaModel model;
  std::shared_ptr<const Tokenizer> tokenizer;
  text::ChatTemplate chat;
  std::vector<std::int32_t> end_of_turn;
};

std::shared_ptr<const Llm> load_llm(const std::filesystem::path& path, const std::string& chat_template,
                                    std::span<const LoraSpec> lora, std::shared_ptr<ThreadPool> pool) {
  const gguf::File file = gguf::File::open(path);
  auto tokenizer = text::tokenizer_from_gguf(file);
  auto chat = text::ChatTemplate::from_gguf(
      file, chat_template.empty() ? std::nullopt : std::optional<std::string_view>(chat_template));
  auto end_of_turn = text::end_of_turn_tokens(*tokenizer);
  return std::make_shared<const Llm>(Llm{LlamaModel::load(file, std::move(pool), lora), std::move(tokenizer),
                                         std::move(chat), std::move(end_of_turn)});
}

}  // namespace

std::string_view reply_generator_name(ReplyGenerator generator) {
  switch (generator) {
    case ReplyGenerator::gpt2: return "gpt2";
    case ReplyGenerator::llm: return "llm";
    case ReplyGenerator::automatic: break;
  }
  return "auto";
}

ReplyGenerator parse_reply_generator(std::string_view name) {
  if (name == "gpt2") return ReplyGenerator::gpt2;
  if (name == "llm") return ReplyGenerator::llm;
  if (name == "auto") return ReplyGenerator::automatic;
  fail<InputError>("generator '{}': expected llm, gpt2 or auto", name);
}

std::string KnowledgeTriple::text() const { return movie + "'s " + relation + " is " + entity; }

// A view of the engine's parts with this responder's options; the checks that tie the parts
// together (widths, limits, relations) run once here. On a CUDA engine the CPU models stay
// unloaded (null) and the template and the reply are decoded by their device twins.
struct Responder::Impl {
  Engine engine;
  ResponderOptions options;
  const KnowledgeGraph& kg;
  const Tokenizer& context_tokenizer;
  const Tokenizer& prompt_tokenizer;
  const Tokenizer& generator_tokenizer;
  bool on_device = false;
  // The CPU models; null on a CUDA engine.
  const Gpt2Model* backbone = nullptr;
  const Gpt2Model* generator = nullptr;
  const RobertaModel* text_encoder = nullptr;
  const PromptEncoder* conv_prompt = nullptr;
  const std::optional<ReviewStore>& reviews;
  std::vector<responder::KnowledgeRelation> relations;
  std::vector<std::int32_t> system_cue;
  std::int32_t context_eos = 0, prompt_cls = 0, generator_eos = 0;
  std::shared_ptr<const Llm> llm;  // set when the LLM writes the replies

  Impl(const Engine& e, ResponderOptions o);
  // The LLM's reply (docs/llm-replies.md): retrieval, prompt, chat template, decoding.
  void respond_with_llm(const Dialog& view, std::span<const responder::PromptItem> items, Response& r,
                        const ReplyStream& stream) const;
  Response respond(const Dialog& dialog, const Recommendation& recommendation, const ReplyStream& stream) const;
  std::vector<std::int32_t> write_template(const Dialog& view, Response& r) const;
  // The generator's reply to its prompt, on the engine's device.
  lm::Generation reply(std::span<const std::int32_t> prompt, const lm::GenerateOptions& decoding) const;
};

Responder::Impl::Impl(const Engine& e, ResponderOptions o)
    : engine(e),
      options(std::move(o)),
      kg(e.graph()),
      context_tokenizer(e.impl().backbone_tokenizer()),
      prompt_tokenizer(e.impl().text_encoder_tokenizer()),
      generator_tokenizer(e.impl().generator_tokenizer()),
      on_device(e.impl().on_device()),
      reviews(e.impl().reviews()) {
  const ComponentNames& names = engine.options().components;
  if (options.context_tokens == 0 || options.prompt_tokens < 2 || options.template_max_new_tokens < 1 ||
      options.items_in_reply == 0)
    fail<ConfigError>("responder: context_tokens, template_max_new_tokens and items_in_reply must be >= 1 and "
                      "prompt_tokens >= 2 (found {}, {}, {} and {})",
                      options.context_tokens, options.template_max_new_tokens, options.items_in_reply,
                      options.prompt_tokens);
  context_eos = special_token(context_tokenizer, kContextEos, names.backbone);
  special_token(prompt_tokenizer, kPromptSep, names.text_encoder);
  prompt_cls = special_token(prompt_tokenizer, kPromptCls, names.text_encoder);
  generator_eos = special_token(generator_tokenizer, kContextEos, names.generator);
  system_cue = context_tokenizer.encode(kSystemCue);
  if (options.context_tokens <= system_cue.size())
    fail<ConfigError>("responder: context_tokens {} leaves no room for the context before \"System:\"",
                      options.context_tokens);

  // The models load here, on the engine's device, so a bad part fails the load, not a request.
  const Gpt2Config* g = nullptr;
  const Gpt2Config* gen = nullptr;
  const RobertaConfig* t = nullptr;
  const PromptConfig* p = nullptr;
  if (on_device) {
#ifdef ECR_WITH_CUDA
    const DeviceModels& device = e.impl().device();
    g = &device.backbone().config();
    gen = &device.generator().config();
    t = &device.text_encoder().config();
    p = &device.conv_prompt().config();
#endif
  } else {
    backbone = &e.impl().backbone();
    generator = &e.impl().generator();
    text_encoder = &e.impl().text_encoder();
    conv_prompt = &e.impl().conv_prompt();
    g = &backbone->config();
    gen = &generator->config();
    t = &text_encoder->config();
    p = &conv_prompt->config();
  }
  if (!g) fail<DeviceError>("responder: this build of ecr cannot run on {}", engine.options().device.str());

  check_prompt_fits(*p, PromptKind::conv, names.conv_prompt, *g, *t, names);
  if (options.prompt_tokens > static_cast<std::size_t>(t->max_tokens()))
    fail<ConfigError>("responder: prompt_tokens {} exceeds component '{}''s {} tokens", options.prompt_tokens,
                      names.text_encoder, t->max_tokens());
  if (static_cast<std::int64_t>(options.context_tokens) + options.template_max_new_tokens > g->n_positions)
    fail<ConfigError>("responder: context_tokens {} + template_max_new_tokens {} exceed backbone '{}''s {} positions",
                      options.context_tokens, options.template_max_new_tokens, names.backbone, g->n_positions);
  if (static_cast<std::int64_t>(options.prompt_max_tokens) + 1 + options.generation.max_new_tokens > gen->n_positions)
    fail<ConfigError>("responder: prompt_max_tokens {} + 1 + max_new_tokens {} exceed generator '{}''s {} positions",
                      options.prompt_max_tokens, options.generation.max_new_tokens, names.generator,
                      gen->n_positions);

  if (!options.knowledge_relations.empty()) {
    relations = responder::resolve_relations(kg, options.knowledge_relations, true);
  } else if (auto listed = read_component(engine.bundle(), names.generator).entry.strings("knowledge_relations")) {
    relations = responder::resolve_relations(kg, *listed, true);
  } else {
    relations = responder::resolve_relations(kg, responder::kDefaultKnowledgeRelations, false);
  }

  // The LLM: named or found; a file that is not a Llama chat model fails the load, not a request.
  std::optional<std::filesystem::path> llm_path;
  if (options.generator != ReplyGenerator::gpt2)
    llm_path = options.llm_path.empty() ? default_llm_path() : std::optional(options.llm_path);
  if (options.generator == ReplyGenerator::llm && !llm_path) {
    std::string tried;
    for (const auto& place : default_llm_candidates()) tried += (tried.empty() ? "" : ", ") + place.string();
    fail<ConfigError>("responder: generator llm needs an LLM: pass --llm FILE.gguf, set ECR_LLM or run "
                      "tools/fetch_llm.sh (tried: {})", tried);
  }
  if (!options.llm_lora.empty() && options.generator == ReplyGenerator::gpt2)
    fail<ConfigError>("responder: LoRA adapters ({}) go with the llm generator, not gpt2",
                      options.llm_lora.front().path.string());
  if (llm_path && on_device) {
    if (options.generator == ReplyGenerator::llm || !options.llm_path.empty() || !options.llm_lora.empty())
      fail<ConfigError>("responder: the LLM generator runs on the cpu only (device {})", engine.options().device.str());
    llm_path.reset();  // automatic on a device: ECR's generator
  }
  if (!options.llm_lora.empty() && !llm_path)
    fail<ConfigError>("responder: LoRA adapter '{}' given, but there is no LLM to apply it to (--llm FILE.gguf)",
                      options.llm_lora.front().path.string());
  if (llm_path) {
    lm::check_generate_options(options.llm_generation);
    llm = load_llm(*llm_path, options.chat_template, options.llm_lora, e.impl().pool);
  }
}

// docs/math.md section 7, as UniCRS's conv model runs it: the conv prompt over the RoBERTa context and the
// context entities (the rec prompt's inputs), then greedy decoding after context + "System:".
std::vector<std::int32_t> Responder::Impl::write_template(const Dialog& view, Response& r) const {
  r.template_input_ids = encode_context(context_tokenizer, view, kContextEos);
  keep_newest(r.template_input_ids, options.context_tokens - system_cue.size());
  r.template_input_ids.insert(r.template_input_ids.end(), system_cue.begin(), system_cue.end());

  r.conv_prompt_ids = encode_context(prompt_tokenizer, view, kPromptSep);
  keep_newest(r.conv_prompt_ids, options.prompt_tokens - 1);
  r.conv_prompt_ids.insert(r.conv_prompt_ids.begin(), prompt_cls);
  for (const ContextEntity& e : context_entities(view, options.max_entities))
    r.conv_entities.push_back(static_cast<std::int32_t>(e.id));

  lm::GenerateOptions decoding;
  decoding.max_new_tokens = options.template_max_new_tokens;
  decoding.no_repeat_ngram_size = options.template_no_repeat_ngram;
  decoding.stop_tokens = {context_eos};
#ifdef ECR_WITH_CUDA
  if (on_device)
    r.template_ids = write_template_on_device(engine.impl(), r.conv_prompt_ids, r.conv_entities, r.template_input_ids,
                                              decoding)
                         .tokens;
#endif
  if (!on_device) {
    const Tensor prefix = conv_prompt->conv_prompt(text_encoder->encode(r.conv_prompt_ids), r.conv_entities);
    r.template_ids = lm::generate(*backbone, r.template_input_ids, decoding, prefix).tokens;
  }

  // UniCRS decodes the cue with the new tokens; the template is what follows the last "System: ".
  std::vector<std::int32_t> written = system_cue;
  written.insert(written.end(), r.template_ids.begin(), r.template_ids.end());
  return written;
}

Response Responder::Impl::respond(const Dialog& dialog, const Recommendation& recommendation,
                                  const ReplyStream& stream) const {
  if (dialog.turns.empty()) fail<InputError>("respond: the dialog has no turns");
  if (recommendation.items.empty()) fail<InputError>("respond: the recommendation has no items");
  const Dialog view = model_view(dialog, recommendation);
  view.validate(kg);
  Response r;
  r.user_emotions = recommendation.user_emotions;

  // The items the reply names, as the prompt names them.
  std::vector<responder::PromptItem> items;
  std::vector<std::string> names;
  std::set<std::int64_t> taken;
  for (const RecommendedItem& item : recommendation.items) {
    if (r.items.size() == options.items_in_reply) break;
    if (!taken.insert(item.id).second) continue;
    responder::PromptItem p;
    if (kg.contains(item.id) && item.id != kg.pad_entity() && !kg.entity_name(item.id).empty()) {
      p.kg_id = item.id;
      p.name = kg.entity_name(item.id);
    } else if (!item.name.empty()) {
      p.name = item.name;
    } else {
      fail<InputError>("respond: item {} is not a KG entity and has no name", item.id);
    }
    names.push_back(p.name);
    items.push_back(std::move(p));
    r.items.push_back(item);
  }

  if (llm) {
    respond_with_llm(view, items, r, stream);
    return r;
  }

  // Section 7: the template, then its slots filled.
  r.template_text = responder::template_from_decoded(context_tokenizer.decode(write_template(view, r)));
  r.first_sentence = responder::fill_template(r.template_text, names);

  // Section 8: knowledge, prompt text, generator.
  std::optional<std::mt19937_64> rng;
  if (options.knowledge_seed) rng.emplace(*options.knowledge_seed);
  if (reviews)
    r.review_entities = responder::choose_review_entities(*reviews, items, options.review_entities, rng ? &*rng : nullptr);
  r.knowledge = responder::choose_knowledge(kg, items, relations, options.knowledge_triples, rng ? &*rng : nullptr);
  r.prompt_text = responder::generator_prompt_text(names, r.review_entities, r.knowledge, r.first_sentence);
  r.prompt_ids = responder::generator_prompt_ids(generator_tokenizer, r.prompt_text, options.prompt_max_tokens,
                                                 generator_eos);

  lm::GenerateOptions decoding = options.generation;
  if (decoding.stop_tokens.empty()) decoding.stop_tokens = {generator_eos};
  responder::ReplyTextStream streamer(generator_tokenizer, stream);
  decoding.on_token = [&streamer, host = options.generation.on_token](std::int32_t token) {
    const bool go_on = !host || host(token);
    return streamer.push(token) && go_on;
  };
  r.reply_ids = reply(r.prompt_ids, decoding).tokens;
  r.text = responder::clean_decoded(generator_tokenizer.decode(r.reply_ids));
  streamer.finish(r.text);
  return r;
}

void Responder::Impl::respond_with_llm(const Dialog& view, std::span<const responder::PromptItem> items, Response& r,
                                       const ReplyStream& stream) const {
  r.generator = ReplyGenerator::llm;
  std::optional<std::mt19937_64> rng;
  if (options.knowledge_seed) rng.emplace(*options.knowledge_seed);
  if (reviews)
    r.review_entities =
        responder::choose_review_entities(*reviews, items, options.llm_review_entities, rng ? &*rng : nullptr);
  r.knowledge = responder::choose_knowledge(kg, items, relations, options.llm_knowledge, rng ? &*rng : nullptr);

  responder::LlmPromptFacts facts;
  facts.emotions = emotion_words(r.user_emotions);
  for (const auto& item : items) facts.movies.push_back(item.name);
  facts.knowledge = r.knowledge;
  facts.review_entities = r.review_entities;
  const std::size_t first = view.turns.size() - std::min(view.turns.size(), options.llm_dialog_turns);
  for (std::size_t t = first; t < view.turns.size(); ++t)
    facts.turns.push_back({view.turns[t].role == Role::user ? "user" : "assistant", view.turns[t].text});
  const auto messages = responder::llm_prompt_messages(facts, llm->chat.family() != text::ChatTemplate::Family::mistral);
  const std::string opening = responder::llm_reply_opening(facts);
  r.prompt_text = llm->chat.render(messages, true) + opening;
  r.prompt_ids = text::encode_chat(*llm->tokenizer, llm->chat, messages, true);
  const std::vector<std::int32_t> opening_ids = llm->tokenizer->encode(opening);
  r.prompt_ids.insert(r.prompt_ids.end(), opening_ids.begin(), opening_ids.end());

  lm::GenerateOptions decoding = options.llm_generation;
  if (decoding.stop_tokens.empty()) decoding.stop_tokens = llm->end_of_turn;
  const auto ends_turn = [&decoding](std::int32_t token) {
    return std::find(decoding.stop_tokens.begin(), decoding.stop_tokens.end(), token) != decoding.stop_tokens.end();
  };
  // The opening is the reply's first words: streamed first, and decoded with the new tokens so
  // that the text joins them as the tokenizer does.
  responder::ReplyTextStream streamer(*llm->tokenizer, stream);
  for (std::int32_t token : opening_ids) streamer.push(token);
  decoding.on_token = [&, host = options.llm_generation.on_token](std::int32_t token) {
    const bool go_on = !host || host(token);
    return (ends_turn(token) || streamer.push(token)) && go_on;  // the end of turn is no text
  };
  r.reply_ids = lm::generate(llm->model, r.prompt_ids, decoding).tokens;
  std::vector<std::int32_t> said = opening_ids;
  said.insert(said.end(), r.reply_ids.begin(), r.reply_ids.end());
  if (!r.reply_ids.empty() && ends_turn(said.back())) said.pop_back();
  r.text = responder::clean_decoded(llm->tokenizer->decode(said));
  streamer.finish(r.text);
}

lm::Generation Responder::Impl::reply(std::span<const std::int32_t> prompt, const lm::GenerateOptions& decoding) const {
#ifdef ECR_WITH_CUDA
  if (on_device) return generate_reply_on_device(engine.impl(), prompt, decoding);
#endif
  return lm::generate(*generator, prompt, decoding);
}

Responder Responder::load(const std::filesystem::path& bundle, ResponderOptions options) {
  const Engine engine = Engine::load(bundle, options);  // before `options` moves on
  return load(engine, std::move(options));
}

Responder Responder::load(const Bundle& bundle, ResponderOptions options) {
  const Engine engine = Engine::load(bundle, options);  // before `options` moves on
  return load(engine, std::move(options));
}

Responder Responder::load(const Engine& engine, ResponderOptions options) {
  options = view_options(engine, std::move(options), "responder");
  const Engine::Impl& e = engine.impl();
  if (!e.on_device())  // as Recommender::load does
    e.load_together({[&] { e.backbone_tokenizer(); }, [&] { e.text_encoder_tokenizer(); },
                     [&] { e.generator_tokenizer(); }, [&] { e.reviews(); }, [&] { e.backbone(); },
                     [&] { e.generator(); }, [&] { e.text_encoder(); }, [&] { e.conv_prompt(); }});
  Responder r;
  r.impl_ = std::make_shared<const Impl>(engine, std::move(options));
  return r;
}

Response Responder::respond(const Dialog& dialog, const Recommendation& recommendation,
                            const ReplyStream& stream) const {
  return impl_->respond(dialog, recommendation, stream);
}

Dialog Responder::recent_turns(const Recommender& recommender, const Responder& responder, const Dialog& dialog) {
  const Impl& s = *responder.impl_;
  const RecommenderOptions& r = recommender.options();
  const ContextBudget contexts[] = {
      {&s.context_tokenizer, kContextEos, std::max(r.context_tokens, s.options.context_tokens)},
      {&s.prompt_tokenizer, kPromptSep, std::max(r.prompt_tokens, s.options.prompt_tokens)}};
  return ecr::recent_turns(dialog, contexts, std::max(r.max_entities, s.options.max_entities));
}

const ResponderOptions& Responder::options() const { return impl_->options; }
const Engine& Responder::engine() const { return impl_->engine; }
const KnowledgeGraph& Responder::graph() const { return impl_->kg; }
bool Responder::has_review_entities() const { return impl_->reviews.has_value(); }
ReplyGenerator Responder::generator() const { return impl_->llm ? ReplyGenerator::llm : ReplyGenerator::gpt2; }

std::vector<std::string> Responder::knowledge_relations() const {
  std::vector<std::string> names;
  for (const auto& r : impl_->relations) names.push_back(r.name);
  return names;
}

}  // namespace ecr
