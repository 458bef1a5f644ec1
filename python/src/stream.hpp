// ecr.TextStream: text decoded on a worker thread and handed to Python piece by piece. The
// Responder's reply stream (models.cpp) and the Llama models' generation stream (llm.cpp) both
// run on it: the job gets a sink for its pieces, the worker runs it without the GIL, and
// __next__ waits for the next piece (waking now and then so that Ctrl-C reaches Python).
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <pybind11/pybind11.h>

namespace ecr::python {

namespace py = pybind11;

class TextStream {
 public:
  // Takes a piece; returns false once the stream is closed (the job should then stop).
  using Sink = std::function<bool(std::string_view)>;
  // Starts `job` on a worker thread. What it throws is raised by next() after the pieces it gave.
  explicit TextStream(std::function<void(const Sink&)> job);
  TextStream(const TextStream&) = delete;
  TextStream& operator=(const TextStream&) = delete;
  ~TextStream() { close(); }

  // The next piece; StopIteration once the job is done, or its error.
  py::str next();
  // Stops the job at its next piece and waits for the worker.
  void close();

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<std::string> pieces;
    bool done = false, cancelled = false;
    std::exception_ptr error;
  };
  // Python threads sharing the stream may all come here: one joins, the others wait for it.
  void join();

  std::shared_ptr<State> state_;
  std::mutex join_mutex_;
  std::thread worker_;
};

void bind_text_stream(py::module_& m);

}  // namespace ecr::python
