#include "server.hpp"

#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <exception>
#include <filesystem>
#include <memory>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "cli/input.hpp"
#include "cli/listening.hpp"
#include "cli/output.hpp"
#include "batcher.hpp"
#include "ecr/core/utf8.hpp"
#include "metrics.hpp"
#include "sessions.hpp"

namespace ecr::server {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// {"error": {"type", "message", "field"}}: the OpenAI shape, with the field at fault.
json error_json(std::string_view type, std::string_view message, std::string_view field = "") {
  json e = {{"type", type}, {"message", message}};
  if (!field.empty()) e["field"] = field;
  return {{"error", std::move(e)}};
}

void send_json(httplib::Response& res, const json& body, int status = 200) {
  res.status = status;
  res.set_content(cli::json_text(body), "application/json");
}

// The status and body for what a handler threw: the client's fault is a 4xx naming it; anything
// else is the server's (500), its message kept.
void send_exception(httplib::Response& res, std::exception_ptr thrown) {
  try {
    std::rethrow_exception(thrown);
  } catch (const RequestError& e) {
    if (e.status() == 503) res.set_header("Retry-After", "1");
    send_json(res, error_json(e.status() == 503 ? "unavailable" : "invalid_request", e.what(), e.field()), e.status());
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::input)
      send_json(res, error_json("invalid_request", e.what()), 400);
    else
      send_json(res, error_json("server_error", e.what()), 500);
  } catch (const std::exception& e) {
    send_json(res, error_json("server_error", e.what()), 500);
  }
}

bool wants_stream(const httplib::Request& req) {
  return req.get_header_value("Accept").find("text/event-stream") != std::string::npos;
}

// One Server-Sent Event: an optional event name, then the JSON on one `data:` line (dump() escapes
// every newline inside strings, so the line cannot break).
std::string sse_event(std::string_view event, const json& data) {
  std::string s = event.empty() ? "" : fmt::format("event: {}\n", event);
  return s + "data: " + cli::json_text(data) + "\n\n";
}

std::string random_hex(std::size_t words) {
  std::random_device device;
  std::string s;
  for (std::size_t i = 0; i < words; ++i) s += fmt::format("{:08x}", device());
  return s;
}

bool same_key(std::string_view given, std::string_view key) {
  // Every byte of the key is compared whatever the first difference: the time taken does not
  // tell a client how much of its guess was right.
  unsigned char diff = given.size() == key.size() ? 0 : 1;
  for (std::size_t i = 0; i < key.size(); ++i)
    diff |= static_cast<unsigned char>(key[i] ^ (i < given.size() ? given[i] : 0));
  return diff == 0;
}

// The reply's stream, stopped at the request's deadline: the piece that reaches it is still passed
// on, and the decoding ends after it (Response::reply_stop is then `callback`).
ReplyStream until_deadline(Clock::time_point deadline, ReplyStream stream) {
  return [deadline, stream = std::move(stream)](std::string_view piece) {
    const bool go_on = !stream || stream(piece);
    return go_on && Clock::now() < deadline;
  };
}

// OpenAI's finish_reason, and ours for the other routes: "stop" (the reply ended), "length" (it
// took all of max_new_tokens) or "deadline" (cut at the request's deadline).
std::string_view finish_reason(const Response& response, Clock::time_point deadline) {
  switch (response.reply_stop) {
    case lm::StopReason::max_new_tokens: return "length";
    case lm::StopReason::callback: return Clock::now() >= deadline ? "deadline" : "stop";
    case lm::StopReason::stop_token: break;
  }
  return "stop";
}

// OpenAI's finish_reason has no "deadline": a reply cut there is "length" (cut short), as the
// clients that check it expect; the "ecr" field keeps ours.
std::string_view openai_finish_reason(std::string_view ours) { return ours == "deadline" ? "length" : ours; }

class Service {
 public:
  explicit Service(const ServeOptions& options)
      : options_(options),
        conversation_(cli::open_conversation(options.conversation)),
        admission_(options.workers, options.queue),
        sessions_(options.max_sessions, options.session_idle),
        openapi_(openapi_json(options.limits, conversation_.recommender.graph().pad_entity() - 1)) {
    if (options.batch > 1) batcher_.emplace(conversation_.responder, options.batch, options.batch_wait);
  }

  void install(httplib::Server& http);

 private:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  // Times the handler, turns what it throws into a JSON error, and counts the answer under `route`.
  Handler route(std::string name, Handler handler);

  json parse_body(const httplib::Request& req) const;
  Dialog dialog_from(const json& body) const;
  Clock::time_point deadline() const { return Clock::now() + options_.request_timeout; }
  // A worker for the request, waiting in the queue until `deadline` at most (503 past it).
  Admission::Ticket admit(Clock::time_point deadline);
  // A turn's recommendation, computed by the handler before any response starts: what the
  // recommender finds wrong with the dialog is then a 400, not an error event in a stream that
  // has already said 200.
  std::shared_ptr<Responder::Turn> recommend_turn(const Dialog& dialog) const;
  // The turn's reply until `deadline`, counting its tokens. Without a stream the reply goes
  // through the batcher (when --batch is over 1): a stream writes to its client from the thread
  // that decodes, which a batch would hold up.
  const Responder::Turn& reply(const Dialog& dialog, Responder::Turn& turn, const ReplyStream& stream,
                               Clock::time_point deadline);
  Responder::Turn session_turn(Dialog& dialog, std::string text, const ReplyStream& stream, Clock::time_point deadline);

  // The body of a respond-like route: `run` computes the turn with a stream of pieces; `finish`
  // makes the final JSON. Without Accept: text/event-stream the JSON is the response; with it
  // each piece is an event {"piece"} and the JSON follows as event "result".
  using Run = std::function<Responder::Turn(const ReplyStream&)>;
  using Finish = std::function<json(const Responder::Turn&)>;
  void answer(const httplib::Request& req, httplib::Response& res, Run run, Finish finish);

  void health(const httplib::Request&, httplib::Response& res);
  void recommend(const httplib::Request& req, httplib::Response& res);
  void respond(const httplib::Request& req, httplib::Response& res);
  void create_session(const httplib::Request& req, httplib::Response& res);
  void get_session(const httplib::Request& req, httplib::Response& res);
  void delete_session(const httplib::Request& req, httplib::Response& res);
  void take_turn(const httplib::Request& req, httplib::Response& res);
  void chat_completions(const httplib::Request& req, httplib::Response& res);
  void metrics(const httplib::Request&, httplib::Response& res);

  const ServeOptions& options_;
  const cli::Conversation conversation_;
  Admission admission_;
  SessionStore sessions_;
  Metrics metrics_;
  std::optional<ReplyBatcher> batcher_;
  const std::string openapi_;
};

Service::Handler Service::route(std::string name, Handler handler) {
  return [this, name = std::move(name), handler = std::move(handler)](const httplib::Request& req,
                                                                      httplib::Response& res) {
    const auto start = Clock::now();
    res.status = 200;
    try {
      handler(req, res);
    } catch (...) {
      send_exception(res, std::current_exception());
    }
    metrics_.request(name, res.status, seconds_since(start));
  };
}

json Service::parse_body(const httplib::Request& req) const {
  if (req.body.empty()) throw RequestError(400, "", "the request has no body; a JSON object was expected");
  try {
    json body = cli::parse_json(req.body, "request body");
    if (!body.is_object()) throw RequestError(400, "", "the request body must be a JSON object");
    return body;
  } catch (const RequestError&) {
    throw;
  } catch (const InputError& e) {
    throw RequestError(400, "", e.what());
  }
}

Dialog Service::dialog_from(const json& body) const {
  check_dialog(body, options_.limits);
  return Dialog::from_json(body);  // InputError naming the field: 400
}

Admission::Ticket Service::admit(Clock::time_point deadline) {
  std::optional<Admission::Ticket> ticket = admission_.enter(deadline);
  if (!ticket && Clock::now() >= deadline)
    throw RequestError(503, "", fmt::format("no worker was free within the request's {} ms (--request-timeout); try again",
                                            options_.request_timeout.count()));
  if (!ticket)
    throw RequestError(503, "", fmt::format("all {} workers are busy and {} requests wait; try again", options_.workers,
                                            options_.queue));
  return std::move(*ticket);
}

std::shared_ptr<Responder::Turn> Service::recommend_turn(const Dialog& dialog) const {
  auto turn = std::make_shared<Responder::Turn>();
  turn->recommendation = conversation_.recommender.recommend(dialog, conversation_.request);
  return turn;
}

const Responder::Turn& Service::reply(const Dialog& dialog, Responder::Turn& turn, const ReplyStream& stream,
                                      Clock::time_point deadline) {
  const auto start = Clock::now();
  turn.response = batcher_ && !stream
                      ? batcher_->respond(dialog, turn.recommendation, until_deadline(deadline, {}), admission_.running() > 1)
                      : conversation_.responder.respond(dialog, turn.recommendation, until_deadline(deadline, stream));
  metrics_.generated(turn.response.reply_ids.size(), seconds_since(start));
  return turn;
}

Responder::Turn Service::session_turn(Dialog& dialog, std::string text, const ReplyStream& stream,
                                      Clock::time_point deadline) {
  const auto start = Clock::now();
  Responder::Turn turn = cli::converse_turn(conversation_, dialog, std::move(text), {}, until_deadline(deadline, stream));
  metrics_.generated(turn.response.reply_ids.size(), seconds_since(start));
  return turn;
}

void Service::answer(const httplib::Request& req, httplib::Response& res, Run run, Finish finish) {
  if (!wants_stream(req)) {
    send_json(res, finish(run({})));
    return;
  }
  // The provider runs after the handler returns, on the same connection's thread: `run` carries
  // the ticket and whatever it checked out until then.
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream", [run = std::move(run), finish = std::move(finish)](std::size_t, httplib::DataSink& sink) {
        const auto send = [&](std::string_view event, const json& data) {
          const std::string text = sse_event(event, data);
          return sink.write(text.data(), text.size());
        };
        try {
          // A client that went away stops the decoding at its next piece.
          const Responder::Turn turn = run([&](std::string_view piece) { return send("", {{"piece", piece}}); });
          send("result", finish(turn));
        } catch (const std::exception& e) {
          send("error", error_json(dynamic_cast<const InputError*>(&e) ? "invalid_request" : "server_error", e.what()));
        }
        sink.done();
        return true;
      });
}

void Service::health(const httplib::Request&, httplib::Response& res) {
  send_json(res, {{"status", "ok"},
                  {"bundle", std::filesystem::path(conversation_.bundle.label()).filename().string()},  // not where it lies
                  {"items", conversation_.recommender.graph().items().size()},
                  {"untrained", conversation_.untrained}});
}

void Service::recommend(const httplib::Request& req, httplib::Response& res) {
  const auto until = deadline();
  const Dialog dialog = dialog_from(parse_body(req));
  const Admission::Ticket ticket = admit(until);
  json out = cli::recommendation_json(conversation_.recommender.recommend(dialog, conversation_.request));
  out["untrained"] = conversation_.untrained;
  send_json(res, out);
}

void Service::respond(const httplib::Request& req, httplib::Response& res) {
  const auto until = deadline();
  auto dialog = std::make_shared<const Dialog>(dialog_from(parse_body(req)));
  auto ticket = std::make_shared<Admission::Ticket>(admit(until));
  answer(
      req, res,
      [this, dialog, ticket, until, turn = recommend_turn(*dialog)](const ReplyStream& stream) {
        return reply(*dialog, *turn, stream, until);
      },
      [this, until](const Responder::Turn& turn) {
        json out = cli::turn_json(conversation_, turn);
        out["finish_reason"] = finish_reason(turn.response, until);
        return out;
      });
}

void Service::create_session(const httplib::Request&, httplib::Response& res) {
  const std::string id = sessions_.create(Clock::now());
  send_json(res, {{"id", id}, {"turns", json::array()}, {"idle_seconds", options_.session_idle.count()}}, 201);
}

std::string session_id(const httplib::Request& req) {
  return req.matches.size() > 1 ? req.matches[1].str() : std::string();
}

RequestError unknown_session(const std::string& id) {
  return RequestError(404, "id", fmt::format("no session '{}' (never created, expired or evicted)", printable(id)));
}

void Service::get_session(const httplib::Request& req, httplib::Response& res) {
  const std::string id = session_id(req);
  const std::optional<Dialog> dialog = sessions_.get(id, Clock::now());
  if (!dialog) throw unknown_session(id);
  send_json(res, {{"id", id}, {"turns", dialog->to_json()["turns"]}});
}

void Service::delete_session(const httplib::Request& req, httplib::Response& res) {
  const std::string id = session_id(req);
  if (!sessions_.erase(id)) throw unknown_session(id);
  res.status = 204;
}

void Service::take_turn(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req);
  if (!body.contains("text") || !body["text"].is_string())
    throw RequestError(400, "text", "the body must be {\"text\": string}: the user's turn");
  std::string text = body["text"].get<std::string>();
  check_text(text, "text", options_.limits);
  if (!is_valid_utf8(text)) throw RequestError(400, "text", "text is not valid UTF-8");
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) throw RequestError(400, "text", "text is empty");

  const std::string id = session_id(req);
  const auto until = deadline();
  auto ticket = std::make_shared<Admission::Ticket>(admit(until));
  std::optional<Dialog> kept = sessions_.checkout(id, Clock::now());
  if (!kept) throw unknown_session(id);
  // Checked out until the turn ends, streamed or not: checked in with the turn, or as it was.
  struct Lease {
    SessionStore& store;
    std::string id;
    Dialog dialog;
    bool done = false;
    ~Lease() {
      if (!done) store.release(id, Clock::now());
    }
  };
  auto lease = std::make_shared<Lease>(Lease{sessions_, id, std::move(*kept)});
  if (lease->dialog.turns.size() + 2 > options_.limits.max_turns)
    throw RequestError(400, "turns",
                       fmt::format("session {} has {} turns; at most {} are kept", id, lease->dialog.turns.size(),
                                   options_.limits.max_turns));
  answer(
      req, res,
      [this, lease, ticket, until, text = std::move(text)](const ReplyStream& stream) {
        Responder::Turn turn = session_turn(lease->dialog, text, stream, until);
        sessions_.checkin(lease->id, lease->dialog, Clock::now());
        lease->done = true;
        return turn;
      },
      [this, lease, until](const Responder::Turn& turn) {
        json out = cli::turn_json(conversation_, turn);
        out["finish_reason"] = finish_reason(turn.response, until);
        out["session"] = lease->id;
        out["turns"] = lease->dialog.turns.size();
        return out;
      });
}

// OpenAI's chat messages as a Dialog: "user" turns are the user's, "assistant" turns the
// system's; "system" messages (instructions to a general model) have no part in ECR's dialog.
Dialog dialog_from_messages(const json& body, const Limits& limits) {
  if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty())
    throw RequestError(400, "messages", "messages must be a non-empty array of {\"role\", \"content\"}");
  const json& messages = body["messages"];
  if (messages.size() > limits.max_turns)
    throw RequestError(400, "messages",
                       fmt::format("messages has {} entries; at most {} are taken", messages.size(), limits.max_turns));
  Dialog dialog;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string at = fmt::format("messages[{}]", i);
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw RequestError(400, at + ".role", at + " must be an object with a string role");
    if (!m.contains("content") || !m["content"].is_string())
      throw RequestError(400, at + ".content", at + ".content must be a string");
    const std::string& role = m["role"].get_ref<const std::string&>();
    const std::string& content = m["content"].get_ref<const std::string&>();
    check_text(content, at + ".content", limits);
    if (!is_valid_utf8(content)) throw RequestError(400, at + ".content", at + ".content is not valid UTF-8");
    if (role == "system" || role == "developer") continue;
    if (role != "user" && role != "assistant")
      throw RequestError(400, at + ".role",
                         fmt::format("{}.role is '{}'; user, assistant or system were expected", at, printable(role)));
    dialog.add_turn({role == "user" ? Role::user : Role::system, content, {}, {}});
  }
  if (dialog.turns.empty()) throw RequestError(400, "messages", "messages has no user or assistant message");
  return dialog;
}

void Service::chat_completions(const httplib::Request& req, httplib::Response& res) {
  const auto until = deadline();
  const json body = parse_body(req);
  auto dialog = std::make_shared<const Dialog>(dialog_from_messages(body, options_.limits));
  if (body.contains("stream") && !body["stream"].is_boolean())
    throw RequestError(400, "stream", "stream must be true or false");
  const bool stream = body.value("stream", false);
  const std::string model = body.contains("model") && body["model"].is_string() ? body["model"].get<std::string>()
                                                                               : "ecr";
  const std::string id = "chatcmpl-" + random_hex(3);
  const std::time_t created = std::time(nullptr);
  auto ticket = std::make_shared<Admission::Ticket>(admit(until));
  const auto usage = [](const Responder::Turn& turn) {
    const std::size_t prompt = turn.response.prompt_ids.size(), completion = turn.response.reply_ids.size();
    return json{{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
  };
  const std::shared_ptr<Responder::Turn> turn = recommend_turn(*dialog);
  if (!stream) {
    const Responder::Turn& answered = reply(*dialog, *turn, {}, until);
    const std::string_view finish = finish_reason(answered.response, until);
    json ecr = cli::turn_json(conversation_, answered);
    ecr["finish_reason"] = finish;
    send_json(res, {{"id", id},
                    {"object", "chat.completion"},
                    {"created", created},
                    {"model", model},
                    {"choices", json::array({{{"index", 0},
                                              {"message", {{"role", "assistant"}, {"content", answered.response.text}}},
                                              {"finish_reason", openai_finish_reason(finish)}}})},
                    {"usage", usage(answered)},
                    {"ecr", std::move(ecr)}});
    return;
  }
  // OpenAI's stream: chunks whose deltas add up to the message (the role first), a last chunk
  // with finish_reason (here with the "ecr" results too), then [DONE].
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [this, dialog, ticket, id, created, model, usage,
                                                         until, turn](std::size_t, httplib::DataSink& sink) {
    const auto chunk = [&](json delta, json finish_reason) {
      return json{{"id", id},
                  {"object", "chat.completion.chunk"},
                  {"created", created},
                  {"model", model},
                  {"choices", json::array({{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", finish_reason}}})}};
    };
    const auto send = [&](const json& data) {
      const std::string text = sse_event("", data);
      return sink.write(text.data(), text.size());
    };
    try {
      send(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
      const Responder::Turn& answered = reply(*dialog, *turn, [&](std::string_view piece) { return send(chunk({{"content", piece}}, nullptr)); }, until);
      const std::string_view finish = finish_reason(answered.response, until);
      json last = chunk(json::object(), openai_finish_reason(finish));
      last["usage"] = usage(answered);
      last["ecr"] = cli::turn_json(conversation_, answered);
      last["ecr"]["finish_reason"] = finish;
      send(last);
    } catch (const std::exception& e) {
      send(error_json(dynamic_cast<const InputError*>(&e) ? "invalid_request" : "server_error", e.what()));
    }
    const std::string done = "data: [DONE]\n\n";
    sink.write(done.data(), done.size());
    sink.done();
    return true;
  });
}

void Service::metrics(const httplib::Request&, httplib::Response& res) {
  const std::string gauges = fmt::format(
      "# HELP ecr_queue_depth Requests waiting for a worker.\n# TYPE ecr_queue_depth gauge\necr_queue_depth {}\n"
      "# HELP ecr_requests_running Requests running the models.\n# TYPE ecr_requests_running gauge\n"
      "ecr_requests_running {}\n"
      "# HELP ecr_workers Requests that may run the models at once.\n# TYPE ecr_workers gauge\necr_workers {}\n"
      "# HELP ecr_sessions Sessions kept.\n# TYPE ecr_sessions gauge\necr_sessions {}\n"
      "# HELP ecr_sessions_evicted_total Sessions evicted to make room for new ones.\n"
      "# TYPE ecr_sessions_evicted_total counter\necr_sessions_evicted_total {}\n"
      "# HELP ecr_sessions_expired_total Sessions dropped after their idle time.\n"
      "# TYPE ecr_sessions_expired_total counter\necr_sessions_expired_total {}\n"
      "# HELP ecr_reply_batches_total Batches of replies decoded together (--batch).\n"
      "# TYPE ecr_reply_batches_total counter\necr_reply_batches_total {}\n"
      "# HELP ecr_batched_replies_total Replies written in those batches.\n"
      "# TYPE ecr_batched_replies_total counter\necr_batched_replies_total {}\n",
      admission_.waiting(), admission_.running(), options_.workers, sessions_.size(), sessions_.evicted(),
      sessions_.expired(), batcher_ ? batcher_->batches() : 0, batcher_ ? batcher_->replies() : 0);
  res.set_content(metrics_.text(gauges), "text/plain; version=0.0.4");
}

void Service::install(httplib::Server& http) {
  const auto bind = [this](void (Service::*method)(const httplib::Request&, httplib::Response&)) {
    return [this, method](const httplib::Request& req, httplib::Response& res) { (this->*method)(req, res); };
  };
  http.Get("/health", route("/health", bind(&Service::health)));
  http.Post("/v1/recommend", route("/v1/recommend", bind(&Service::recommend)));
  http.Post("/v1/respond", route("/v1/respond", bind(&Service::respond)));
  http.Post("/v1/sessions", route("/v1/sessions", bind(&Service::create_session)));
  http.Get(R"(/v1/sessions/([0-9a-f]{1,64}))", route("/v1/sessions/{id}", bind(&Service::get_session)));
  http.Delete(R"(/v1/sessions/([0-9a-f]{1,64}))", route("/v1/sessions/{id}", bind(&Service::delete_session)));
  http.Post(R"(/v1/sessions/([0-9a-f]{1,64})/turns)", route("/v1/sessions/{id}/turns", bind(&Service::take_turn)));
  http.Post("/v1/chat/completions", route("/v1/chat/completions", bind(&Service::chat_completions)));
  http.Get("/metrics", route("/metrics", bind(&Service::metrics)));
  http.Get("/openapi.json", route("/openapi.json", [this](const httplib::Request&, httplib::Response& res) {
             res.set_content(openapi_, "application/json");
           }));
  // The page's one file, by name: no path reaches the file system.
  const auto page = route("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(index_html()), "text/html; charset=utf-8");
    res.set_header("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'");
  });
  http.Get("/", page);
  http.Get("/index.html", page);

  // Bearer auth before routing, on every route but the probe and the page (which asks for the key).
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!options_.api_key || req.method == "OPTIONS" || req.path == "/health" || req.path == "/" ||
        req.path == "/index.html")
      return httplib::Server::HandlerResponse::Unhandled;
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.starts_with(kBearer) && same_key(std::string_view(header).substr(kBearer.size()), *options_.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    send_json(res, error_json("unauthorized", "a valid 'Authorization: Bearer <key>' header is required"), 401);
    metrics_.request("unauthorized", 401, 0);
    return httplib::Server::HandlerResponse::Handled;
  });
  // What no handler answered (no route, a body over the limit, a request httplib could not read)
  // gets a JSON body too.
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.is_chunked_content_provider_) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 413)
      send_json(res, error_json("invalid_request",
                                fmt::format("the body is over {} bytes", options_.limits.max_body_bytes), "body"),
                413);
    else if (res.status == 404)
      send_json(res, error_json("not_found", fmt::format("no route {} {}", req.method, printable(req.path))), 404);
    else
      send_json(res, error_json("invalid_request", fmt::format("the request could not be read (HTTP {})", res.status)),
                res.status);
    metrics_.request("other", res.status, 0);
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr thrown) {
    send_exception(res, thrown);
  });
  if (options_.cors_origin) {
    const std::string origin = *options_.cors_origin;
    http.set_post_routing_handler([origin](const httplib::Request&, httplib::Response& res) {
      res.set_header("Access-Control-Allow-Origin", origin);
      res.set_header("Vary", "Origin");
    });
    http.Options(R"(/.*)", [](const httplib::Request&, httplib::Response& res) {
      res.status = 204;
      res.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
      res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept");
      res.set_header("Access-Control-Max-Age", "600");
    });
  }
  http.set_payload_max_length(options_.limits.max_body_bytes);
  // A response's header and body go out as separate writes: with Nagle's algorithm the body would
  // wait for the client's delayed ACK of the header (about 40 ms a request).
  http.set_tcp_nodelay(true);
  // Enough connection threads for every worker and every queued request, and a few more so that
  // probes and scrapes are answered while the workers are busy.
  const std::size_t connections = options_.workers + options_.queue + 4;
  http.new_task_queue = [connections] { return new httplib::ThreadPool(connections); };
}

}  // namespace

bool is_loopback(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  in_addr address{};
  return ::inet_pton(AF_INET, std::string(host).c_str(), &address) == 1 && (ntohl(address.s_addr) >> 24) == 127;
}

int serve(const ServeOptions& options) {
  if (!is_loopback(options.host) && !options.api_key)
    fail<ConfigError>("--host {} is reachable from other machines: give --api-key KEY (clients then send "
                      "'Authorization: Bearer KEY'), or bind 127.0.0.1",
                      printable(options.host));
  // SIGTERM and SIGINT go to one thread that stops the server; every other thread blocks them
  // (the mask is inherited by the threads made below).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Service service(options);
  httplib::Server http;
  service.install(http);
  int port = options.port;
  if (port == 0)
    port = http.bind_to_any_port(options.host);
  else if (!http.bind_to_port(options.host, port))
    port = -1;
  if (port < 0) fail<IoError>("cannot listen on {}:{} (in use, or not an address of this machine)", printable(options.host), options.port);
  fmt::print("ecr serve: listening on http://{}:{}/ ({} workers, queue {})\n", options.host, port, options.workers,
             options.queue);
  std::fflush(stdout);

  std::atomic<bool> listening_ended = false;
  std::thread stopper([&] {
    const timespec tick{0, 200'000'000};
    while (!listening_ended) {
      if (sigtimedwait(&stop_signals, nullptr, &tick) > 0) {
        http.stop();  // closes the listening socket; the connections finish their requests
        return;
      }
    }
  });
  const bool served = http.listen_after_bind();
  listening_ended = true;
  stopper.join();
  if (!served && http.is_valid()) fail<IoError>("listening on {}:{} failed", printable(options.host), port);
  fmt::print("ecr serve: stopped\n");
  return 0;
}

}  // namespace ecr::server
