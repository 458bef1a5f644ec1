// What `ecr serve` takes from one request, and what it does with a request it cannot take: every
// refusal is a RequestError, whose status and field the JSON error body carries.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <condition_variable>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "ecr/core/error.hpp"

namespace ecr::server {

// A request refused with an HTTP status; `field` names the part of the body at fault ("" when
// the body as a whole is).
class RequestError : public InputError {
 public:
  RequestError(int status, std::string field, std::string message)
      : InputError(std::move(message)), status_(status), field_(std::move(field)) {}
  int status() const { return status_; }
  const std::string& field() const { return field_; }

 private:
  int status_;
  std::string field_;
};

struct Limits {
  std::size_t max_body_bytes = std::size_t{1} << 20;  // 413 past it
  std::size_t max_turns = 256;                         // turns of a dialog or a session
  std::size_t max_text_bytes = 4096;                   // one turn's text
};

// 400 naming the field unless `dialog` (Dialog JSON) has at most max_turns turns, each text at most
// max_text_bytes. The types are Dialog::from_json's to check; only what it would accept is measured.
void check_dialog(const nlohmann::json& dialog, const Limits& limits);
// 400 naming `field` when `text` is over max_text_bytes.
void check_text(const std::string& text, std::string_view field, const Limits& limits);

// The worker pool's gate over the one loaded engine: at most `workers` requests run the models at
// once and at most `queue` more wait for a turn; a request beyond both is refused at once (503), so
// a burst costs memory and latency that are bounded.
class Admission {
 public:
  Admission(std::size_t workers, std::size_t queue) : workers_(workers), queue_(queue) {}

  // Held while a request runs the models; releases its worker when destroyed.
  class Ticket {
   public:
    explicit Ticket(Admission* gate) : gate_(gate) {}
    Ticket(Ticket&& o) noexcept : gate_(std::exchange(o.gate_, nullptr)) {}
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    Ticket& operator=(Ticket&&) = delete;
    ~Ticket() {
      if (gate_) gate_->release();
    }

   private:
    Admission* gate_;
  };

  // A ticket once a worker is free; nullopt without waiting when the queue is full too, and
  // nullopt when `deadline` passes before a worker is free.
  std::optional<Ticket> enter(
      std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max());
  std::size_t running() const;
  std::size_t waiting() const;

 private:
  void release();

  const std::size_t workers_, queue_;
  mutable std::mutex mutex_;
  std::condition_variable free_;
  std::size_t running_ = 0, waiting_ = 0;
};

}  // namespace ecr::server
