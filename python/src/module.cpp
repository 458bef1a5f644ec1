// The extension module ecr._ecr; the package ecr (python/ecr/__init__.py) re-exports it.
// ecr::Error becomes the Python class of its kind (ecr/errors.py), its message without the
// "input error: " prefix that the class already says.
#include <pybind11/pybind11.h>

#include "bindings.hpp"
#include "stream.hpp"
#include "ecr/core/error.hpp"
#include "ecr/device/cuda.hpp"

#ifndef ECR_VERSION
#define ECR_VERSION "0.0.0"
#endif

PYBIND11_MODULE(_ecr, m) {
  namespace py = pybind11;
  using namespace ecr::python;
  m.doc() = "The ecr engine's Python bindings; use the package `ecr`.";
  load_types();

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ecr::Error& e) {
      std::string message = e.what();
      const std::string prefix = std::string(ecr::to_string(e.kind())) + ": ";
      if (message.starts_with(prefix)) message.erase(0, prefix.size());
      PyErr_SetString(types().errors[static_cast<int>(e.kind())].ptr(), message.c_str());
    }
  });

  py::tuple labels(ecr::kEmotionLabels.size());
  for (std::size_t l = 0; l < ecr::kEmotionLabels.size(); ++l) labels[l] = py::str(std::string(ecr::kEmotionLabels[l]));
  m.attr("EMOTION_LABELS") = labels;
  m.attr("__version__") = ECR_VERSION;
  m.def("cuda_available", &ecr::cuda::available,
        "True when this build has the CUDA backend and a device answers: device=\"cuda\" can then run.");

  bind_dialog(m);
  bind_bundle(m);
  bind_text_stream(m);
  bind_models(m);
  bind_llm(m);
}
