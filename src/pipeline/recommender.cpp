// The Recommender composes the engine's parts into ECR's recommendation (docs/math.md section 2, 4, 5, 6).
// A batch goes through each stage together: one classifier batch over every user turn that
// needs emotions, one RoBERTa batch, the prompts, one GPT-2 batch and one GEMM for the scores.
#include "ecr/recommender.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <set>
#include <string_view>
#include <utility>

#include <Eigen/Core>
#include <fmt/format.h>

#include "ecr/core/error.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/kg/cooccurrence.hpp"
#include "ecr/models/entity_encoder.hpp"
#include "ecr/models/gpt2.hpp"
#include "ecr/models/prompt_encoder.hpp"
#include "ecr/models/roberta.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/text/tokenizer.hpp"
#include "components.hpp"
#include "engine_impl.hpp"
#include "recommend_stages.hpp"
#ifdef ECR_WITH_CUDA
#include "engine_cuda.hpp"
#endif

namespace ecr {

using namespace pipeline;

namespace {

// Ranking order: higher score first, then the lower id, so ties are deterministic.
bool ranks_before(const RecommendedItem& a, const RecommendedItem& b) {
  return a.score != b.score ? a.score > b.score : a.id < b.id;
}

// How strong a reason is, 0 strongest: the user's own person or genre, then a shared director,
// star, writer or other relation, the co-occurrence, a shared genre last.
int reason_rank(const Reason& r) {
  if (r.kind == Reason::Kind::has) return 0;
  if (r.kind == Reason::Kind::cooccurrence) return 5;
  if (r.relation == "director") return 1;
  if (r.relation == "star") return 2;
  if (r.relation == "writer") return 3;
  return r.relation == "genre" ? 6 : 4;
}

// An entity the user liked or mentioned, which reasons point back to.
struct Source {
  std::int64_t id = 0;
  bool liked = false;
};

bool starts_with_vowel(std::string_view word) {
  return !word.empty() && std::string_view("aeiouAEIOU").find(word.front()) != std::string_view::npos;
}

float checked_strength(float beta, std::string_view where) {
  if (!std::isfinite(beta) || beta < 0) fail<InputError>("{}: feedback_strength must be finite and >= 0, got {}", where, beta);
  return beta;
}

}  // namespace

// A view of the engine's parts with this recommender's options; the checks that tie the parts
// together (widths, limits) run once here. On a CUDA engine the CPU models stay unloaded (null)
// and the model stages run on their device twins (engine_cuda.hpp); the host stages around them
// are shared.
struct Recommender::Impl {
  Engine engine;
  RecommenderOptions options;
  std::shared_ptr<ThreadPool> pool;
  const KnowledgeGraph& kg;
  const Tokenizer& context_tokenizer;
  const Tokenizer& prompt_tokenizer;
  const std::optional<EmotionClassifier>& classifier;
  std::optional<EntityLinker> own_linker;  // when options.linker are not the defaults
  const EntityLinker& linker;
  std::int32_t prompt_cls = 0;
  bool global_entities = false;  // asked for and the bundle has the co-occurrence matrix
  bool on_device = false;
  // The CPU models; null on a CUDA engine.
  const Gpt2Model* backbone = nullptr;
  const RobertaModel* text_encoder = nullptr;
  const PromptEncoder* rec_prompt = nullptr;
  const Gpt2Model* classifier_model = nullptr;
  // For the feedback rule and the reasons, built at load: E on the host (f32), the mean of its
  // item rows, each row's dot product with that mean and its norm once centred, and the
  // co-occurrence matrix when the bundle has one.
  Tensor entity_table;
  Eigen::VectorXf item_mean;
  std::vector<float> mean_dots, centred_norms;
  std::optional<CooccurrenceMatrix> cooccurrence;

  Impl(const Engine& e, RecommenderOptions o);

  // One request through the whole pipeline; `dialogs` and the result line up.
  std::vector<Recommendation> run(std::span<const Dialog> dialogs, const RecommendRequest& request) const;

 private:
  // The stages of run(), in order.
  void analyse_turns(std::span<const Dialog> dialogs, std::vector<Dialog>& prepared,
                     std::vector<Recommendation>& out) const;
  void label_emotions(std::vector<Dialog>& prepared, std::vector<Recommendation>& out) const;
  std::vector<RecModelInput> model_inputs(const std::vector<Dialog>& prepared, const RecommendRequest& request,
                                          std::vector<Recommendation>& out) const;
  std::vector<RecModelOutput> run_models(std::span<const RecModelInput> inputs, const RecommendRequest& request,
                                         bool scores) const;
  void listen(const RecModelInput& input, const Recommendation& r, float beta, std::size_t top_k,
              RecModelOutput& model) const;
  void assemble(const RecModelOutput& model, const RecommendRequest& request, Recommendation& r) const;
  std::vector<Reason> reasons(std::int64_t item, std::span<const Source> sources) const;
};

Recommender::Impl::Impl(const Engine& e, RecommenderOptions o)
    : engine(e),
      options(std::move(o)),
      pool(e.impl().pool),
      kg(e.graph()),
      context_tokenizer(e.impl().backbone_tokenizer()),
      prompt_tokenizer(e.impl().text_encoder_tokenizer()),
      classifier(e.impl().emotion_classifier()),
      own_linker(options.linker == LinkerOptions{} ? std::nullopt : std::optional(EntityLinker(kg, options.linker))),
      linker(own_linker ? *own_linker : e.impl().linker()),
      global_entities(options.global_entities && e.impl().has_global_entities()),
      on_device(e.impl().on_device()) {
  const ComponentNames& names = engine.options().components;
  if (options.context_tokens == 0 || options.prompt_tokens < 2)
    fail<ConfigError>("recommender: context_tokens must be >= 1 and prompt_tokens >= 2 (found {} and {})",
                      options.context_tokens, options.prompt_tokens);

  // The models load here, on the engine's device, so a bad part fails the load, not a request.
  const Gpt2Config* g = nullptr;
  const RobertaConfig* t = nullptr;
  const PromptConfig* p = nullptr;
  if (on_device) {
#ifdef ECR_WITH_CUDA
    const DeviceModels& device = e.impl().device();
    g = &device.backbone().config();
    t = &device.text_encoder().config();
    p = &device.rec_prompt().prompt.config();
    if (classifier) device.classifier();
#endif
  } else {
    backbone = &e.impl().backbone();
    text_encoder = &e.impl().text_encoder();
    rec_prompt = &e.impl().rec_prompt();
    if (classifier) classifier_model = &e.impl().classifier_model();
    g = &backbone->config();
    t = &text_encoder->config();
    p = &rec_prompt->config();
  }
  if (!g) fail<DeviceError>("recommender: this build of ecr cannot run on {}", engine.options().device.str());

  special_token(context_tokenizer, kContextEos, names.backbone);
  special_token(prompt_tokenizer, kPromptSep, names.text_encoder);
  prompt_cls = special_token(prompt_tokenizer, kPromptCls, names.text_encoder);
  if (options.context_tokens > static_cast<std::size_t>(g->n_positions))
    fail<ConfigError>("recommender: context_tokens {} exceeds component '{}''s {} positions", options.context_tokens,
                      names.backbone, g->n_positions);
  if (options.prompt_tokens > static_cast<std::size_t>(t->max_tokens()))
    fail<ConfigError>("recommender: prompt_tokens {} exceeds component '{}''s {} tokens", options.prompt_tokens,
                      names.text_encoder, t->max_tokens());

  check_prompt_fits(*p, PromptKind::rec, names.rec_prompt, *g, *t, names);
  if (p->n_emotion != static_cast<std::int64_t>(kEmotionLabels.size()))
    fail<ConfigError>("component '{}' has {} emotion labels, ECR has {}", names.rec_prompt, p->n_emotion,
                      kEmotionLabels.size());
  if (!std::isfinite(options.feedback_strength) || options.feedback_strength < 0)
    fail<ConfigError>("recommender: feedback_strength must be finite and >= 0, got {}", options.feedback_strength);

#ifdef ECR_WITH_CUDA
  if (on_device) entity_table = entity_table_on_host(e.impl());
#endif
  if (rec_prompt) entity_table = rec_prompt->entity_table().dtype() == DType::f32 ? rec_prompt->entity_table()
                                                                                  : rec_prompt->entity_table().to_f32();
  // Centred on the items' mean: the direction every row shares would make every item a
  // neighbour of every movie.
  const auto rows = entity_table.matrix<float>();
  item_mean = Eigen::VectorXf::Zero(rows.cols());
  for (std::int32_t id : kg.items()) item_mean += rows.row(id).transpose();
  item_mean /= static_cast<float>(std::max<std::size_t>(kg.items().size(), 1));
  mean_dots.resize(static_cast<std::size_t>(rows.rows()));
  centred_norms.resize(static_cast<std::size_t>(rows.rows()));
  for (Eigen::Index i = 0; i < rows.rows(); ++i) {
    mean_dots[static_cast<std::size_t>(i)] = rows.row(i).dot(item_mean);
    centred_norms[static_cast<std::size_t>(i)] = (rows.row(i) - item_mean.transpose()).norm();
  }
  cooccurrence = e.impl().cooccurrence();
}

// Turns, entities and host emotions: `prepared` gets, per turn, the prepared text, entity ids and
// emotions the models see.
void Recommender::Impl::analyse_turns(std::span<const Dialog> dialogs, std::vector<Dialog>& prepared,
                                      std::vector<Recommendation>& out) const {
  for (std::size_t b = 0; b < dialogs.size(); ++b) {
    const Dialog& input = dialogs[b];
    if (input.turns.empty()) fail<InputError>("dialog {}: it has no turns", b);
    input.validate(kg);  // before merging, so the error names the host's turn
    Dialog merged;
    merged.movie_mentions = input.movie_mentions;
    for (const Turn& turn : input.turns) merged.add_turn(turn);
    Dialog& model_view = prepared[b];
    for (std::size_t t = 0; t < merged.turns.size(); ++t) {
      const Turn& turn = merged.turns[t];
      const std::optional<EmotionProbs> emotions = options.emotions ? turn.emotions : std::nullopt;
      TurnAnalysis analysis{turn.role, turn.text, {}, emotions, false, {}};
      if (!turn.entities.empty())
        analysis.entities = linker.from_ids(turn.entities);
      else if (options.link_text)
        analysis.entities = linker.link(turn.text, &merged.movie_mentions);
      Turn seen{turn.role, redial_text(turn.text, merged.movie_mentions), {}, emotions};
      for (const auto& e : analysis.entities) seen.entities.push_back(e.id);
      model_view.turns.push_back(std::move(seen));
      out[b].turns.push_back(std::move(analysis));
    }
  }
}

// docs/math.md section 6: the classifier labels every user turn the host left unlabelled, in one batch.
void Recommender::Impl::label_emotions(std::vector<Dialog>& prepared, std::vector<Recommendation>& out) const {
  if (!classifier || !options.emotions) return;
  std::vector<std::pair<std::size_t, std::size_t>> where;
  std::vector<std::vector<std::int32_t>> inputs;
  std::int64_t positions = 0;
#ifdef ECR_WITH_CUDA
  if (on_device) positions = engine.impl().device().classifier().model.config().n_positions;
#endif
  if (classifier_model) positions = classifier_model->config().n_positions;
  for (std::size_t b = 0; b < prepared.size(); ++b)
    for (std::size_t t = 0; t < prepared[b].turns.size(); ++t) {
      const Turn& turn = prepared[b].turns[t];
      if (turn.role != Role::user || turn.emotions || turn.text.empty()) continue;
      // The template's own text may hold control tokens (<s>, </s>); the user's never does.
      auto ids = classifier->tokenizer->encode(classifier->before);
      for (const auto& part : {classifier->tokenizer->encode(turn.text, ControlText::as_text),
                               classifier->tokenizer->encode(classifier->after)})
        ids.insert(ids.end(), part.begin(), part.end());
      keep_newest(ids, static_cast<std::size_t>(positions));
      where.emplace_back(b, t);
      inputs.push_back(std::move(ids));
    }
  if (inputs.empty()) return;
  Tensor scores;
#ifdef ECR_WITH_CUDA
  if (on_device) scores = classify_on_device(engine.impl(), inputs);
#endif
  if (classifier_model) scores = classifier_model->classify(inputs);
  for (std::size_t k = 0; k < where.size(); ++k) {
    const float* s = scores.data<float>() + k * kEmotionLabels.size();
    EmotionProbs probs{};
    if (classifier->multi_label) {
      for (std::size_t l = 0; l < probs.size(); ++l) probs[l] = 1.0f / (1.0f + std::exp(-s[l]));
    } else {
      const float top = *std::max_element(s, s + probs.size());
      float sum = 0;
      for (std::size_t l = 0; l < probs.size(); ++l) sum += probs[l] = std::exp(s[l] - top);
      for (float& p : probs) p /= sum;
    }
    const auto [b, t] = where[k];
    prepared[b].turns[t].emotions = probs;
    out[b].turns[t].emotions = probs;
    out[b].turns[t].emotions_from_classifier = true;
  }
}

// docs/math.md section 2: the contexts and the entities with the emotions they carry.
std::vector<RecModelInput> Recommender::Impl::model_inputs(const std::vector<Dialog>& prepared,
                                                           const RecommendRequest& request,
                                                           std::vector<Recommendation>& out) const {
  std::vector<RecModelInput> inputs(prepared.size());
  for (std::size_t b = 0; b < prepared.size(); ++b) {
    Recommendation& r = out[b];
    RecModelInput& in = inputs[b];
    for (std::size_t t = 0; t < r.turns.size(); ++t) {
      if (r.turns[t].role != Role::user) continue;
      r.turns[t].selected = select_emotions(r.turns[t].emotions);
      r.user_emotions = r.turns[t].selected;
    }
    r.emotion_fusion = std::any_of(prepared[b].turns.begin(), prepared[b].turns.end(),
                                   [](const Turn& t) { return t.emotions.has_value(); });
    r.prompt_entities = context_entities(prepared[b], options.max_entities);

    r.context_ids = encode_context(context_tokenizer, prepared[b], kContextEos);
    if (r.context_ids.empty()) fail<InputError>("dialog {}: no turn has any text", b);
    keep_newest(r.context_ids, options.context_tokens);
    r.prompt_ids = encode_context(prompt_tokenizer, prepared[b], kPromptSep);
    keep_newest(r.prompt_ids, options.prompt_tokens - 1);
    r.prompt_ids.insert(r.prompt_ids.begin(), prompt_cls);
    in.context_ids = r.context_ids;
    in.prompt_ids = r.prompt_ids;

    for (const ContextEntity& e : r.prompt_entities) {
      in.entities.push_back(static_cast<std::int32_t>(e.id));
      if (!r.emotion_fusion) continue;
      in.emotion_ids.insert(in.emotion_ids.end(), e.emotions.ids.begin(), e.emotions.ids.end());
      in.emotion_probs.insert(in.emotion_probs.end(), e.emotions.probs.begin(), e.emotions.probs.end());
    }
    if (request.exclude_mentioned.value_or(options.exclude_mentioned))
      for (const Turn& turn : prepared[b].turns) in.excluded.insert(turn.entities.begin(), turn.entities.end());
  }
  return inputs;
}

// docs/math.md section 4-5 on the CPU: text encoder, rec prompts, the backbone with the prefixes, then
// z E^T over every entity and the items ranked by it. `scores`: keep every entity's scores.
std::vector<RecModelOutput> Recommender::Impl::run_models(std::span<const RecModelInput> inputs,
                                                          const RecommendRequest& request, bool scores) const {
#ifdef ECR_WITH_CUDA
  if (on_device) return recommend_on_device(engine.impl(), inputs, global_entities, request.top_k, scores);
#endif
  const std::size_t batch = inputs.size();
  std::vector<std::vector<std::int32_t>> prompt_ids, context_ids;
  for (const RecModelInput& in : inputs) {
    prompt_ids.push_back(in.prompt_ids);
    context_ids.push_back(in.context_ids);
  }
  const std::vector<Tensor> token_states = text_encoder->encode(prompt_ids);
  std::vector<Tensor> prefixes(batch);
  for (std::size_t b = 0; b < batch; ++b) {
    const RecModelInput& in = inputs[b];
    prefixes[b] =
        rec_prompt->rec_prompt({token_states[b], in.entities, in.emotion_ids, in.emotion_probs, global_entities});
  }

  // z is the backbone's last hidden state; scores z E^T over every entity.
  Gpt2State state = backbone->start(prefixes);
  const Gpt2Output hidden = backbone->forward(state, context_ids, Logits::none);
  const std::int64_t width = backbone->config().n_embd;
  Tensor z = Tensor::empty(DType::f32, {static_cast<std::int64_t>(batch), width}, "z");
  for (std::size_t b = 0; b < batch; ++b)
    nn::view(z).row(static_cast<std::int64_t>(b)) = nn::view(hidden.hidden).row(hidden.offsets[b + 1] - 1);
  const Tensor& table = rec_prompt->entity_table();
  Tensor all = Tensor::empty(DType::f32, {static_cast<std::int64_t>(batch), table.dim(0)}, "scores");
  nn::linear(nn::view(z), nn::Linear{table, {}}, nn::view(all), *pool);

  std::vector<RecModelOutput> out(batch);
  const auto items = kg.items();
  for (std::size_t b = 0; b < batch; ++b) {
    const float* s = all.data<float>() + static_cast<std::int64_t>(b) * table.dim(0);
    std::vector<RecommendedItem> ranked;
    ranked.reserve(items.size());
    for (std::int32_t id : items)
      if (!inputs[b].excluded.count(id)) ranked.push_back({id, {}, s[id], 0, {}});
    const std::size_t k = std::min(request.top_k, ranked.size());
    std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(k), ranked.end(), ranks_before);
    ranked.resize(k);
    out[b].items = std::move(ranked);
    if (scores) out[b].scores.assign(s, s + table.dim(0));
  }
  return out;
}

// The feedback rule (recommender.hpp): the items ranked again by s'(i) when the user liked or
// disliked something; the model's ranking stands otherwise.
void Recommender::Impl::listen(const RecModelInput& input, const Recommendation& r, float beta, std::size_t top_k,
                               RecModelOutput& model) const {
  std::map<std::int64_t, float> polarity;  // an entity's latest like or dislike counts
  for (const Feedback& f : r.feedback)
    if (f.polarity != Polarity::seen) polarity[f.id] = static_cast<float>(f.polarity);
  if (polarity.empty() || beta == 0) return;

  const auto items = kg.items();
  const float* s = model.scores.data();
  double sum = 0, squares = 0;
  for (std::int32_t id : items) sum += s[id];
  const double mean = sum / static_cast<double>(items.size());
  for (std::int32_t id : items) squares += (s[id] - mean) * (s[id] - mean);
  const auto spread = static_cast<float>(std::sqrt(squares / static_cast<double>(items.size())));

  const auto table = entity_table.matrix<float>();
  const float mean_square = item_mean.squaredNorm();
  std::vector<RecommendedItem> ranked;
  ranked.reserve(items.size());
  for (std::int32_t id : items) {
    if (input.excluded.count(id)) continue;
    float moved = 0;
    for (const auto& [f, sign] : polarity) {
      const auto i = static_cast<std::size_t>(id), j = static_cast<std::size_t>(f);
      const float norms = centred_norms[i] * centred_norms[j];
      if (norms == 0) continue;
      // (E_i - m) . (E_f - m), from the dot products kept at load.
      const float cos = (table.row(id).dot(table.row(f)) - mean_dots[i] - mean_dots[j] + mean_square) / norms;
      if (cos > 0) moved += sign * cos * cos;
    }
    moved *= beta * spread;
    ranked.push_back({id, {}, s[id] + moved, moved, {}});
  }
  const std::size_t k = std::min(top_k, ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(k), ranked.end(), ranks_before);
  ranked.resize(k);
  model.items = std::move(ranked);
}

// The reasons for one item (recommender.hpp), the strongest first.
std::vector<Reason> Recommender::Impl::reasons(std::int64_t item, std::span<const Source> sources) const {
  std::vector<Reason> out;
  for (const Source& source : sources) {
    if (source.id == item) continue;
    const std::string source_name(kg.entity_name(source.id));
    const bool movie = kg.entity_type(source.id) == EntityType::movie;
    for (std::int64_t rel = 0; rel < kg.num_relations(); ++rel) {
      const auto linked = kg.neighbours(item, rel);
      if (!movie) {
        if (std::binary_search(linked.begin(), linked.end(), static_cast<std::int32_t>(source.id)))
          out.push_back({Reason::Kind::has, source.id, source_name, source.liked, kg.relation_name(rel), source.id,
                         source_name, 0});
        continue;
      }
      const auto theirs = kg.neighbours(source.id, rel);
      std::vector<std::int32_t> shared;
      std::set_intersection(linked.begin(), linked.end(), theirs.begin(), theirs.end(), std::back_inserter(shared));
      for (std::int32_t via : shared)
        if (via != kg.pad_entity())
          out.push_back({Reason::Kind::shares, source.id, source_name, source.liked, kg.relation_name(rel), via,
                         std::string(kg.entity_name(via)), 0});
    }
    if (movie && cooccurrence)
      if (const float w = cooccurrence->at(source.id, item); w > 0)
        out.push_back({Reason::Kind::cooccurrence, source.id, source_name, source.liked, {}, 0, {}, w});
  }
  std::stable_sort(out.begin(), out.end(), [](const Reason& a, const Reason& b) {
    if (reason_rank(a) != reason_rank(b)) return reason_rank(a) < reason_rank(b);
    if (a.source_liked != b.source_liked) return a.source_liked;
    return a.weight > b.weight;
  });
  // One reason per shared entity (and per co-occurring movie): the first, strongest one.
  std::vector<Reason> kept;
  for (Reason& r : out) {
    const bool repeat = std::any_of(kept.begin(), kept.end(), [&](const Reason& k) {
      return k.kind == Reason::Kind::cooccurrence ? r.kind == k.kind && r.source == k.source
                                                  : r.kind != Reason::Kind::cooccurrence && r.via == k.via;
    });
    if (!repeat) kept.push_back(std::move(r));
    if (kept.size() == kMaxReasons) break;
  }
  return kept;
}

// The items named with their reasons, the context entities ranked by their scores, and every
// score when asked for.
void Recommender::Impl::assemble(const RecModelOutput& model, const RecommendRequest& request,
                                 Recommendation& r) const {
  // The sources of reasons: what the user mentioned, unless disliked or said in a negative
  // mood, and the system's movies the user said they liked.
  const std::int32_t negative = *emotion_id("negative");
  auto read_as = [&](std::int64_t id, Polarity p) {
    return std::any_of(r.feedback.begin(), r.feedback.end(),
                       [&](const Feedback& f) { return f.id == id && f.polarity == p; });
  };
  std::vector<Source> sources;
  auto add = [&](std::int64_t id) {
    if (read_as(id, Polarity::disliked) || id == kg.pad_entity()) return;
    if (std::none_of(sources.begin(), sources.end(), [&](const Source& s) { return s.id == id; }))
      sources.push_back({id, read_as(id, Polarity::liked)});
  };
  for (const TurnAnalysis& turn : r.turns)
    if (turn.role == Role::user && turn.selected.ids[0] != negative)
      for (const LinkedEntity& e : turn.entities) add(e.id);
  for (const Feedback& f : r.feedback)
    if (f.polarity == Polarity::liked) add(f.id);

  r.items = model.items;
  for (auto& item : r.items) {
    item.name = kg.entity_name(item.id);
    item.reasons = reasons(item.id, sources);
  }
  std::set<std::int64_t> seen;
  for (const ContextEntity& e : r.prompt_entities)
    if (seen.insert(e.id).second)
      r.context_entities.push_back(
          {e.id, std::string(kg.entity_name(e.id)), model.scores[static_cast<std::size_t>(e.id)], 0, {}});
  std::sort(r.context_entities.begin(), r.context_entities.end(), ranks_before);
  if (request.all_scores) r.all_scores.emplace(model.scores);
}

std::vector<Recommendation> Recommender::Impl::run(std::span<const Dialog> dialogs,
                                                   const RecommendRequest& request) const {
  if (request.top_k == 0) fail<InputError>("recommend: top_k must be at least 1");
  const std::size_t batch = dialogs.size();
  std::vector<Recommendation> out(batch);
  std::vector<Dialog> prepared(batch);
  analyse_turns(dialogs, prepared, out);
  label_emotions(prepared, out);
  const std::vector<RecModelInput> inputs = model_inputs(prepared, request, out);
  for (std::size_t b = 0; b < batch; ++b) out[b].feedback = read_feedback(prepared[b], kg);
  const float beta = checked_strength(request.feedback_strength.value_or(options.feedback_strength), "recommend");
  // Every entity's scores are needed for the context entities, the feedback rule and all_scores.
  const bool scores = request.all_scores || std::any_of(out.begin(), out.end(), [&](const Recommendation& r) {
                        return !r.prompt_entities.empty() || (beta > 0 && !r.feedback.empty());
                      });
  std::vector<RecModelOutput> models = run_models(inputs, request, scores);
  for (std::size_t b = 0; b < batch; ++b) {
    listen(inputs[b], out[b], beta, request.top_k, models[b]);
    assemble(models[b], request, out[b]);
  }
  return out;
}

std::string_view reason_kind_name(Reason::Kind kind) {
  switch (kind) {
    case Reason::Kind::has: return "has";
    case Reason::Kind::shares: return "shares";
    case Reason::Kind::cooccurrence: break;
  }
  return "cooccurrence";
}

namespace {

// What a KG link says about the item: "stars Tom Hanks", "is directed by Nora Ephron", "is a drama".
std::string link_phrase(const std::string& relation, const std::string& via_name) {
  if (relation == "star") return fmt::format("stars {}", via_name);
  if (relation == "director") return fmt::format("is directed by {}", via_name);
  if (relation == "writer") return fmt::format("is written by {}", via_name);
  if (relation == "genre") return fmt::format("is {} {}", starts_with_vowel(via_name) ? "an" : "a", via_name);
  return fmt::format("has {} {}", relation, via_name);
}

std::string joined(const std::vector<std::string>& parts, std::string_view last) {
  std::string out;
  for (std::size_t k = 0; k < parts.size(); ++k)
    out.append(k == 0 ? "" : k + 1 == parts.size() ? last : ", ").append(parts[k]);
  return out;
}

}  // namespace

std::string Reason::text() const {
  if (kind == Kind::cooccurrence) return fmt::format("is often talked about with {}", source_name);
  const std::string what = link_phrase(relation, via_name);
  if (kind == Kind::has)
    return fmt::format("{}, {} you {}", what, relation == "genre" ? "which" : "whom", source_liked ? "like" : "mentioned");
  return fmt::format("{}, like {}", what, source_name);
}

// The reasons of one source movie read as one sentence, so that two genres shared with The Matrix
// give "Like The Matrix, it is a sci-fi and action film." and not the same movie named twice; the
// genres the user named read as one too ("It is a horror and scary film, the kind you like.").
std::string explain(const RecommendedItem& item) {
  struct Clause {
    const Reason* first = nullptr;  // kind and source of the clause
    std::vector<const Reason*> genres;
    std::vector<std::string> links;
    bool cooccurs = false;
  };
  const auto has_genre = [](const Reason& r) { return r.kind == Reason::Kind::has && r.relation == "genre"; };
  std::vector<Clause> clauses;
  std::vector<std::int64_t> named;  // entities a "shares" clause names
  for (const Reason& r : item.reasons) {
    auto it = std::find_if(clauses.begin(), clauses.end(), [&](const Clause& c) {
      const Reason& f = *c.first;
      if (has_genre(r)) return has_genre(f);
      return r.kind != Reason::Kind::has && f.kind != Reason::Kind::has && f.source == r.source;
    });
    if (it == clauses.end()) it = clauses.insert(clauses.end(), Clause{&r, {}, {}, false});
    if (r.kind == Reason::Kind::cooccurrence) {
      it->cooccurs = true;
    } else if (r.relation == "genre") {
      it->genres.push_back(&r);
    } else if (r.kind == Reason::Kind::shares) {
      it->links.push_back(link_phrase(r.relation, r.via_name));
    }
    if (r.kind == Reason::Kind::shares) named.push_back(r.via);
  }
  const auto genre_phrase = [](const std::vector<std::string>& genres) {
    return fmt::format("is {} {} film", starts_with_vowel(genres.front()) ? "an" : "a", joined(genres, " and "));
  };
  std::vector<std::string> sentences;
  for (const Clause& c : clauses) {
    if (sentences.size() == 2) break;
    const Reason& r = *c.first;
    if (r.kind == Reason::Kind::has) {
      if (!has_genre(r)) {
        if (std::find(named.begin(), named.end(), r.via) == named.end()) sentences.push_back("It " + r.text() + ".");
        continue;
      }
      std::vector<std::string> genres;  // those a "shares" clause does not already name
      bool liked = false;
      for (const Reason* g : c.genres)
        if (std::find(named.begin(), named.end(), g->via) == named.end()) {
          genres.push_back(g->via_name);
          liked = liked || g->source_liked;
        }
      if (!genres.empty())
        sentences.push_back(fmt::format("It {}, the kind you {}.", genre_phrase(genres), liked ? "like" : "mentioned"));
      continue;
    }
    std::vector<std::string> parts;
    if (!c.genres.empty()) {
      std::vector<std::string> genres;
      for (const Reason* g : c.genres) genres.push_back(g->via_name);
      parts.push_back(genre_phrase(genres));
    }
    parts.insert(parts.end(), c.links.begin(), c.links.end());
    if (parts.empty())
      sentences.push_back(fmt::format("It is often talked about with {}.", r.source_name));
    else
      sentences.push_back(fmt::format("Like {}, it {}{}.", r.source_name, joined(parts, " and "),
                                      c.cooccurs ? ", and the two are often talked about together" : ""));
  }
  return joined(sentences, " ");
}

Recommender Recommender::load(const std::filesystem::path& bundle, RecommenderOptions options) {
  const Engine engine = Engine::load(bundle, options);  // before `options` moves on
  return load(engine, std::move(options));
}

Recommender Recommender::load(const Bundle& bundle, RecommenderOptions options) {
  const Engine engine = Engine::load(bundle, options);  // before `options` moves on
  return load(engine, std::move(options));
}

Recommender Recommender::load(const Engine& engine, RecommenderOptions options) {
  options = view_options(engine, std::move(options), "recommender");
  const Engine::Impl& e = engine.impl();
  if (!e.on_device())  // the Impl below finds them loaded; in its order, so errors name the same part
    e.load_together({[&] { e.backbone_tokenizer(); }, [&] { e.text_encoder_tokenizer(); },
                     [&] { if (e.emotion_classifier()) e.classifier_model(); },
                     [&] { if (options.linker == LinkerOptions{}) e.linker(); }, [&] { e.backbone(); },
                     [&] { e.text_encoder(); }, [&] { e.rec_prompt(); }});
  Recommender r;
  r.impl_ = std::make_shared<const Impl>(engine, std::move(options));
  return r;
}

Recommendation Recommender::recommend(const Dialog& dialog, const RecommendRequest& request) const {
  return std::move(impl_->run(std::span<const Dialog>(&dialog, 1), request).front());
}

std::vector<Recommendation> Recommender::recommend_batch(std::span<const Dialog> dialogs,
                                                         const RecommendRequest& request) const {
  if (dialogs.empty()) return {};
  return impl_->run(dialogs, request);
}

const KnowledgeGraph& Recommender::graph() const { return impl_->kg; }
const EntityLinker& Recommender::linker() const { return impl_->linker; }
const RecommenderOptions& Recommender::options() const { return impl_->options; }
const Bundle& Recommender::bundle() const { return impl_->engine.bundle(); }
const Engine& Recommender::engine() const { return impl_->engine; }
const Tensor& Recommender::entity_table() const {
#ifdef ECR_WITH_CUDA
  if (impl_->on_device) return impl_->engine.impl().device().rec_prompt().prompt.entity_table();
#endif
  return impl_->rec_prompt->entity_table();
}

}  // namespace ecr
