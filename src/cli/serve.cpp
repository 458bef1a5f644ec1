// `ecr serve`: the command line of the HTTP server (src/server/server.hpp); this file only reads
// the options.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include <fmt/format.h>

#include "commands.hpp"
#include "conversation.hpp"
#include "ecr/core/error.hpp"
#include "server/server.hpp"

namespace ecr::cli {

namespace {

std::size_t count_option(const Args& args, const char* name, long long min, long long max) {
  const long long v = args.get_int(name);
  if (v < min || v > max) fail<UsageError>("--{} must be {} to {}, got {}", name, min, max, v);
  return static_cast<std::size_t>(v);
}

}  // namespace

int serve(const Argv& argv) {
  Args args("ecr serve [--host 127.0.0.1] [--port 8080] [--bundle BUNDLE] [options]",
            "Serves a bundle over HTTP: /v1/recommend and /v1/respond take the dialog JSON of `ecr recommend` and\n"
            "answer with its --json (the reply streams as Server-Sent Events on Accept: text/event-stream),\n"
            "/v1/sessions keeps dialogs as `ecr chat` does, /v1/chat/completions speaks OpenAI's chat shape, and\n"
            "/ is a chat page. Also /health, /metrics (Prometheus) and /openapi.json. One engine serves every\n"
            "request; --workers of them run at once, --queue more wait, and the rest are refused (503). It binds\n"
            "127.0.0.1 unless told otherwise, and any other address needs --api-key. SIGTERM or SIGINT stop it\n"
            "after the requests in flight (exit 0). docs/serve.md has the details.");
  declare_conversation_options(args);
  args.option("host", "ADDR", "address to listen on (anything but loopback needs --api-key)", "127.0.0.1")
      .option("port", "PORT", "port to listen on (0: any free one, printed)", "8080")
      .option("api-key", "KEY", "require 'Authorization: Bearer KEY' on every route but /health and /")
      .option("cors", "ORIGIN", "allow this origin's pages to call the API (default: no CORS headers)")
      .option("workers", "N", "requests that run the models at once", "2")
      .option("queue", "N", "requests that wait for a worker; more get 503 with Retry-After", "16")
      .option("request-timeout", "SECONDS", "a request's deadline from arrival: one still queued then gets 503, and a "
              "reply being written stops (finish_reason \"deadline\")", "60")
      .option("batch", "N", "non-streamed replies of requests running at once decoded together, at most N "
              "(1: each alone); docs/serve.md", "1")
      .option("batch-wait", "MS", "how long a batch's first reply waits for others", "5")
      .option("max-sessions", "N", "sessions kept; a new one evicts the least recently used", "1000")
      .option("session-idle", "SECONDS", "a session unused this long is dropped", "1800")
      .option("max-body", "BYTES", "largest request body (413 past it)", "1048576")
      .option("max-turns", "N", "most turns of a dialog, a session or a chat's messages", "256")
      .option("max-text", "BYTES", "longest text of one turn", "4096");
  if (!args.parse(argv)) return 0;
  server::ServeOptions o;
  o.conversation = conversation_options(args);
  o.host = args.get("host");
  o.port = static_cast<int>(count_option(args, "port", 0, 65535));
  if (args.has("api-key")) {
    o.api_key = args.get("api-key");
    if (o.api_key->empty()) fail<UsageError>("--api-key must not be empty");
  }
  if (args.has("cors")) o.cors_origin = args.get("cors");
  o.workers = count_option(args, "workers", 1, 1024);
  o.queue = count_option(args, "queue", 0, 65536);
  const double timeout = args.get_double("request-timeout");
  if (!(timeout > 0 && timeout <= 24 * 3600))
    fail<UsageError>("--request-timeout must be over 0 and at most a day (86400 s), got {}", timeout);
  o.request_timeout = std::chrono::milliseconds(std::max<long long>(1, std::llround(timeout * 1000)));
  o.batch = count_option(args, "batch", 1, 64);
  o.batch_wait = std::chrono::milliseconds(count_option(args, "batch-wait", 0, 1000));
  o.max_sessions = count_option(args, "max-sessions", 1, 10'000'000);
  o.session_idle = std::chrono::seconds(count_option(args, "session-idle", 1, 365LL * 24 * 3600));
  o.limits.max_body_bytes = count_option(args, "max-body", 1, std::int64_t{1} << 32);
  o.limits.max_turns = count_option(args, "max-turns", 2, 1'000'000);
  o.limits.max_text_bytes = count_option(args, "max-text", 1, std::int64_t{1} << 26);
  if (!server::is_loopback(o.host) && !o.api_key)
    fail<UsageError>("--host {} is reachable from other machines: give --api-key KEY (clients then send "
                     "'Authorization: Bearer KEY'), or bind 127.0.0.1",
                     o.host);
  return server::serve(o);
}

}  // namespace ecr::cli
