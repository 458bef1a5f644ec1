// ecr.Dialog: the library's Dialog (include/ecr/dialog.hpp), built from the README's JSON form as
// Python dicts and lists, from ReDial records, or turn by turn.
#include <fmt/format.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "ecr/core/error.hpp"

namespace ecr::python {

namespace {

using nlohmann::json;

MovieMentions mentions_arg(py::handle obj) {
  MovieMentions out;
  if (obj.is_none()) return out;
  const json j = to_json(obj, "movie_mentions");
  if (!j.is_object()) fail<InputError>("dialog: movie_mentions must be a dict of movie id -> title");
  for (const auto& [id, title] : j.items()) {
    if (!title.is_string()) fail<InputError>("dialog: movie_mentions '{}': the title must be a string", id);
    out.emplace(id, title.get<std::string>());
  }
  return out;
}

Dialog make_dialog(py::handle turns, py::handle movie_mentions) {
  Dialog d;
  const json list = to_json(turns, "turns");
  if (!list.is_array()) throw py::type_error("ecr.Dialog: turns must be a list of turns");
  if (!list.empty()) d = Dialog::from_json({{"turns", list}});
  if (!movie_mentions.is_none()) d.movie_mentions = mentions_arg(movie_mentions);
  return d;
}

py::object turn_object(const Turn& t) {
  py::object emotions = py::none();
  if (t.emotions) {
    py::dict probs;
    for (std::size_t l = 0; l < kEmotionLabels.size(); ++l)
      if ((*t.emotions)[l] > 0) probs[py::str(std::string(kEmotionLabels[l]))] = (*t.emotions)[l];
    emotions = std::move(probs);
  }
  return types().turn(std::string(role_name(t.role)), t.text, py::tuple(py::cast(t.entities)), emotions);
}

std::size_t turn_index(const Dialog& d, std::ptrdiff_t i) {
  const auto n = static_cast<std::ptrdiff_t>(d.turns.size());
  if (i < 0) i += n;
  if (i < 0 || i >= n) throw py::index_error(fmt::format("turn {} of a dialog of {} turns", i, n));
  return static_cast<std::size_t>(i);
}

}  // namespace

Dialog dialog_arg(py::handle obj) {
  if (py::isinstance<Dialog>(obj)) return obj.cast<const Dialog&>();
  if (PyDict_Check(obj.ptr())) return Dialog::from_json(to_json(obj, "dialog"));
  if (PyList_Check(obj.ptr()) || PyTuple_Check(obj.ptr())) return Dialog::from_json({{"turns", to_json(obj, "dialog")}});
  throw py::type_error(fmt::format("expected an ecr.Dialog, a dict {{\"turns\": [...]}} or a list of turns, got {} "
                                   "(JSON text: ecr.Dialog.parse)",
                                   py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>()));
}

void bind_dialog(py::module_& m) {
  py::class_<Dialog>(m, "Dialog", R"doc(
A dialog as the Recommender and Responder take it (the README's JSON form):
turns of {"role": "user" | "system", "text": str, "entities": [KG ids] (optional),
"emotions": {label: prob} (optional)}, and movie_mentions {ReDial id: title} for @<id> in the
text. Consecutive turns of one role merge into one. Model calls also take the dict or the list
of turns directly; a Dialog is for building one turn by turn or reading a ReDial record.)doc")
      .def(py::init(&make_dialog), py::arg("turns") = py::list(), py::arg("movie_mentions") = py::none(),
           "Turns as dicts or ecr.Turn; InputError naming the turn and field when one is malformed.")
      .def_static(
          "parse", [](const std::string& text) { return Dialog::parse(text); }, py::arg("json_text"),
          "A dialog from JSON text.")
      .def_static("from_json", &dialog_arg, py::arg("obj"), "A dialog from a dict {\"turns\": ...} or a list of turns.")
      .def_static(
          "from_redial",
          [](py::handle record, const KnowledgeGraph* graph) {
            const json j = PyUnicode_Check(record.ptr()) ? json::parse(record.cast<std::string>(), nullptr, false)
                                                         : to_json(record, "record");
            if (j.is_discarded()) fail<InputError>("redial dialog: not valid JSON");
            return Dialog::from_redial(j, graph);
          },
          py::arg("record"), py::arg("graph") = nullptr,
          "A ReDial record (dict or JSON line): the seeker is the user, @<id> become titles; with a graph "
          "(Recommender.graph) each message's annotated item / entity names become entity ids.")
      .def(
          "add_turn",
          [](Dialog& d, const std::string& role, const std::string& text, py::handle entities, py::handle emotions) {
            json turn = {{"role", role}, {"text", text}, {"entities", to_json(entities, "entities")}};
            if (!emotions.is_none()) turn["emotions"] = to_json(emotions, "emotions");
            d.add_turn(std::move(Dialog::from_json({{"turns", json::array({turn})}}).turns.front()));
          },
          py::arg("role"), py::arg("text"), py::arg("entities") = py::tuple(), py::arg("emotions") = py::none(),
          "Appends a turn, merged into the last one when the role is the same.")
      .def_property_readonly(
          "turns",
          [](const Dialog& d) {
            py::list out;
            for (const auto& t : d.turns) out.append(turn_object(t));
            return out;
          },
          "The turns as ecr.Turn (copies).")
      .def_property_readonly(
          "movie_mentions", [](const Dialog& d) { return py::cast(std::map<std::string, std::string>(
                                                    d.movie_mentions.begin(), d.movie_mentions.end())); })
      .def(
          "to_json", [](const Dialog& d) { return from_json(d.to_json()); }, "The README's JSON form, as a dict.")
      .def(
          "validate", [](const Dialog& d, const KnowledgeGraph& graph) { d.validate(graph); }, py::arg("graph"),
          "InputError naming the turn unless every entity id is an entity of the graph.")
      .def("__len__", [](const Dialog& d) { return d.turns.size(); })
      .def("__getitem__", [](const Dialog& d, std::ptrdiff_t i) { return turn_object(d.turns[turn_index(d, i)]); })
      .def(
          "__getitem__",
          [](const Dialog& d, const py::slice& slice) {
            std::size_t start = 0, stop = 0, step = 0, length = 0;
            if (!slice.compute(d.turns.size(), &start, &stop, &step, &length)) throw py::error_already_set();
            Dialog out;
            out.movie_mentions = d.movie_mentions;
            for (std::size_t k = 0; k < length; ++k, start += step) out.turns.push_back(d.turns[start]);
            return out;
          },
          "The turns of the slice, with the same movie mentions (the context before a turn: dialog[:t]).")
      .def("__eq__", [](const Dialog& a, const Dialog& b) { return a.to_json() == b.to_json(); })
      .def("__eq__", [](const Dialog&, py::handle) { return false; })
      .def("__repr__", [](const Dialog& d) {
        return fmt::format("ecr.Dialog({} turns, {} movie mentions)", d.turns.size(), d.movie_mentions.size());
      });
}

}  // namespace ecr::python
