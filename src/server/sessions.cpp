#include "sessions.hpp"

#include <random>

#include <fmt/format.h>

#include "limits.hpp"

namespace ecr::server {

namespace {

std::string random_id() {
  std::random_device device;  // the OS's entropy: ids are bearer names of a dialog
  std::string id;
  for (int i = 0; i < 4; ++i) id += fmt::format("{:08x}", device());
  return id;
}

}  // namespace

SessionStore::SessionStore(std::size_t max_sessions, Clock::duration idle, std::function<std::string()> make_id)
    : max_sessions_(max_sessions), idle_(idle), make_id_(make_id ? std::move(make_id) : random_id) {}

void SessionStore::expire(Clock::time_point now) {
  // lru_ is in order of last use: the expired sessions are at its end.
  while (!lru_.empty()) {
    const auto found = sessions_.find(lru_.back());
    if (found->second.busy || now - found->second.last_used < idle_) break;
    sessions_.erase(found);
    lru_.pop_back();
    ++expired_;
  }
}

SessionStore::Entry* SessionStore::touch(const std::string& id, Clock::time_point now) {
  expire(now);
  const auto found = sessions_.find(id);
  if (found == sessions_.end()) return nullptr;
  Entry& e = found->second;
  e.last_used = now;
  lru_.splice(lru_.begin(), lru_, e.position);
  return &e;
}

std::string SessionStore::create(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  expire(now);
  if (sessions_.size() >= max_sessions_) {
    auto victim = lru_.end();
    for (auto it = lru_.rbegin(); it != lru_.rend(); ++it)
      if (!sessions_.at(*it).busy) {
        victim = std::prev(it.base());
        break;
      }
    if (victim == lru_.end())
      throw RequestError(503, "", fmt::format("all {} sessions are taking a turn; try again", max_sessions_));
    sessions_.erase(*victim);
    lru_.erase(victim);
    ++evicted_;
  }
  std::string id = make_id_();
  while (sessions_.contains(id)) id = make_id_();
  lru_.push_front(id);
  sessions_.emplace(id, Entry{Dialog{}, now, false, lru_.begin()});
  return id;
}

std::optional<Dialog> SessionStore::checkout(const std::string& id, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  Entry* e = touch(id, now);
  if (!e) return std::nullopt;
  if (e->busy) throw RequestError(409, "", fmt::format("session {} is taking another turn", id));
  e->busy = true;
  return e->dialog;
}

void SessionStore::checkin(const std::string& id, Dialog dialog, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (Entry* e = touch(id, now)) {
    e->dialog = std::move(dialog);
    e->busy = false;
  }
}

void SessionStore::release(const std::string& id, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (Entry* e = touch(id, now)) e->busy = false;
}

std::optional<Dialog> SessionStore::get(const std::string& id, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (Entry* e = touch(id, now)) return e->dialog;
  return std::nullopt;
}

bool SessionStore::erase(const std::string& id) {
  std::lock_guard lock(mutex_);
  const auto found = sessions_.find(id);
  if (found == sessions_.end()) return false;
  lru_.erase(found->second.position);
  sessions_.erase(found);
  return true;
}

std::size_t SessionStore::size() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::uint64_t SessionStore::evicted() const {
  std::lock_guard lock(mutex_);
  return evicted_;
}

std::uint64_t SessionStore::expired() const {
  std::lock_guard lock(mutex_);
  return expired_;
}

}  // namespace ecr::server
