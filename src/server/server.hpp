// `ecr serve`: an HTTP front for one loaded engine, built on the public API (ecr/recommender.hpp,
// ecr/responder.hpp) and the `ecr` tool's own JSON for dialogs in and results out (src/cli), so a
// host gets over HTTP exactly what `ecr recommend --json` and `ecr respond --json` print.
//
//   GET  /health                    the bundle is loaded and the server answers (probes)
//   POST /v1/recommend              Dialog JSON -> `ecr recommend --json`
//   POST /v1/respond                Dialog JSON -> `ecr respond --json`; with Accept:
//                                   text/event-stream the reply's pieces as Server-Sent Events
//   POST /v1/sessions               a dialog kept by the server (sessions.hpp)
//   GET|DELETE /v1/sessions/{id}
//   POST /v1/sessions/{id}/turns    {"text"} -> one turn of `ecr chat`, streamed as above on request
//   POST /v1/chat/completions       the OpenAI chat shape, ECR's results in an extra "ecr" field
//   GET  /metrics, /openapi.json, /  Prometheus text, the API's description, the chat page
//
// Safe by default: it binds the loopback interface; a bearer key is required on any other
// (startup refuses without one) and, once set, on every route but /health and the page; every
// bad request is a 4xx with a JSON error naming the field; CORS headers only for --cors's origin.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "cli/conversation.hpp"
#include "limits.hpp"

namespace ecr::server {

struct ServeOptions {
  // The bundle, the engine's threads and device, and the reply's decoding: as `ecr chat` takes them.
  cli::ConversationOptions conversation;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (the one taken is printed)
  std::optional<std::string> api_key;
  std::optional<std::string> cors_origin;
  std::size_t workers = 2;  // requests that run the models at once, over the one engine
  std::size_t queue = 16;   // requests that wait for a worker; more are refused (503)
  // A request's time from arrival: past it a request still waiting for a worker is refused (503),
  // and a reply being written stops at its next piece (finish_reason "deadline").
  std::chrono::milliseconds request_timeout{60'000};
  // Replies of requests that run at once (non-streamed /v1/respond and /v1/chat/completions)
  // decoded together through Responder::respond_batch, at most `batch` of them, the first
  // waiting up to batch_wait for the others; 1: each alone.
  std::size_t batch = 1;
  std::chrono::microseconds batch_wait{5'000};
  std::size_t max_sessions = 1000;
  std::chrono::seconds session_idle{1800};
  Limits limits;
};

// 127.0.0.0/8, ::1 and "localhost": a bind that other machines cannot reach.
bool is_loopback(std::string_view host);

// Loads the bundle, listens, and serves until SIGTERM or SIGINT; then it stops accepting, lets the
// requests in flight finish and returns 0. ConfigError for a non-loopback host without a key,
// IoError when the address cannot be bound.
int serve(const ServeOptions& options);

// The OpenAPI 3 document of the routes above (openapi.cpp), with these limits and entity ids up
// to max_entity.
std::string openapi_json(const Limits& limits, std::int64_t max_entity);
// The chat page (web/index.html, compiled in).
std::string_view index_html();

}  // namespace ecr::server
