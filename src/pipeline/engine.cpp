// The Engine loads each part of the bundle once for every view (docs/math.md section 2-8 name the parts).
#include "ecr/engine.hpp"

#include <algorithm>

#include "ecr/core/error.hpp"
#include "ecr/dialog.hpp"
#include "ecr/kg/cooccurrence.hpp"
#include "components.hpp"
#include "engine_impl.hpp"

namespace ecr {

using namespace pipeline;

namespace {

// docs/math.md section 6: the classifier reads the user turn followed by eos, unless the component's
// "input_template" says otherwise. The template's text on either side of {text} is encoded on its
// own (its control tokens as tokens) and the turn's as plain text, so a turn never injects one.
constexpr std::string_view kEmotionTemplate = "{text}<|endoftext|>";

std::shared_ptr<ThreadPool> make_pool(std::size_t threads) {
  if (!threads) return ThreadPool::shared_default();
  return std::make_shared<ThreadPool>(static_cast<int>(threads));
}

// Before the bundle is read: a count the pool would refuse is an error at once, naming it.
void check_threads(std::size_t threads) {
  if (threads > static_cast<std::size_t>(ThreadPool::kMaxThreads))
    fail<ConfigError>("thread pool: {} threads asked for, at most {} are allowed", threads, ThreadPool::kMaxThreads);
}

template <class Model>
Model load_model(const Bundle& bundle, const std::string& name, std::string_view role,
                 const std::shared_ptr<ThreadPool>& pool) {
  return Model::load(read_component(bundle, name, role), pool);
}

std::shared_ptr<const Tokenizer> load_tokenizer(const Bundle& bundle, const std::string& name, std::string_view role) {
  return component_tokenizer(read_component(bundle, name, role));
}

}  // namespace

Engine::Impl::Impl(Bundle b, EngineOptions o)
    : bundle(std::move(b)), options(std::move(o)), pool(make_pool(options.threads)), kg(KnowledgeGraph::load(bundle)) {}

void Engine::Impl::load_together(std::initializer_list<std::function<void()>> parts) const {
  pool->parallel_for(parts.size(), [&](std::size_t i) { parts.begin()[i](); });
}

const Tokenizer& Engine::Impl::backbone_tokenizer() const {
  return *backbone_tokenizer_.get([&] { return load_tokenizer(bundle, options.components.backbone, "the backbone"); });
}

const Tokenizer& Engine::Impl::text_encoder_tokenizer() const {
  return *text_encoder_tokenizer_.get(
      [&] { return load_tokenizer(bundle, options.components.text_encoder, "the text encoder"); });
}

const Tokenizer& Engine::Impl::generator_tokenizer() const {
  return *generator_tokenizer_.get(
      [&] { return load_tokenizer(bundle, options.components.generator, "the generator"); });
}

const Gpt2Model& Engine::Impl::backbone() const {
  return backbone_.get([&] { return load_model<Gpt2Model>(bundle, options.components.backbone, "the backbone", pool); });
}

const RobertaModel& Engine::Impl::text_encoder() const {
  return text_encoder_.get(
      [&] { return load_model<RobertaModel>(bundle, options.components.text_encoder, "the text encoder", pool); });
}

const Gpt2Model& Engine::Impl::generator() const {
  return generator_.get(
      [&] { return load_model<Gpt2Model>(bundle, options.components.generator, "the generator", pool); });
}

const RelationCsr& Engine::Impl::relations() const {
  return relations_.get([&] { return RelationCsr::from_graph(kg); });
}

bool Engine::Impl::has_global_entities() const { return bundle.contains("cooccurrence/indptr"); }

std::optional<CooccurrenceMatrix> Engine::Impl::cooccurrence() const {
  if (!has_global_entities()) return std::nullopt;
  return CooccurrenceMatrix::load(bundle, kg.num_entities());
}

const PromptEncoder& Engine::Impl::rec_prompt() const {
  return rec_prompt_.get([&] {
    const Component component = read_component(bundle, options.components.rec_prompt, "the rec prompt");
    // The matrix is only needed for G = C E, built once here.
    const std::optional<CooccurrenceMatrix> matrix = cooccurrence();
    return PromptEncoder::load(component, relations(), matrix ? &*matrix : nullptr, pool);
  });
}

const PromptEncoder& Engine::Impl::conv_prompt() const {
  return conv_prompt_.get([&] {
    return PromptEncoder::load(read_component(bundle, options.components.conv_prompt, "the conv prompt"), relations(),
                               nullptr, pool);
  });
}

const std::optional<EmotionClassifier>& Engine::Impl::emotion_classifier() const {
  return classifier_.get([&]() -> std::optional<EmotionClassifier> {
    const std::string& name = options.components.emotion_classifier;
    if (!has_component(bundle, name)) return std::nullopt;  // optional: host emotions, or none
    const Component component = read_component(bundle, name, "the emotion classifier");
    EmotionClassifier c{component_tokenizer(component), {}, {}, false};
    const std::string input_template = component.entry.string_or("input_template", kEmotionTemplate);
    const auto slot = input_template.find("{text}");
    if (slot == std::string::npos) fail<ConfigError>("component '{}': input_template has no {{text}} slot", name);
    c.before = input_template.substr(0, slot);
    c.after = input_template.substr(slot + 6);
    // HuggingFace's config states a multi-label head this way.
    c.multi_label = component.config.string_or("problem_type", "") == "multi_label_classification";
    return c;
  });
}

const Gpt2Model& Engine::Impl::classifier_model() const {
  return classifier_model_.get([&] {
    const std::string& name = options.components.emotion_classifier;
    Gpt2Model model = load_model<Gpt2Model>(bundle, name, "the emotion classifier", pool);
    check_classifier_head(name, model.has_classifier(), model.config().num_labels);
    return model;
  });
}

const EntityLinker& Engine::Impl::linker() const {
  return linker_.get([&] { return EntityLinker(kg); });
}

const std::optional<ReviewStore>& Engine::Impl::reviews() const {
  return reviews_.get([&]() -> std::optional<ReviewStore> {
    if (!ReviewStore::present(bundle)) return std::nullopt;
    return ReviewStore::load(bundle, kg.num_entities());
  });
}

Engine Engine::load(const std::filesystem::path& bundle, EngineOptions options) {
  require_device(options.device);
  check_threads(options.threads);
  BundleOptions bundle_options;
  bundle_options.verify_checksums = options.verify_checksums;
  return load(Bundle::open(bundle, bundle_options), std::move(options));
}

Engine Engine::load(const Bundle& bundle, EngineOptions options) {
  require_device(options.device);
  check_threads(options.threads);
  Engine e;
  e.impl_ = std::make_shared<const Impl>(bundle, std::move(options));
  return e;
}

const Bundle& Engine::bundle() const { return impl_->bundle; }
const EngineOptions& Engine::options() const { return impl_->options; }
const KnowledgeGraph& Engine::graph() const { return impl_->kg; }

}  // namespace ecr
