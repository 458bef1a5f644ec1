#include "limits.hpp"

#include <fmt/format.h>

namespace ecr::server {

void check_text(const std::string& text, std::string_view field, const Limits& limits) {
  if (text.size() > limits.max_text_bytes)
    throw RequestError(400, std::string(field),
                       fmt::format("{} has {} bytes; at most {} are taken", field, text.size(), limits.max_text_bytes));
}

void check_dialog(const nlohmann::json& dialog, const Limits& limits) {
  if (!dialog.is_object() || !dialog.contains("turns") || !dialog["turns"].is_array()) return;
  const auto& turns = dialog["turns"];
  if (turns.size() > limits.max_turns)
    throw RequestError(400, "turns",
                       fmt::format("turns has {} turns; at most {} are taken", turns.size(), limits.max_turns));
  for (std::size_t t = 0; t < turns.size(); ++t)
    if (turns[t].is_object() && turns[t].contains("text") && turns[t]["text"].is_string())
      check_text(turns[t]["text"].get_ref<const std::string&>(), fmt::format("turns[{}].text", t), limits);
}

std::optional<Admission::Ticket> Admission::enter(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  if (running_ >= workers_) {
    if (waiting_ >= queue_) return std::nullopt;
    ++waiting_;
    const bool free = free_.wait_until(lock, deadline, [&] { return running_ < workers_; });
    --waiting_;
    if (!free) return std::nullopt;
  }
  ++running_;
  return Ticket(this);
}

void Admission::release() {
  {
    std::lock_guard lock(mutex_);
    --running_;
  }
  free_.notify_one();
}

std::size_t Admission::running() const {
  std::lock_guard lock(mutex_);
  return running_;
}

std::size_t Admission::waiting() const {
  std::lock_guard lock(mutex_);
  return waiting_;
}

}  // namespace ecr::server
