// ecr.Recommender, ecr.Responder and ecr.ReplyStream. Every model call copies its Python inputs
// into C++ values first, then runs without the GIL, so Python threads sharing one loaded model
// run their requests at the same time; results become ecr.results dataclasses afterwards.
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "stream.hpp"
#include "ecr/core/error.hpp"
#include "ecr/core/thread_pool.hpp"

namespace ecr::python {

std::size_t thread_count(long long threads) {
  if (threads < 0 || threads > ThreadPool::kMaxThreads)
    fail<ConfigError>("threads must be 0 (one per core) to {}, got {}", ThreadPool::kMaxThreads, threads);
  return static_cast<std::size_t>(threads);
}

std::vector<LoraSpec> lora_specs(py::handle lora) {
  std::vector<LoraSpec> specs;
  if (lora.is_none()) return specs;
  for (py::handle item : lora) {
    if (py::isinstance<py::tuple>(item) && py::len(item) == 2)
      specs.push_back({py::str(item[py::int_(0)]).cast<std::string>(), item[py::int_(1)].cast<float>()});
    else if (py::isinstance<py::str>(item))
      specs.push_back(LoraSpec::parse(item.cast<std::string>()));
    else
      specs.push_back({py::str(item).cast<std::string>(), 1.0f});
  }
  return specs;
}

namespace {

// What the Engine behind a Recommender or Responder loads with; "cuda" on a machine or build
// without it is the DeviceError Engine::load gives.
EngineOptions engine_options(long long threads, const std::string& device, bool verify_checksums) {
  EngineOptions options;
  options.threads = thread_count(threads);
  options.device = DeviceSpec::parse(device);
  options.verify_checksums = verify_checksums;
  return options;
}

RecommendRequest request_arg(long long top_k, bool all_scores) {
  if (top_k < 1) fail<InputError>("top_k must be at least 1, got {}", top_k);
  RecommendRequest request;
  request.top_k = static_cast<std::size_t>(top_k);
  request.all_scores = all_scores;
  return request;
}

std::shared_ptr<Recommendation> native_recommendation(py::handle recommendation) {
  if (!py::isinstance(recommendation, types().recommendation) || recommendation.attr("_native").is_none())
    throw py::type_error("recommendation: expected the ecr.Recommendation that Recommender.recommend returned");
  return recommendation.attr("_native").cast<std::shared_ptr<Recommendation>>();
}

Recommender load_recommender(py::handle path, long long threads, const std::string& device, bool exclude_mentioned,
                             float feedback_strength, bool global_entities, bool link_text, bool emotion_classifier,
                             bool verify_checksums) {
  RecommenderOptions options;
  static_cast<EngineOptions&>(options) = engine_options(threads, device, verify_checksums);
  options.exclude_mentioned = exclude_mentioned;
  options.feedback_strength = feedback_strength;
  options.global_entities = global_entities;
  options.link_text = link_text;
  if (!emotion_classifier) options.components.emotion_classifier.clear();
  const Bundle bundle = bundle_arg(path, verify_checksums);
  py::gil_scoped_release unlocked;
  return Recommender::load(bundle, std::move(options));
}

// A Responder with the Recommender whose items its replies are about.
struct Chat {
  Recommender recommender;
  Responder responder;
  std::size_t top_k = 5;
};

// The reply of one request, decoded on a worker thread (a TextStream) and handed to Python piece
// by piece; the recommendation and the response are kept for Python as they become known.
class ReplyStream {
 public:
  ReplyStream(const Chat& chat, Dialog dialog, RecommendRequest request, py::object given)
      : outcome_(std::make_shared<Outcome>()),
        recommendation_(std::move(given)),
        text_([outcome = outcome_, chat, dialog = std::move(dialog), request,
               native = recommendation_.is_none() ? nullptr : native_recommendation(recommendation_)](
                  const TextStream::Sink& sink) mutable {
          if (!native) native = std::make_shared<Recommendation>(chat.recommender.recommend(dialog, request));
          {
            std::lock_guard lock(outcome->mutex);
            outcome->recommendation = native;
          }
          Response response = chat.responder.respond(dialog, *native, sink);
          std::lock_guard lock(outcome->mutex);
          outcome->response = std::move(response);
        }) {}

  py::str next() { return text_.next(); }
  // Stops the reply after the token being decoded and waits for the worker.
  void close() { text_.close(); }

  py::object recommendation() {
    if (recommendation_.is_none()) {
      std::shared_ptr<Recommendation> native;
      {
        std::lock_guard lock(outcome_->mutex);
        native = outcome_->recommendation;
      }
      if (native) recommendation_ = recommendation_object(std::move(native));
    }
    return recommendation_;
  }

  py::object response() {
    if (response_.is_none()) {
      std::optional<Response> done;
      {
        std::lock_guard lock(outcome_->mutex);
        done = outcome_->response;
      }
      if (done) response_ = response_object(*done, recommendation());
    }
    return response_;
  }

 private:
  // What the worker leaves for Python besides the pieces.
  struct Outcome {
    std::mutex mutex;
    std::shared_ptr<Recommendation> recommendation;
    std::optional<Response> response;  // set once the reply is done
  };

  std::shared_ptr<Outcome> outcome_;
  py::object recommendation_, response_ = py::none();
  TextStream text_;  // last: its worker stops before the rest goes
};

Chat load_responder(py::handle path, py::object recommender, long long threads, const std::string& device,
                    long long top_k, long long items, long long max_new_tokens, float temperature,
                    long long sample_top_k, float top_p, float repetition_penalty, long long no_repeat_ngram,
                    std::uint64_t seed, std::optional<std::uint64_t> knowledge_seed,
                    std::optional<std::vector<std::string>> relations, bool link_text, bool verify_checksums,
                    const std::string& generator, std::optional<std::string> llm, std::optional<std::string> chat_template,
                    long long llm_max_new_tokens, float llm_repetition_penalty, py::object lora) {
  const EngineOptions engine_opts = engine_options(threads, device, verify_checksums);
  if (top_k < 1) fail<InputError>("top_k must be at least 1, got {}", top_k);
  if (items < 1) fail<InputError>("items must be at least 1, got {}", items);
  ResponderOptions options;
  options.items_in_reply = static_cast<std::size_t>(items);
  options.generation.max_new_tokens = max_new_tokens;
  options.generation.temperature = temperature;
  options.generation.top_k = sample_top_k;
  options.generation.top_p = top_p;
  options.generation.repetition_penalty = repetition_penalty;
  options.generation.no_repeat_ngram_size = no_repeat_ngram;
  options.generation.seed = seed;
  options.knowledge_seed = knowledge_seed;
  if (relations) options.knowledge_relations = *relations;
  check_generate_options(options.generation);
  options.generator = parse_reply_generator(generator);
  if (llm) options.llm_path = *llm;
  if (chat_template) options.chat_template = *chat_template;
  options.llm_lora = lora_specs(lora);
  options.llm_generation.max_new_tokens = llm_max_new_tokens;
  options.llm_generation.repetition_penalty = llm_repetition_penalty;
  options.llm_generation.temperature = temperature;
  options.llm_generation.top_k = sample_top_k;
  options.llm_generation.top_p = top_p;
  options.llm_generation.seed = seed;
  check_generate_options(options.llm_generation);

  // The Responder shares the engine of the Recommender it is given (one load of the
  // backbone, text encoder and KG), else both come from one new engine.
  std::optional<Recommender> given;
  if (!recommender.is_none() && !py::isinstance<Recommender>(recommender))
    throw py::type_error(fmt::format("recommender: expected an ecr.Recommender or None, got {}",
                                     py::str(py::type::handle_of(recommender).attr("__name__")).cast<std::string>()));
  if (!recommender.is_none()) given = recommender.cast<Recommender>();
  RecommenderOptions rec;
  rec.link_text = link_text;
  std::optional<Bundle> bundle;
  if (!path.is_none() || !given) bundle = bundle_arg(path, verify_checksums);
  py::gil_scoped_release unlocked;
  const Engine engine = bundle ? Engine::load(*bundle, engine_opts) : given->engine();
  return Chat{given ? *given : Recommender::load(engine, rec), Responder::load(engine, options),
              static_cast<std::size_t>(top_k)};
}

// Carried inside ecr.Recommendation so that Responder.respond takes it back without a copy.
void bind_native_recommendation(py::module_& m) {
  // Immutable, so a copy is the object itself (dataclasses.asdict deep-copies every field).
  py::class_<Recommendation, std::shared_ptr<Recommendation>>(m, "_NativeRecommendation")
      .def("__copy__", [](py::object self) { return self; })
      .def("__deepcopy__", [](py::object self, py::handle) { return self; });
}

void bind_recommender(py::module_& m) {
  py::class_<Recommender>(m, "Recommender", R"doc(
ECR's emotion-aware recommendation (include/ecr/recommender.hpp): dialog -> emotions -> entities
-> knowledge-graph prompt -> GPT-2 -> a score for every entity -> ranked items. Load once and
share across threads: a loaded Recommender is immutable, and recommend() releases the GIL.)doc")
      .def_static("load", &load_recommender, py::arg("path") = py::none(), py::kw_only(), py::arg("threads") = 0,
                  py::arg("device") = "cpu", py::arg("exclude_mentioned") = true, py::arg("feedback_strength") = 1.0f,
                  py::arg("global_entities") = true,
                  py::arg("link_text") = true, py::arg("emotion_classifier") = true,
                  py::arg("verify_checksums") = true, R"doc(
Loads the models and builds the static tables. path: a bundle file, an ecr.Bundle, or None for
the shipped model (ecr.default_bundle_path()). threads: for the ops of one request (0: one per
core; results do not depend on it). exclude_mentioned: leave the dialog's movies out of the
ranking (False: the paper's setting). feedback_strength: how far movies the user liked or disliked
move their neighbours in the ranking (0: off; include/ecr/recommender.hpp). global_entities: the co-occurrence entities in the prompt. link_text: link entities in
turns that carry no ids. emotion_classifier: classify unlabelled user turns with the bundle's
classifier. ConfigError / FormatError / ShapeError / IoError naming the bundle and the part.)doc")
      .def(
          "recommend",
          [](const Recommender& r, py::handle dialog, long long top_k, bool all_scores) {
            const RecommendRequest request = request_arg(top_k, all_scores);
            const Dialog d = dialog_arg(dialog);
            std::shared_ptr<Recommendation> out;
            {
              py::gil_scoped_release unlocked;
              out = std::make_shared<Recommendation>(r.recommend(d, request));
            }
            return recommendation_object(std::move(out));
          },
          py::arg("dialog"), py::arg("top_k") = 10, py::arg("all_scores") = false, R"doc(
The top_k items for a dialog (an ecr.Dialog, a dict {"turns": [...]} or a list of turns), as an
ecr.Recommendation; all_scores=True adds every entity's score as a numpy array. InputError for an
empty dialog, an unknown entity id, invalid text or a top_k under 1.)doc")
      .def(
          "recommend_batch",
          [](const Recommender& r, const py::sequence& dialogs, long long top_k, bool all_scores) {
            const RecommendRequest request = request_arg(top_k, all_scores);
            std::vector<Dialog> ds;
            for (const auto& d : dialogs) ds.push_back(dialog_arg(d));
            std::vector<Recommendation> out;
            {
              py::gil_scoped_release unlocked;
              out = r.recommend_batch(ds, request);
            }
            py::list results;
            for (auto& rec : out) results.append(recommendation_object(std::make_shared<Recommendation>(std::move(rec))));
            return results;
          },
          py::arg("dialogs"), py::arg("top_k") = 10, py::arg("all_scores") = false,
          "recommend() for each dialog, run as one batch; the same results as one call each.")
      .def(
          "link",
          [](const Recommender& r, const std::string& text, py::handle movie_mentions) {
            MovieMentions mentions;
            if (!movie_mentions.is_none())
              mentions = Dialog::from_json({{"turns", nlohmann::json::array({{{"role", "user"}, {"text", ""}}})},
                                            {"movieMentions", to_json(movie_mentions, "movie_mentions")}})
                             .movie_mentions;
            std::vector<LinkedEntity> linked;
            {
              py::gil_scoped_release unlocked;
              linked = r.linker().link(text, &mentions);
            }
            py::list out;
            for (const auto& e : linked) out.append(linked_entity(e));
            return out;
          },
          py::arg("text"), py::arg("movie_mentions") = py::none(),
          "The KG entities the linker finds in a text (@<id> through movie_mentions), as ecr.Entity.")
      .def_property_readonly("graph", [](const Recommender& r) { return r.graph(); }, "The ecr.KnowledgeGraph.")
      .def_property_readonly("bundle", [](const Recommender& r) { return r.bundle(); }, "The ecr.Bundle it loaded.")
      .def("__repr__", [](const Recommender& r) {
        return fmt::format("ecr.Recommender('{}', {} entities, {} items)", r.bundle().label(), r.graph().num_entities(),
                           r.graph().items().size());
      });
}

void bind_reply_stream(py::module_& m) {
  py::class_<ReplyStream>(m, "ReplyStream", R"doc(
The reply of Responder.stream as it decodes: iterate for the pieces (whole UTF-8 characters that
add up to the reply). Once it is exhausted, .response is the ecr.Response; close() (or leaving a
with block) stops the reply early.)doc")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &ReplyStream::next)
      .def("close", &ReplyStream::close)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](ReplyStream& s, py::args) { s.close(); })
      .def_property_readonly("recommendation", &ReplyStream::recommendation,
                             "The ecr.Recommendation the reply is about (None until it is known).")
      .def_property_readonly("response", &ReplyStream::response, "The ecr.Response once the reply is done, else None.");
}


void bind_responder(py::module_& m) {
  py::class_<Chat>(m, "Responder", R"doc(
ECR's emotion-aligned, knowledge-grounded reply (include/ecr/responder.hpp): the backbone's
template with the recommended items, their review entities and KG knowledge, then the generator.
It holds the Recommender whose items the replies name. Immutable after load, shared across
threads; respond() and stream() release the GIL.)doc")
      .def_static(
          "load",
          &load_responder,
          py::arg("path") = py::none(), py::kw_only(), py::arg("recommender") = py::none(), py::arg("threads") = 0,
          py::arg("device") = "cpu", py::arg("top_k") = 5, py::arg("items") = 1, py::arg("max_new_tokens") = 150,
          py::arg("temperature") = 0.0f, py::arg("sample_top_k") = 0, py::arg("top_p") = 1.0f,
          py::arg("repetition_penalty") = 1.0f, py::arg("no_repeat_ngram") = 3, py::arg("seed") = 0,
          py::arg("knowledge_seed") = py::none(), py::arg("relations") = py::none(), py::arg("link_text") = true,
          py::arg("verify_checksums") = true, py::arg("generator") = "auto", py::arg("llm") = py::none(),
          py::arg("chat_template") = py::none(), py::arg("llm_max_new_tokens") = 120,
          py::arg("llm_repetition_penalty") = 1.1f, py::arg("lora") = py::none(), R"doc(
Loads the Responder, and a Recommender from the same bundle unless one is given. path: a bundle
file, an ecr.Bundle, or None (the recommender's bundle, else the shipped model). top_k: items
ranked per request; items: how many the reply names. Decoding is ECR's (greedy, no repeated
3-grams, 150 tokens at most) unless temperature > 0 samples, with sample_top_k, top_p, seed.
knowledge_seed samples review entities and KG triples as ECR does (default: most frequent first);
relations: the KG relations for knowledge (default: the bundle's, else ECR's).
generator: "llm" (a Llama GGUF chat model given by llm, default $ECR_LLM or the installed
SmolLM2, prompted with ECR's retrieval through its chat template, or chat_template by name),
"gpt2" (ECR's generator) or "auto" (llm when one is given or installed). The LLM decodes greedily
with llm_repetition_penalty, at most llm_max_new_tokens, unless temperature > 0 samples.
lora: LoRA adapters over the LLM (llama.cpp GGUF LoRA files), each "FILE[:SCALE]", a path, or a
(path, scale) pair.)doc")
      .def(
          "respond",
          [](const Chat& chat, py::handle dialog, py::object recommendation, std::optional<long long> top_k) {
            const Dialog d = dialog_arg(dialog);
            if (recommendation.is_none()) {
              const RecommendRequest request = request_arg(top_k.value_or(static_cast<long long>(chat.top_k)), false);
              std::optional<Responder::Turn> turn;
              {
                py::gil_scoped_release unlocked;
                turn = Responder::converse(chat.recommender, chat.responder, d, request);
              }
              py::object rec = recommendation_object(std::make_shared<Recommendation>(std::move(turn->recommendation)));
              return response_object(turn->response, rec);
            }
            const std::shared_ptr<Recommendation> native = native_recommendation(recommendation);
            std::optional<Response> response;
            {
              py::gil_scoped_release unlocked;
              response = chat.responder.respond(d, *native);
            }
            return response_object(*response, recommendation);
          },
          py::arg("dialog"), py::arg("recommendation") = py::none(), py::arg("top_k") = py::none(), R"doc(
The reply to a dialog, as an ecr.Response (its .recommendation the ranking it is about): the
given recommendation's items, else the Recommender's top_k (default: the one given at load).)doc")
      .def(
          "stream",
          [](const Chat& chat, py::handle dialog, py::object recommendation, std::optional<long long> top_k) {
            const RecommendRequest request = request_arg(top_k.value_or(static_cast<long long>(chat.top_k)), false);
            return std::make_unique<ReplyStream>(chat, dialog_arg(dialog), request, std::move(recommendation));
          },
          py::arg("dialog"), py::arg("recommendation") = py::none(), py::arg("top_k") = py::none(), R"doc(
respond() as an iterator over the reply's pieces (whole UTF-8 characters, as soon as they are
known); the ecr.ReplyStream's .response is the full ecr.Response at the end.)doc")
      .def_property_readonly("recommender", [](const Chat& chat) { return chat.recommender; })
      .def_property_readonly("knowledge_relations", [](const Chat& chat) { return chat.responder.knowledge_relations(); })
      .def_property_readonly("has_review_entities", [](const Chat& chat) { return chat.responder.has_review_entities(); })
      .def_property_readonly("generator", [](const Chat& chat) { return std::string(reply_generator_name(chat.responder.generator())); })
      .def("__repr__", [](const Chat& chat) {
        return fmt::format("ecr.Responder('{}', top_k={}, items={})", chat.recommender.bundle().label(), chat.top_k,
                           chat.responder.options().items_in_reply);
      });
}

}  // namespace

// ecr.Recommender, ecr.ReplyStream and ecr.Responder, each bound by a stage of its own.
void bind_models(py::module_& m) {
  bind_native_recommendation(m);
  bind_recommender(m);
  bind_reply_stream(m);
  bind_responder(m);
}

}  // namespace ecr::python
