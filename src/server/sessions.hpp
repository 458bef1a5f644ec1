// The dialogs `ecr serve` keeps for its sessions (POST /v1/sessions, /v1/sessions/{id}/turns):
// at most max_sessions of them, each dropped after `idle` without a turn, and the least recently
// used one evicted when a new session needs its place. A session takes one turn at a time: its
// dialog is checked out for the turn and checked in with the turn added.
// Time comes in as an argument, so that expiry and eviction are tested without waiting.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "ecr/dialog.hpp"

namespace ecr::server {

class SessionStore {
 public:
  using Clock = std::chrono::steady_clock;

  // `make_id` names new sessions (default: 128 random bits in hex, unguessable by other clients).
  SessionStore(std::size_t max_sessions, Clock::duration idle, std::function<std::string()> make_id = {});

  // A new, empty session; the least recently used idle session makes room when max_sessions are
  // kept (RequestError 503 when every one is taking a turn).
  std::string create(Clock::time_point now);
  // The session's dialog for one turn, or nullopt for an id that is unknown or has expired.
  // RequestError 409 while the session takes another turn.
  std::optional<Dialog> checkout(const std::string& id, Clock::time_point now);
  // The turn is done: `dialog` becomes the session's (unless it was deleted meanwhile).
  void checkin(const std::string& id, Dialog dialog, Clock::time_point now);
  // The turn failed: the session keeps its dialog.
  void release(const std::string& id, Clock::time_point now);
  // A copy of the dialog (nullopt: unknown or expired); counts as a use.
  std::optional<Dialog> get(const std::string& id, Clock::time_point now);
  bool erase(const std::string& id);

  std::size_t size() const;
  std::uint64_t evicted() const;  // by LRU, since start
  std::uint64_t expired() const;  // by idle time, since start

 private:
  struct Entry {
    Dialog dialog;
    Clock::time_point last_used;
    bool busy = false;
    std::list<std::string>::iterator position;  // in lru_
  };
  void expire(Clock::time_point now);
  Entry* touch(const std::string& id, Clock::time_point now);

  const std::size_t max_sessions_;
  const Clock::duration idle_;
  std::function<std::string()> make_id_;
  mutable std::mutex mutex_;
  std::list<std::string> lru_;  // most recently used first
  std::unordered_map<std::string, Entry> sessions_;
  std::uint64_t evicted_ = 0, expired_ = 0;
};

}  // namespace ecr::server
