// The recommender's feedback and reasons -> ecr.results dataclasses (Feedback, Reason).
#include "bindings.hpp"

namespace ecr::python {

namespace {

// Leaked on purpose, as the types of convert.cpp: not released after the interpreter is gone.
const py::object& result_type(const char* name) {
  return *new py::object(py::module_::import("ecr.results").attr(name));
}

}  // namespace

py::dict item_listening(const RecommendedItem& item) {
  static const py::object& reason_type = result_type("Reason");
  py::list reasons;
  for (const Reason& r : item.reasons)
    reasons.append(reason_type(std::string(reason_kind_name(r.kind)), r.source, r.source_name, r.source_liked,
                               r.relation, r.via, r.via_name, r.weight, r.text()));
  py::dict out;
  out["feedback"] = item.feedback;
  out["reasons"] = py::tuple(reasons);
  out["explanation"] = explain(item);
  return out;
}

py::tuple feedback_tuple(const std::vector<Feedback>& feedback) {
  static const py::object& feedback_type = result_type("Feedback");
  py::list out;
  for (const Feedback& f : feedback)
    out.append(feedback_type(f.id, f.name, std::string(polarity_name(f.polarity)), f.cue, f.turn, f.referred_back));
  return py::tuple(out);
}

}  // namespace ecr::python
