// Python values <-> JSON and the library's results -> ecr.results dataclasses.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <fmt/format.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "ecr/core/error.hpp"
#include "ecr/core/json_depth.hpp"

namespace ecr::python {

namespace {

using nlohmann::json;

// Leaked on purpose: Python objects must not be released after the interpreter is gone.
PyTypes* g_types = nullptr;

template <class T>
py::array_t<T> array_of(const std::vector<T>& values) {
  return py::array_t<T>(static_cast<py::ssize_t>(values.size()), values.data());
}

py::object item_object(const RecommendedItem& item) {
  return types().item(item.id, item.name, item.score, **item_listening(item));
}

py::list items_list(const std::vector<RecommendedItem>& items) {
  py::list out;
  for (const auto& item : items) out.append(item_object(item));
  return out;
}

py::object emotion_probs(const std::optional<EmotionProbs>& probs) {
  if (!probs) return py::none();
  py::dict out;
  for (std::size_t l = 0; l < kEmotionLabels.size(); ++l) out[py::str(std::string(kEmotionLabels[l]))] = (*probs)[l];
  return out;
}

// Python values to JSON, recursing once per level of nesting: held to kMaxJsonDepth levels as
// JSON text is (a list nested 100,000 deep would overflow the stack), and refusing a container
// that holds itself (which would recurse for ever).
class ToJson {
 public:
  json convert(py::handle obj, const std::string& where);

 private:
  // Enters the container `obj`; InputError past the depth limit or when it is already open.
  void enter(py::handle obj, const std::string& where) {
    if (std::find(open_.begin(), open_.end(), obj.ptr()) != open_.end())
      fail<InputError>("{}: the value contains itself", where);
    if (open_.size() == kMaxJsonDepth)
      fail<InputError>("{}: nests lists, tuples and dicts deeper than {} levels", where, kMaxJsonDepth);
    open_.push_back(obj.ptr());
  }
  void leave() { open_.pop_back(); }

  std::vector<PyObject*> open_;  // the containers from the outermost to the one being converted
};

}  // namespace

void load_types() {
  const py::module_ results = py::module_::import("ecr.results");
  const py::module_ errors = py::module_::import("ecr.errors");
  auto* t = new PyTypes;
  t->emotion = results.attr("Emotion");
  t->item = results.attr("Item");
  t->entity = results.attr("Entity");
  t->turn = results.attr("Turn");
  t->turn_analysis = results.attr("TurnAnalysis");
  t->prompt_entity = results.attr("PromptEntity");
  t->recommendation = results.attr("Recommendation");
  t->knowledge = results.attr("Knowledge");
  t->response = results.attr("Response");
  t->tensor_info = results.attr("TensorInfo");
  const char* names[] = {"FormatError", "ShapeError", "InputError", "IoError", "DeviceError", "ConfigError"};
  static_assert(static_cast<int>(ErrorKind::format) == 0 && static_cast<int>(ErrorKind::config) == 5);
  for (int k = 0; k < 6; ++k) t->errors[k] = errors.attr(names[k]);
  g_types = t;
}

const PyTypes& types() { return *g_types; }

json to_json(py::handle obj, const std::string& where) { return ToJson().convert(obj, where); }

json ToJson::convert(py::handle obj, const std::string& where) {
  if (obj.is_none()) return nullptr;
  if (PyBool_Check(obj.ptr())) return obj.ptr() == Py_True;
  if (PyUnicode_Check(obj.ptr())) {
    Py_ssize_t size = 0;
    const char* utf8 = PyUnicode_AsUTF8AndSize(obj.ptr(), &size);
    if (!utf8) {  // lone surrogates, as "surrogateescape" decoding leaves them
      PyErr_Clear();
      fail<InputError>("{}: the text is not valid UTF-8 (it holds a lone surrogate)", where);
    }
    return std::string(utf8, static_cast<std::size_t>(size));
  }
  if (PyDict_Check(obj.ptr())) {
    enter(obj, where);
    json out = json::object();
    for (auto [key, value] : obj.cast<py::dict>()) {
      // ReDial's movieMentions and questions are keyed by ids; Python code may use ints.
      const std::string k = PyUnicode_Check(key.ptr()) ? key.cast<std::string>() : py::str(key).cast<std::string>();
      out[k] = convert(value, where + "." + k);
    }
    leave();
    return out;
  }
  if (py::isinstance(obj, types().turn)) {
    enter(obj, where);
    json out = {{"role", convert(obj.attr("role"), where)}, {"text", convert(obj.attr("text"), where)},
                {"entities", convert(obj.attr("entities"), where)}};
    if (!obj.attr("emotions").is_none()) out["emotions"] = convert(obj.attr("emotions"), where);
    leave();
    return out;
  }
  // numpy arrays and scalars: their Python form (a level of its own: tolist() may return itself).
  if (py::hasattr(obj, "tolist") && !PyLong_Check(obj.ptr()) && !PyFloat_Check(obj.ptr())) {
    enter(obj, where);
    json out = convert(obj.attr("tolist")(), where);
    leave();
    return out;
  }
  if (PyIndex_Check(obj.ptr())) {  // int and other integer types
    const py::int_ value = py::reinterpret_steal<py::int_>(PyNumber_Index(obj.ptr()));
    if (!value) throw py::error_already_set();
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
    if (overflow) throw py::value_error(fmt::format("{}: integer out of range", where));
    return v;
  }
  if (PyFloat_Check(obj.ptr()) || py::isinstance(obj, py::module_::import("numbers").attr("Real"))) {
    const double v = PyFloat_AsDouble(obj.ptr());
    if (v == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    return v;
  }
  if (PyList_Check(obj.ptr()) || PyTuple_Check(obj.ptr())) {
    enter(obj, where);
    const auto seq = py::reinterpret_borrow<py::sequence>(obj);
    json out = json::array();
    for (std::size_t i = 0; i < seq.size(); ++i) out.push_back(convert(seq[i], fmt::format("{}[{}]", where, i)));
    leave();
    return out;
  }
  throw py::type_error(fmt::format("{}: cannot take a value of type {} (expected dict, list, str, int, float, bool "
                                   "or None)",
                                   where, py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>()));
}

py::object from_json(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return py::none();
    case json::value_t::boolean: return py::bool_(j.get<bool>());
    case json::value_t::number_integer: return py::int_(j.get<std::int64_t>());
    case json::value_t::number_unsigned: return py::int_(j.get<std::uint64_t>());
    case json::value_t::number_float: return py::float_(j.get<double>());
    case json::value_t::string: return py::str(j.get_ref<const std::string&>());
    case json::value_t::array: {
      py::list out;
      for (const auto& v : j) out.append(from_json(v));
      return out;
    }
    case json::value_t::object: {
      py::dict out;
      for (const auto& [k, v] : j.items()) out[py::str(k)] = from_json(v);
      return out;
    }
    default: return py::none();  // binary and discarded values never come out of a parse
  }
}

py::object emotions_tuple(const TurnEmotions& emotions) {
  py::list out;
  for (std::size_t k = 0; k < emotions.ids.size(); ++k)
    if (emotions.ids[k] != kPadEmotion)
      out.append(types().emotion(std::string(kEmotionLabels[static_cast<std::size_t>(emotions.ids[k])]),
                                 emotions.probs[k]));
  return py::tuple(out);
}

py::object linked_entity(const LinkedEntity& e) {
  return types().entity(e.id, e.name, e.begin, e.end, std::string(link_source_name(e.source)));
}

py::object recommendation_object(std::shared_ptr<Recommendation> r) {
  const PyTypes& t = types();
  py::list turns, prompt_entities;
  for (const auto& turn : r->turns) {
    py::list entities;
    for (const auto& e : turn.entities) entities.append(linked_entity(e));
    py::object from = turn.emotions ? py::object(py::str(turn.emotions_from_classifier ? "classifier" : "host"))
                                    : py::object(py::none());
    turns.append(t.turn_analysis(std::string(role_name(turn.role)), turn.text, py::tuple(entities),
                                 emotion_probs(turn.emotions), from, emotions_tuple(turn.selected)));
  }
  for (const auto& e : r->prompt_entities) prompt_entities.append(t.prompt_entity(e.id, emotions_tuple(e.emotions)));
  py::object all_scores = r->all_scores ? py::object(array_of(*r->all_scores)) : py::object(py::none());
  return t.recommendation(items_list(r->items), turns, items_list(r->context_entities),
                          emotions_tuple(r->user_emotions), r->emotion_fusion, prompt_entities,
                          array_of(r->context_ids), array_of(r->prompt_ids), all_scores, py::cast(r),
                          py::arg("feedback") = feedback_tuple(r->feedback));
}

py::object response_object(const Response& r, py::object recommendation) {
  const PyTypes& t = types();
  py::list knowledge;
  for (const auto& k : r.knowledge) knowledge.append(t.knowledge(k.movie, k.relation, k.entity));
  return t.response(r.text, r.template_text, r.first_sentence, items_list(r.items), py::cast(r.review_entities),
                    knowledge, r.prompt_text, emotions_tuple(r.user_emotions), array_of(r.template_input_ids),
                    array_of(r.conv_prompt_ids), array_of(r.conv_entities), array_of(r.template_ids),
                    array_of(r.prompt_ids), array_of(r.reply_ids), std::move(recommendation),
                    py::arg("generator") = std::string(reply_generator_name(r.generator)));
}

}  // namespace ecr::python
