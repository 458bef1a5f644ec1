// ecr::Engine: one loaded bundle that the Recommender and the Responder share.
//
// Loading is the expensive part of using ecr: the bundle's weights made ready for the kernels,
// the knowledge graph, the R-GCN entity tables. An Engine does it once. Recommender and Responder
// are light views over a shared, immutable Engine, so a host that serves both loads one Engine
// and makes both from it:
//
//   const ecr::Engine engine = ecr::Engine::load("model.ecr");
//   const auto recommender = ecr::Recommender::load(engine);
//   const auto responder = ecr::Responder::load(engine);
//
// Recommender::load(path) and Responder::load(path) make a private Engine each. A part (backbone,
// text encoder, prompts, classifier, generator) loads the first time a view needs it, once, on
// whichever thread asks first; a host that only recommends never pays for the generator. After
// that nothing in an Engine changes: any number of views and threads may share it.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include "ecr/device/device.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/kg/knowledge_graph.hpp"

namespace ecr {

// Which bundle components play which part; the converter writes these names.
struct ComponentNames {
  std::string backbone = "backbone";                      // gpt2
  std::string text_encoder = "text_encoder";              // roberta
  std::string rec_prompt = "rec_prompt";                  // kgprompt_rec
  std::string conv_prompt = "conv_prompt";                // kgprompt_conv (Responder)
  std::string emotion_classifier = "emotion_classifier";  // gpt2_classifier (optional)
  std::string generator = "generator";                    // gpt2 (Responder)

  bool operator==(const ComponentNames&) const = default;
};

// What the Recommender and the Responder share: how the bundle is read and where it runs.
struct EngineOptions {
  ComponentNames components;
  // Threads for the ops of one request; 0 means one per core, at most ThreadPool::kMaxThreads
  // (ConfigError above). Results do not depend on it.
  std::size_t threads = 0;
  // Verify every tensor checksum at load (a cold load of a large bundle reads every byte).
  bool verify_checksums = true;
  // Where requests run: the CPU or a CUDA device (DeviceSpec::parse("cuda:1")). A device this
  // build or machine cannot use is a DeviceError at load, naming the reason.
  DeviceSpec device;

  bool operator==(const EngineOptions&) const = default;
};

class Engine {
 public:
  // Opens the bundle and builds the knowledge graph; the models load when a view first needs
  // them. FormatError / IoError for the file, ConfigError for the options, DeviceError for a
  // device that is not there.
  static Engine load(const std::filesystem::path& bundle, EngineOptions options = {});
  static Engine load(const Bundle& bundle, EngineOptions options = {});

  const Bundle& bundle() const;
  const EngineOptions& options() const;
  const KnowledgeGraph& graph() const;

  struct Impl;  // the parts (src/pipeline/engine_impl.hpp)
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ecr
