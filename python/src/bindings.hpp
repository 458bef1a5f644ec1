// What the binding files share: Python <-> JSON, the dialog argument every model call takes, and
// the Python classes (ecr/results.py, ecr/errors.py) the results and errors are built from.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pybind11/pybind11.h>

#include "ecr/dialog.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/models/lora.hpp"
#include "ecr/recommender.hpp"
#include "ecr/responder.hpp"

namespace ecr::python {

namespace py = pybind11;

// The Python classes of ecr.results and ecr.errors, looked up once when the module loads.
struct PyTypes {
  py::object emotion, item, entity, turn, turn_analysis, prompt_entity, recommendation, knowledge, response,
      tensor_info;
  py::object errors[6];  // by ErrorKind
};
void load_types();
const PyTypes& types();

// dict, list, tuple, str, int, float, bool, None (numpy scalars and arrays too) -> JSON; an
// ecr.Turn becomes its dict. TypeError naming `where` and the offending type otherwise.
nlohmann::json to_json(py::handle obj, const std::string& where = "value");
py::object from_json(const nlohmann::json& j);

// The threads argument of a load (0: one per core); ConfigError outside 0 to ThreadPool::kMaxThreads.
std::size_t thread_count(long long threads);
// LoRA adapters as Python gives them: None, or a list of "FILE[:SCALE]", a path, or a
// (path, scale) pair each.
std::vector<LoraSpec> lora_specs(py::handle lora);

// str or os.PathLike -> path.
std::filesystem::path path_arg(py::handle obj);
// The bundle a model loads from: an ecr.Bundle as it is, a path opened, None: the shipped model.
Bundle bundle_arg(py::handle obj, bool verify_checksums);
// An ecr.Dialog (copied, so the call may run without the GIL), a dict in the README's form or a
// list of turns. TypeError for anything else; InputError for a malformed dialog.
Dialog dialog_arg(py::handle obj);

// Results as ecr.results dataclasses.
py::object emotions_tuple(const TurnEmotions& emotions);
py::object linked_entity(const LinkedEntity& entity);
py::object recommendation_object(std::shared_ptr<Recommendation> recommendation);
// What the recommender listened to (listening.cpp): an item's feedback term and reasons as
// keyword arguments of ecr.Item, and the feedback read as a tuple of ecr.Feedback.
py::dict item_listening(const RecommendedItem& item);
py::tuple feedback_tuple(const std::vector<Feedback>& feedback);
py::object response_object(const Response& response, py::object recommendation);

void bind_dialog(py::module_& m);
void bind_bundle(py::module_& m);
void bind_models(py::module_& m);
void bind_llm(py::module_& m);

}  // namespace ecr::python
