#include "stream.hpp"

#include <chrono>
#include <optional>
#include <utility>

namespace ecr::python {

TextStream::TextStream(std::function<void(const Sink&)> job) : state_(std::make_shared<State>()) {
  worker_ = std::thread([state = state_, job = std::move(job)] {
    try {
      job([&](std::string_view piece) {
        std::lock_guard lock(state->mutex);
        if (state->cancelled) return false;
        if (!piece.empty()) state->pieces.emplace_back(piece);
        state->wake.notify_all();
        return true;
      });
    } catch (...) {
      std::lock_guard lock(state->mutex);
      state->error = std::current_exception();
    }
    std::lock_guard lock(state->mutex);
    state->done = true;
    state->wake.notify_all();
  });
}

py::str TextStream::next() {
  for (;;) {
    std::optional<std::string> piece;
    bool finished = false;
    {
      py::gil_scoped_release unlocked;
      std::unique_lock lock(state_->mutex);
      state_->wake.wait_for(lock, std::chrono::milliseconds(100),
                            [&] { return !state_->pieces.empty() || state_->done; });
      if (!state_->pieces.empty()) {
        piece = std::move(state_->pieces.front());
        state_->pieces.pop_front();
      } else {
        finished = state_->done;
      }
    }
    if (piece) return py::str(*piece);
    if (finished) {
      join();
      if (state_->error) std::rethrow_exception(std::exchange(state_->error, nullptr));
      throw py::stop_iteration();
    }
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }
}

void TextStream::close() {
  {
    std::lock_guard lock(state_->mutex);
    state_->cancelled = true;
  }
  join();
}

void TextStream::join() {
  py::gil_scoped_release unlocked;
  std::lock_guard lock(join_mutex_);
  if (worker_.joinable()) worker_.join();
}

void bind_text_stream(py::module_& m) {
  py::class_<TextStream>(m, "TextStream", R"doc(
Text as it decodes: iterate for the pieces (whole UTF-8 characters that add up to the text);
close() (or leaving a with block) stops the decoding early.)doc")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &TextStream::next)
      .def("close", &TextStream::close)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](TextStream& s, py::args) { s.close(); });
}

}  // namespace ecr::python
