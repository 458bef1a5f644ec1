// The parts of `ecr serve` that need no network (src/server): the session store's expiry and
// least-recently-used eviction, the request limits, and the worker pool's admission. The routes
// are tested over real HTTP by tests/test_serve.py.
#include <atomic>
#include <chrono>
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "server/limits.hpp"
#include "server/sessions.hpp"
#include "support.hpp"

using namespace ecr;
using namespace ecr::server;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// Ids "s0", "s1", ... in order of creation.
SessionStore numbered_store(std::size_t max_sessions, SessionStore::Clock::duration idle) {
  auto next = std::make_shared<int>(0);
  return SessionStore(max_sessions, idle, [next] { return "s" + std::to_string((*next)++); });
}

int status_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const RequestError& e) {
    return e.status();
  }
  return 0;
}

}  // namespace

TEST_CASE("session store: a new session past max_sessions evicts the least recently used") {
  const auto t0 = SessionStore::Clock::time_point{};
  SessionStore store = numbered_store(3, 1h);
  CHECK(store.create(t0) == "s0");
  CHECK(store.create(t0 + 1s) == "s1");
  CHECK(store.create(t0 + 2s) == "s2");
  CHECK(store.get("s0", t0 + 3s));  // s1 is now the least recently used
  CHECK(store.create(t0 + 4s) == "s3");
  CHECK(store.size() == 3);
  CHECK(store.evicted() == 1);
  CHECK_FALSE(store.get("s1", t0 + 5s));
  for (const char* kept : {"s0", "s2", "s3"}) CHECK_MESSAGE(store.get(kept, t0 + 5s), kept);
}

TEST_CASE("session store: a session idle for its time expires, a used one does not") {
  const auto t0 = SessionStore::Clock::time_point{};
  SessionStore store = numbered_store(10, 60s);
  store.create(t0);
  store.create(t0);
  CHECK(store.get("s1", t0 + 50s));
  CHECK_FALSE(store.get("s0", t0 + 61s));
  CHECK(store.get("s1", t0 + 61s));
  CHECK(store.expired() == 1);
  CHECK_FALSE(store.get("s1", t0 + 122s));
  CHECK(store.size() == 0);
}

TEST_CASE("session store: a turn checks the dialog out and in, and a second turn meanwhile is 409") {
  const auto t0 = SessionStore::Clock::time_point{};
  SessionStore store = numbered_store(1, 60s);
  const std::string id = store.create(t0);
  std::optional<Dialog> dialog = store.checkout(id, t0);
  REQUIRE(dialog);
  CHECK(status_of([&] { store.checkout(id, t0); }) == 409);
  // Busy sessions are neither evicted nor expired: a new one has no room.
  CHECK(status_of([&] { store.create(t0 + 120s); }) == 503);
  dialog->add_turn({Role::user, "hello", {}, {}});
  store.checkin(id, *dialog, t0 + 121s);
  CHECK(store.get(id, t0 + 122s)->turns.size() == 1);
  REQUIRE(store.checkout(id, t0 + 122s));
  store.release(id, t0 + 123s);  // a failed turn leaves the dialog as it was
  CHECK(store.get(id, t0 + 124s)->turns.size() == 1);
  CHECK_FALSE(store.checkout("nope", t0 + 124s));
  CHECK(store.erase(id));
  CHECK_FALSE(store.erase(id));
}

TEST_CASE("session store: random ids are 128 bits of hex and differ") {
  SessionStore store(4, 1h);
  const std::string a = store.create({}), b = store.create({});
  CHECK(a.size() == 32);
  CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a != b);
}

TEST_CASE("limits: turns and text past their limits are 400 naming the field") {
  Limits limits;
  limits.max_turns = 2;
  limits.max_text_bytes = 5;
  const auto refused_field = [&](const json& dialog) -> std::string {
    try {
      check_dialog(dialog, limits);
    } catch (const RequestError& e) {
      CHECK(e.status() == 400);
      return e.field();
    }
    return "";
  };
  CHECK(refused_field(json::parse(R"({"turns": [{"role": "user", "text": "hello"}]})")).empty());
  CHECK(refused_field(json::parse(R"({"turns": [{}, {}, {}]})")) == "turns");
  CHECK(refused_field(json::parse(R"({"turns": [{"text": "hi"}, {"text": "hello!"}]})")) == "turns[1].text");
  // Wrong types are Dialog::from_json's to name.
  CHECK(refused_field(json::parse(R"({"turns": 3})")).empty());
  CHECK(refused_field(json::parse(R"({"turns": [{"text": 12345678}]})")).empty());
  CHECK(status_of([&] { check_text("toolong", "text", limits); }) == 400);
}

TEST_CASE("admission: workers run, the queue waits, the rest are refused at once") {
  Admission gate(1, 1);
  std::optional<Admission::Ticket> first = gate.enter();
  REQUIRE(first);
  CHECK(gate.running() == 1);
  std::atomic<bool> second_ran = false;
  std::thread waiter([&] {
    const auto ticket = gate.enter();  // queued behind `first`
    second_ran = ticket.has_value();
  });
  while (gate.waiting() == 0) std::this_thread::yield();
  CHECK_FALSE(gate.enter());  // a worker busy and the queue full
  first.reset();
  waiter.join();
  CHECK(second_ran);
  CHECK(gate.running() == 0);
  CHECK(gate.waiting() == 0);
}

TEST_CASE("admission: a request waits for a worker until its deadline, then is refused") {
  Admission gate(1, 4);
  std::optional<Admission::Ticket> first = gate.enter();
  REQUIRE(first);
  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(gate.enter(start + std::chrono::milliseconds(50)));
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(50));
  CHECK(gate.waiting() == 0);  // it left the queue
  first.reset();
  CHECK(gate.enter(std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));  // a free worker: at once
}
