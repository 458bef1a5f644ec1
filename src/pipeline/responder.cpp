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

  // One reply being written. respond() takes each Draft through the same steps as
  // respond_batch() takes several; only the decoding calls differ (lm::generate for one,
  // lm::generate_batch for several). Drafts stay where they are made: their decoding's on_token
  // holds the address of their streamer.
  struct Draft {
    Dialog view;
    Response r;
    std::vector<responder::PromptItem> items;
    std::vector<std::string> names;
    std::vector<std::int32_t> opening_ids;  // the LLM's reply opening (docs/llm-replies.md)
    std::optional<responder::ReplyTextStream> streamer;
    lm::GenerateOptions decoding;  // the reply's
    Tensor template_prefix;         // gpt2: the conv prompt before the template's context
    lm::GenerateOptions template_decoding;
  };
  // The checks, the model view and the items the reply names.
  void start(Draft& d, const Dialog& dialog, const Recommendation& recommendation) const;
  // gpt2, section 7: the template's inputs (CPU engines); then, with the decoded template, its
  // slots filled and section 8's prompt and decoding.
  void template_inputs(Draft& d) const;
  void take_template(Draft& d, std::vector<std::int32_t> template_ids) const;
  // llm: retrieval, prompt, chat template and decoding (docs/llm-replies.md).
  void llm_inputs(Draft& d) const;
  // The reply's tokens are in: its text, the rest of the stream.
  void finish(Draft& d, lm::Generation reply) const;

  Response respond(const Dialog& dialog, const Recommendation& recommendation, const ReplyStream& stream) const;
  std::vector<Response> respond_batch(std::span<const Dialog> dialogs, std::span<const Recommendation> recommendations,
                                      std::span<const ReplyStream> streams) const;
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
    // The device's GPT-2 decoder has no min_new_tokens: refused, not ignored.
    if (options.generation.min_new_tokens > 0)
      fail<ConfigError>("responder: min_new_tokens {} runs on the cpu only (device {})",
                        options.generation.min_new_tokens, engine.options().device.str());
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

void Responder::Impl::start(Draft& d, const Dialog& dialog, const Recommendation& recommendation) const {
  if (dialog.turns.empty()) fail<InputError>("respond: the dialog has no turns");
  if (recommendation.items.empty()) fail<InputError>("respond: the recommendation has no items");
  d.view = model_view(dialog, recommendation);
  d.view.validate(kg);
  d.r.user_emotions = recommendation.user_emotions;

  // The items the reply names, as the prompt names them.
  std::set<std::int64_t> taken;
  for (const RecommendedItem& item : recommendation.items) {
    if (d.r.items.size() == options.items_in_reply) break;
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
    d.names.push_back(p.name);
    d.items.push_back(std::move(p));
    d.r.items.push_back(item);
  }
}

// docs/math.md section 7, as UniCRS's conv model runs it: the conv prompt over the RoBERTa context and the
// context entities (the rec prompt's inputs), then greedy decoding after context + "System:".
void Responder::Impl::template_inputs(Draft& d) const {
  Response& r = d.r;
  r.template_input_ids = encode_context(context_tokenizer, d.view, kContextEos);
  keep_newest(r.template_input_ids, options.context_tokens - system_cue.size());
  r.template_input_ids.insert(r.template_input_ids.end(), system_cue.begin(), system_cue.end());

  r.conv_prompt_ids = encode_context(prompt_tokenizer, d.view, kPromptSep);
  keep_newest(r.conv_prompt_ids, options.prompt_tokens - 1);
  r.conv_prompt_ids.insert(r.conv_prompt_ids.begin(), prompt_cls);
  for (const ContextEntity& e : context_entities(d.view, options.max_entities))
    r.conv_entities.push_back(static_cast<std::int32_t>(e.id));

  d.template_decoding.max_new_tokens = options.template_max_new_tokens;
  d.template_decoding.no_repeat_ngram_size = options.template_no_repeat_ngram;
  d.template_decoding.stop_tokens = {context_eos};
  if (!on_device)
    d.template_prefix = conv_prompt->conv_prompt(text_encoder->encode(r.conv_prompt_ids), r.conv_entities);
}

void Responder::Impl::take_template(Draft& d, std::vector<std::int32_t> template_ids) const {
  Response& r = d.r;
  r.template_ids = std::move(template_ids);
  // UniCRS decodes the cue with the new tokens; the template is what follows the last "System: ".
  std::vector<std::int32_t> written = system_cue;
  written.insert(written.end(), r.template_ids.begin(), r.template_ids.end());
  r.template_text = responder::template_from_decoded(context_tokenizer.decode(written));
  r.first_sentence = responder::fill_template(r.template_text, d.names);

  // Section 8: knowledge, prompt text, generator.
  std::optional<std::mt19937_64> rng;
  if (options.knowledge_seed) rng.emplace(*options.knowledge_seed);
  if (reviews)
    r.review_entities =
        responder::choose_review_entities(*reviews, d.items, options.review_entities, rng ? &*rng : nullptr);
  r.knowledge = responder::choose_knowledge(kg, d.items, relations, options.knowledge_triples, rng ? &*rng : nullptr);
  r.prompt_text = responder::generator_prompt_text(d.names, r.review_entities, r.knowledge, r.first_sentence);
  r.prompt_ids = responder::generator_prompt_ids(generator_tokenizer, r.prompt_text, options.prompt_max_tokens,
                                                 generator_eos);

  d.decoding = options.generation;
  if (d.decoding.stop_tokens.empty()) d.decoding.stop_tokens = {generator_eos};
  d.decoding.on_token = [&streamer = *d.streamer, host = options.generation.on_token](std::int32_t token) {
    const bool go_on = !host || host(token);
    return streamer.push(token) && go_on;
  };
}

void Responder::Impl::llm_inputs(Draft& d) const {
  Response& r = d.r;
  r.generator = ReplyGenerator::llm;
  std::optional<std::mt19937_64> rng;
  if (options.knowledge_seed) rng.emplace(*options.knowledge_seed);
  if (reviews)
    r.review_entities =
        responder::choose_review_entities(*reviews, d.items, options.llm_review_entities, rng ? &*rng : nullptr);
  r.knowledge = responder::choose_knowledge(kg, d.items, relations, options.llm_knowledge, rng ? &*rng : nullptr);

  responder::LlmPromptFacts facts;
  facts.emotions = emotion_words(r.user_emotions);
  for (const auto& item : d.items) facts.movies.push_back(item.name);
  facts.knowledge = r.knowledge;
  facts.review_entities = r.review_entities;
  const std::size_t first = d.view.turns.size() - std::min(d.view.turns.size(), options.llm_dialog_turns);
  for (std::size_t t = first; t < d.view.turns.size(); ++t)
    facts.turns.push_back({d.view.turns[t].role == Role::user ? "user" : "assistant", d.view.turns[t].text});
  const auto messages = responder::llm_prompt_messages(facts, llm->chat.family() != text::ChatTemplate::Family::mistral);
  const std::string opening = responder::llm_reply_opening(facts);
  r.prompt_text = llm->chat.render(messages, true) + opening;
  r.prompt_ids = text::encode_chat(*llm->tokenizer, llm->chat, messages, true);
  d.opening_ids = llm->tokenizer->encode(opening);
  r.prompt_ids.insert(r.prompt_ids.end(), d.opening_ids.begin(), d.opening_ids.end());

  d.decoding = options.llm_generation;
  if (d.decoding.stop_tokens.empty()) d.decoding.stop_tokens = llm->end_of_turn;
  // The opening is the reply's first words: streamed first, and decoded with the new tokens so
  // that the text joins them as the tokenizer does.
  for (std::int32_t token : d.opening_ids) d.streamer->push(token);
  // Past half the token budget (and min_new_tokens) the reply ends with the sentence it is
  // writing: bounded, yet ending a sentence; decided while decoding, so that the stream and the
  // text stay the same (docs/llm-replies.md). The lambda owns that count and tail: it runs later,
  // alone or in a batch.
  const std::int64_t wrap_up = std::max(d.decoding.min_new_tokens, d.decoding.max_new_tokens / 2);
  d.decoding.on_token = [&streamer = *d.streamer, &tokenizer = *llm->tokenizer, stop = d.decoding.stop_tokens,
                         host = options.llm_generation.on_token, wrap_up, chosen = std::int64_t{0},
                         tail = std::string()](std::int32_t token) mutable {
    const bool go_on = !host || host(token);
    if (std::find(stop.begin(), stop.end(), token) != stop.end()) return go_on;  // the end of turn is no text
    const bool sink_on = streamer.push(token);
    tail += tokenizer.decode(std::vector<std::int32_t>{token});  // the reply's last decoded characters
    if (tail.size() > 16) tail.erase(0, tail.size() - 16);
    return sink_on && go_on && !(++chosen >= wrap_up && responder::ends_sentence(tail));
  };
}

void Responder::Impl::finish(Draft& d, lm::Generation reply) const {
  Response& r = d.r;
  r.reply_ids = std::move(reply.tokens);
  r.reply_stop = reply.reason;
  if (llm) {
    std::vector<std::int32_t> said = d.opening_ids;
    said.insert(said.end(), r.reply_ids.begin(), r.reply_ids.end());
    const auto& stop = d.decoding.stop_tokens;
    if (!r.reply_ids.empty() && std::find(stop.begin(), stop.end(), said.back()) != stop.end()) said.pop_back();
    r.text = responder::clean_decoded(llm->tokenizer->decode(said));
  } else {
    r.text = responder::clean_decoded(generator_tokenizer.decode(r.reply_ids));
  }
  d.streamer->finish(r.text);
}

Response Responder::Impl::respond(const Dialog& dialog, const Recommendation& recommendation,
                                  const ReplyStream& stream) const {
  Draft d;
  start(d, dialog, recommendation);
  d.streamer.emplace(llm ? *llm->tokenizer : generator_tokenizer, stream);
  if (llm) {
    llm_inputs(d);
    finish(d, lm::generate(llm->model, d.r.prompt_ids, d.decoding));
    return std::move(d.r);
  }
  template_inputs(d);
  std::vector<std::int32_t> template_ids;
#ifdef ECR_WITH_CUDA
  if (on_device)
    template_ids = write_template_on_device(engine.impl(), d.r.conv_prompt_ids, d.r.conv_entities,
                                            d.r.template_input_ids, d.template_decoding)
                       .tokens;
#endif
  if (!on_device)
    template_ids = lm::generate(*backbone, d.r.template_input_ids, d.template_decoding, d.template_prefix).tokens;
  take_template(d, std::move(template_ids));
  finish(d, reply(d.r.prompt_ids, d.decoding));
  return std::move(d.r);
}

std::vector<Response> Responder::Impl::respond_batch(std::span<const Dialog> dialogs,
                                                     std::span<const Recommendation> recommendations,
                                                     std::span<const ReplyStream> streams) const {
  if (recommendations.size() != dialogs.size() || (!streams.empty() && streams.size() != dialogs.size()))
    fail<InputError>("respond_batch: {} dialogs, {} recommendations and {} streams (one each, or no streams)",
                     dialogs.size(), recommendations.size(), streams.size());
  const auto stream = [&](std::size_t i) { return streams.empty() ? ReplyStream() : streams[i]; };
  std::vector<Response> out;
  // The device decoders take one sequence at a time.
  if (on_device || dialogs.size() == 1) {
    for (std::size_t i = 0; i < dialogs.size(); ++i) out.push_back(respond(dialogs[i], recommendations[i], stream(i)));
    return out;
  }
  std::vector<Draft> drafts(dialogs.size());  // never resized: the decodings point into it
  for (std::size_t i = 0; i < drafts.size(); ++i) {
    start(drafts[i], dialogs[i], recommendations[i]);
    drafts[i].streamer.emplace(llm ? *llm->tokenizer : generator_tokenizer, stream(i));
  }
  std::vector<lm::GenerateRequest> requests(drafts.size());
  if (!llm) {
    for (std::size_t i = 0; i < drafts.size(); ++i) {
      template_inputs(drafts[i]);
      requests[i] = {drafts[i].r.template_input_ids, drafts[i].template_prefix, drafts[i].template_decoding};
    }
    std::vector<lm::Generation> templates = lm::generate_batch(*backbone, requests);
    for (std::size_t i = 0; i < drafts.size(); ++i) take_template(drafts[i], std::move(templates[i].tokens));
  } else {
    for (Draft& d : drafts) llm_inputs(d);
  }
  for (std::size_t i = 0; i < drafts.size(); ++i) requests[i] = {drafts[i].r.prompt_ids, Tensor(), drafts[i].decoding};
  std::vector<lm::Generation> replies =
      llm ? lm::generate_batch(llm->model, requests) : lm::generate_batch(*generator, requests);
  for (std::size_t i = 0; i < drafts.size(); ++i) {
    finish(drafts[i], std::move(replies[i]));
    out.push_back(std::move(drafts[i].r));
  }
  return out;
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

std::vector<Response> Responder::respond_batch(std::span<const Dialog> dialogs,
                                               std::span<const Recommendation> recommendations,
                                               std::span<const ReplyStream> streams) const {
  return impl_->respond_batch(dialogs, recommendations, streams);
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
