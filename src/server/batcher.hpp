// Replies of requests that run at the same time, decoded together: each worker that has a reply
// to write joins the open batch; the first to join waits up to `wait` for others (at most
// max_batch in all), then writes every reply of the batch with Responder::respond_batch, whose
// decoding steps read each weight matrix once for the whole batch, and hands each worker its own.
// No thread of its own: the first worker of a batch does the work while the others wait.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <vector>

#include "ecr/responder.hpp"

namespace ecr::server {

class ReplyBatcher {
 public:
  ReplyBatcher(const Responder& responder, std::size_t max_batch, std::chrono::microseconds wait)
      : responder_(responder), max_batch_(max_batch), wait_(wait) {}

  // This dialog's reply, as responder.respond(dialog, recommendation, stream) gives it (up to the
  // float rounding of batched decoding); `stream` runs on the thread that writes the batch, so it
  // must not block. A request whose reply fails throws its own error; the others still get theirs.
  // `company`: other requests are running and may join; without it the first of a batch does
  // not wait (a lone request pays no --batch-wait).
  Response respond(const Dialog& dialog, const Recommendation& recommendation, ReplyStream stream, bool company = true);

  // Since start: the batches written and the replies in them (/metrics).
  std::uint64_t batches() const { return batches_; }
  std::uint64_t replies() const { return replies_; }

 private:
  struct Job {
    const Dialog* dialog;
    const Recommendation* recommendation;
    ReplyStream stream;
    std::optional<Response> response;
    std::exception_ptr error;
    bool done = false;
  };
  void write(std::vector<Job*>& batch) const;

  const Responder& responder_;
  const std::size_t max_batch_;
  const std::chrono::microseconds wait_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Job*> open_;  // the batch that is still taking jobs; its first job's worker writes it
  std::atomic<std::uint64_t> batches_ = 0, replies_ = 0;
};

}  // namespace ecr::server
