"""`ecr serve` over real HTTP: every route, the SSE framing, sessions, limits, auth, CORS, the 4xx
answers to bad input, the metrics, the OpenAPI document and a graceful SIGTERM.

Each server runs the shipped bundle (models/ecr-redial-small.ecr) on a free port (`--port 0`, the
port read from its first line). Only the standard library talks to it (http.client), so what is
checked is the wire itself. ctest sets ECR_CLI and ECR_SOURCE_DIR (tests/CMakeLists.txt).
"""

import http.client
import json
import os
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

SOURCE = Path(os.environ.get("ECR_SOURCE_DIR", Path(__file__).resolve().parents[1]))
CLI = os.environ.get("ECR_CLI", str(SOURCE / "build" / "src" / "ecr"))
BUNDLE = SOURCE / "models" / "ecr-redial-small.ecr"
# Short replies keep the suite quick; the limits are small so that passing them is cheap.
LIMITS = ["--max-body", "65536", "--max-turns", "8", "--max-text", "512", "--max-new-tokens", "24"]
DIALOG = {"turns": [{"role": "user", "text": "I loved The Shining (1980). Any horror movies like it?"}]}


class Server:
    # ECR's GPT-2 generator unless asked otherwise: an installed LLM (ECR_LLM, build/models) would
    # otherwise write the replies ("auto"), and the tests would check another model.
    def __init__(self, *args, generator="gpt2"):
        if not BUNDLE.exists():
            pytest.skip(f"needs the shipped bundle, absent at {BUNDLE}")
        self.proc = subprocess.Popen([CLI, "serve", "--port", "0", "--bundle", str(BUNDLE), "--generator", generator,
                                      *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)
        line = self.proc.stdout.readline() if ready else ""
        if "listening on http://" not in line:
            self.proc.kill()
            raise AssertionError(f"ecr serve did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.split("http://127.0.0.1:")[1].split("/")[0])

    def request(self, method, path, body=None, headers=None, timeout=120):
        """(status, headers, body bytes); a dict body is sent as JSON."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=headers or {})
        res = conn.getresponse()
        data = res.read()
        conn.close()
        return res.status, res.headers, data

    def json(self, method, path, body=None, headers=None):
        status, hdrs, data = self.request(method, path, body, headers)
        assert hdrs.get("Content-Type", "").startswith("application/json"), (status, data[:200])
        return status, json.loads(data)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise


@pytest.fixture(scope="module")
def server():
    s = Server("--max-sessions", "3", *LIMITS)
    yield s
    s.stop()
    assert s.proc.returncode == 0


@pytest.fixture(scope="module")
def openapi(server):
    status, doc = server.json("GET", "/openapi.json")
    assert status == 200
    return doc


def schema(doc, name):
    return doc["components"]["schemas"][name]


def check_required(doc, name, value):
    """Every key the OpenAPI schema `name` requires is in `value` (allOf followed)."""
    s = schema(doc, name)
    parts = s.get("allOf", [s])
    for part in parts:
        if "$ref" in part:
            check_required(doc, part["$ref"].rsplit("/", 1)[1], value)
        for key in part.get("required", []):
            assert key in value, f"{name} requires {key!r}; the response has {sorted(value)}"


def sse_events(data):
    """The events of an SSE body: [(event name or None, parsed data)], checking the framing:
    blocks end with a blank line and each has exactly one `data:` line of JSON."""
    text = data.decode("utf-8")
    assert text.endswith("\n\n"), text[-80:]
    events = []
    for block in text[:-2].split("\n\n"):
        lines = block.split("\n")
        names = [l[len("event: "):] for l in lines if l.startswith("event: ")]
        datas = [l[len("data: "):] for l in lines if l.startswith("data: ")]
        assert len(datas) == 1 and len(lines) == len(names) + 1, block
        events.append((names[0] if names else None, datas[0]))
    return events


def stream(server, path, body):
    status, headers, data = server.request("POST", path, body, {"Accept": "text/event-stream"})
    assert status == 200, data[:300]
    assert headers["Content-Type"].startswith("text/event-stream")
    return [(name, json.loads(d)) for name, d in sse_events(data)]


def test_health(server, openapi):
    status, body = server.json("GET", "/health")
    assert status == 200 and body["status"] == "ok" and body["items"] > 1000
    assert "/" not in body["bundle"], "the bundle's name, not where it lies"
    check_required(openapi, "Health", body)


def test_recommend_answers_as_the_cli(server, openapi):
    status, body = server.json("POST", "/v1/recommend", DIALOG)
    assert status == 200
    check_required(openapi, "Recommendation", body)
    cli = subprocess.run([CLI, "recommend", "--bundle", str(BUNDLE), "--top-k", "5", "--json", "-"],
                         input=json.dumps(DIALOG), capture_output=True, text=True, check=True)
    expected = json.loads(cli.stdout)
    assert [i["id"] for i in body["items"]] == [i["id"] for i in expected["items"]]
    assert body["user_emotions"] == expected["user_emotions"]
    assert body["feedback"] == expected["feedback"]


def test_respond_json(server, openapi):
    status, body = server.json("POST", "/v1/respond", DIALOG)
    assert status == 200
    check_required(openapi, "Turn", body)
    assert body["reply"] and body["items"]
    check_required(openapi, "Item", body["items"][0])


def test_respond_streams_pieces_that_add_up_to_the_reply(server):
    events = stream(server, "/v1/respond", DIALOG)
    pieces = [d["piece"] for name, d in events if name is None]
    assert len(pieces) > 1
    name, result = events[-1]
    assert name == "result" and all(n is None for n, _ in events[:-1])
    assert "".join(pieces) == result["reply"]
    status, plain = server.json("POST", "/v1/respond", DIALOG)
    assert plain["reply"] == result["reply"]  # greedy: the same reply either way


def test_sessions_keep_the_dialog(server, openapi):
    status, session = server.json("POST", "/v1/sessions")
    assert status == 201
    check_required(openapi, "Session", session)
    sid = session["id"]
    status, first = server.json("POST", f"/v1/sessions/{sid}/turns", {"text": DIALOG["turns"][0]["text"]})
    assert status == 200, first
    check_required(openapi, "SessionTurn", first)
    assert first["turns"] == 2 and first["session"] == sid
    top = first["items"][0]
    # A movie mentioned in the dialog is not recommended again.
    events = stream(server, f"/v1/sessions/{sid}/turns", {"text": f"I have seen {top['name']} already."})
    name, second = events[-1]
    assert name == "result" and second["turns"] == 4
    assert "".join(d["piece"] for n, d in events if n is None) == second["reply"]
    assert top["id"] not in [i["id"] for i in second["items"]]
    status, kept = server.json("GET", f"/v1/sessions/{sid}")
    assert status == 200 and [t["role"] for t in kept["turns"]] == ["user", "system", "user", "system"]
    assert kept["turns"][2]["text"] == f"I have seen {top['name']} already."
    assert top["id"] in kept["turns"][2]["entities"]
    status, _, _ = server.request("DELETE", f"/v1/sessions/{sid}")
    assert status == 204
    status, err = server.json("GET", f"/v1/sessions/{sid}")
    assert status == 404 and err["error"]["field"] == "id"


def test_unknown_session_is_404(server):
    for path in ("/v1/sessions/0123456789abcdef/turns", "/v1/sessions/not-an-id/turns",
                 "/v1/sessions/..%2f..%2fetc/turns"):
        status, err = server.json("POST", path, {"text": "hello"})
        assert status == 404 and "error" in err, path


def test_least_recently_used_session_is_evicted(server):
    ids = [server.json("POST", "/v1/sessions")[1]["id"] for _ in range(3)]
    assert server.json("GET", f"/v1/sessions/{ids[0]}")[0] == 200  # ids[1] is now the oldest
    newest = server.json("POST", "/v1/sessions")[1]["id"]  # --max-sessions 3
    assert server.json("GET", f"/v1/sessions/{ids[1]}")[0] == 404
    for sid in (ids[0], ids[2], newest):
        assert server.json("GET", f"/v1/sessions/{sid}")[0] == 200
    text = server.request("GET", "/metrics")[2].decode()
    assert int(metric(text, "ecr_sessions_evicted_total")) >= 1


def test_limits(server):
    status, err = server.json("POST", "/v1/recommend", "x" * 70000)
    assert status == 413 and err["error"]["field"] == "body"
    many = {"turns": [{"role": "user" if t % 2 == 0 else "system", "text": "hi"} for t in range(9)]}
    status, err = server.json("POST", "/v1/recommend", many)
    assert status == 400 and err["error"]["field"] == "turns"
    long = {"turns": [{"role": "user", "text": "a" * 513}]}
    status, err = server.json("POST", "/v1/respond", long)
    assert status == 400 and err["error"]["field"] == "turns[0].text"
    sid = server.json("POST", "/v1/sessions")[1]["id"]
    status, err = server.json("POST", f"/v1/sessions/{sid}/turns", {"text": "a" * 513})
    assert status == 400 and err["error"]["field"] == "text"
    status, err = server.json("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "a" * 513}]})
    assert status == 400 and err["error"]["field"] == "messages[0].content"


@pytest.mark.parametrize("body", [
    b"", b"{", b"[1, 2]", b'"turns"', b'{"turns": 3}', b'{"turns": [{"role": "robot", "text": "hi"}]}',
    b'{"turns": [{"role": "user", "text": 5}]}', b'{"turns": [{"role": "user", "text": "\xff\xfe"}]}',
    b'{"turns": [{"role": "user", "text": "hi", "entities": [-1]}]}', b'{"turns": []}',
    b'{"turns": [{"role": "user", "text": "hi", "emotions": {"sad": 0.5}}]}', b"[" * 10000,
])
def test_bad_dialogs_are_400_with_a_json_error(server, body):
    for path in ("/v1/recommend", "/v1/respond"):
        status, err = server.json("POST", path, body, {"Content-Type": "application/json"})
        assert status == 400, (path, body[:40], err)
        assert err["error"]["message"]


@pytest.mark.parametrize("body", [
    {}, {"text": 3}, {"text": ""}, {"texts": "hi"},
])
def test_bad_turns_are_400(server, body):
    sid = server.json("POST", "/v1/sessions")[1]["id"]
    status, err = server.json("POST", f"/v1/sessions/{sid}/turns", body)
    assert status == 400 and err["error"]["field"] == "text"


def test_unknown_routes_and_static_paths_are_404(server):
    for path in ("/nope", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/web/index.html", "/index.html/..",
                 "/v1/recommend/x"):
        status, err = server.json("GET", path)
        assert status == 404 and "error" in err, path


def test_page_is_the_compiled_in_file(server):
    status, headers, body = server.request("GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert body == (SOURCE / "src" / "server" / "web" / "index.html").read_bytes()
    assert server.request("GET", "/index.html")[2] == body
    assert b"http://" not in body and b"https://" not in body, "the page reaches no other host"


def test_chat_completions(server, openapi):
    messages = [{"role": "system", "content": "You recommend movies."},
                {"role": "user", "content": DIALOG["turns"][0]["text"]}]
    status, body = server.json("POST", "/v1/chat/completions", {"model": "ecr", "messages": messages})
    assert status == 200
    check_required(openapi, "ChatCompletion", body)
    assert body["object"] == "chat.completion"
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant" and message["content"] == body["ecr"]["reply"]
    assert body["ecr"]["items"] and body["usage"]["completion_tokens"] == len(body["ecr"]["reply_ids"])

    status, headers, data = server.request("POST", "/v1/chat/completions",
                                           {"model": "ecr", "messages": messages, "stream": True})
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(data)
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert content == message["content"] == chunks[-1]["ecr"]["reply"]


@pytest.mark.parametrize("body", [
    {}, {"messages": []}, {"messages": "hi"}, {"messages": [{"role": "user"}]},
    {"messages": [{"role": "user", "content": ["hi"]}]}, {"messages": [{"role": "tool", "content": "hi"}]},
    {"messages": [{"role": "system", "content": "only instructions"}]},
    {"messages": [{"role": "user", "content": "hi"}], "stream": "yes"},
])
def test_bad_chat_requests_are_400(server, body):
    status, err = server.json("POST", "/v1/chat/completions", body)
    assert status == 400 and err["error"]["message"], (body, err)


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_metrics_move(server):
    key = 'ecr_http_requests_total{route="/v1/recommend",status="200"}'
    missing = 'ecr_http_requests_total{route="other",status="404"}'
    before = server.request("GET", "/metrics")[2].decode()
    server.json("GET", "/nope")
    server.json("POST", "/v1/recommend", DIALOG)
    server.json("POST", "/v1/respond", DIALOG)
    status, headers, data = server.request("GET", "/metrics")
    after = data.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    count = lambda text, name: metric(text, name) if name + " " in text else 0
    assert count(after, key) == count(before, key) + 1
    assert count(after, missing) == count(before, missing) + 1
    assert metric(after, "ecr_generated_tokens_total") > metric(before, "ecr_generated_tokens_total")
    assert metric(after, "ecr_tokens_per_second") > 0
    assert metric(after, "ecr_queue_depth") == 0
    assert 'ecr_http_request_duration_seconds_bucket{route="/v1/recommend",le="+Inf"}' in after


def test_openapi_names_every_route(openapi):
    assert openapi["openapi"].startswith("3.")
    paths = openapi["paths"]
    for path, methods in {"/health": ["get"], "/v1/recommend": ["post"], "/v1/respond": ["post"],
                          "/v1/sessions": ["post"], "/v1/sessions/{id}": ["get", "delete"],
                          "/v1/sessions/{id}/turns": ["post"], "/v1/chat/completions": ["post"],
                          "/metrics": ["get"], "/openapi.json": ["get"], "/": ["get"]}.items():
        assert path in paths and all(m in paths[path] for m in methods), path


def test_no_cors_headers_by_default(server):
    status, headers, _ = server.request("GET", "/health", headers={"Origin": "https://example.org"})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    status, headers, _ = server.request("OPTIONS", "/v1/recommend", headers={"Origin": "https://example.org"})
    assert "Access-Control-Allow-Origin" not in headers


def test_api_key_and_cors():
    s = Server("--api-key", "s3cret", "--cors", "https://app.example", *LIMITS)
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                        {"Authorization": "Bearer s3cret2"}):
            status, err = s.json("POST", "/v1/recommend", DIALOG, headers)
            assert status == 401 and err["error"]["type"] == "unauthorized", headers
            assert s.json("GET", "/metrics", None, headers)[0] == 401
        status, body = s.json("POST", "/v1/recommend", DIALOG, {"Authorization": "Bearer s3cret"})
        assert status == 200 and body["items"]
        assert s.json("GET", "/health")[0] == 200  # probes need no key
        status, headers, _ = s.request("GET", "/health")
        assert headers["Access-Control-Allow-Origin"] == "https://app.example"
        status, headers, _ = s.request("OPTIONS", "/v1/recommend", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        assert status == 204 and "Authorization" in headers["Access-Control-Allow-Headers"]
    finally:
        s.stop()
    assert s.proc.returncode == 0


def test_non_loopback_bind_needs_a_key():
    done = subprocess.run([CLI, "serve", "--host", "0.0.0.0", "--port", "0", "--bundle", str(BUNDLE)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--api-key" in done.stderr, done.stderr


def test_requests_beyond_the_queue_get_503():
    s = Server("--workers", "1", "--queue", "0", "--max-new-tokens", "150", "--no-repeat-ngram", "0")
    try:
        for _ in range(5):
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
            conn.request("POST", "/v1/respond", body=json.dumps(DIALOG), headers={"Accept": "text/event-stream"})
            res = conn.getresponse()
            assert res.status == 200
            res.readline()  # the first piece: the one worker is busy until the stream ends
            status, headers, data = s.request("POST", "/v1/recommend", DIALOG)
            rest = res.read().decode()
            conn.close()
            if status == 503:
                assert headers["Retry-After"] == "1" and json.loads(data)["error"]["type"] == "unavailable"
                assert "event: result" in rest  # the running request was not disturbed
                return
            assert status == 200
        pytest.fail("no 503 while the only worker was streaming")
    finally:
        s.stop()


def test_sigterm_finishes_the_request_in_flight_then_exits_0():
    s = Server("--max-new-tokens", "150", "--no-repeat-ngram", "0")
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
    conn.request("POST", "/v1/respond", body=json.dumps(DIALOG), headers={"Accept": "text/event-stream"})
    res = conn.getresponse()
    assert res.readline().startswith(b"data: ")
    s.proc.send_signal(signal.SIGTERM)
    rest = res.read().decode()
    assert "event: result" in rest, rest[-300:]
    assert s.proc.wait(30) == 0
    assert "stopped" in s.proc.stdout.read()
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", s.port, timeout=5).request("GET", "/health")


def scrape(server, name):
    return metric(server.request("GET", "/metrics")[2].decode(), name)


def test_a_reply_stops_at_the_request_deadline(server):
    status, full = server.json("POST", "/v1/respond", DIALOG)
    assert status == 200 and full["finish_reason"] in ("stop", "length")
    # A deadline of 1 ms, passed while the request recommends: the reply stops after its first piece.
    s = Server("--request-timeout", "0.001", *LIMITS)
    try:
        status, turn = s.json("POST", "/v1/respond", DIALOG)
        assert status == 200 and turn["finish_reason"] == "deadline"
        assert 0 < len(turn["reply_ids"]) < len(full["reply_ids"]) and turn["reply"].strip()
        assert full["reply_ids"][:len(turn["reply_ids"])] == turn["reply_ids"]
        assert turn["items"] == full["items"]  # the recommendation is whole
        events = stream(s, "/v1/respond", DIALOG)
        assert events[-1][0] == "result" and events[-1][1]["finish_reason"] == "deadline"
        assert "".join(d["piece"] for _, d in events[:-1]) == events[-1][1]["reply"]
        # OpenAI's field has no "deadline": the reply was cut short ("length"); ecr's says why.
        status, body = s.json("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]})
        assert status == 200 and body["choices"][0]["finish_reason"] == "length"
        assert body["ecr"]["finish_reason"] == "deadline"
    finally:
        s.stop()


def test_a_request_still_queued_at_its_deadline_gets_503():
    s = Server("--workers", "1", "--queue", "8", "--request-timeout", "0.005", *LIMITS)
    try:
        answers = [None] * 6

        def ask(i):
            answers[i] = s.request("POST", "/v1/respond", DIALOG)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(answers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(a[0] for a in answers)
        # The one worker runs a request until its deadline; those behind it reach theirs queued.
        assert statuses.count(503) >= 1 and set(statuses) <= {200, 503}, statuses
        for status, headers, data in answers:
            body = json.loads(data)
            if status == 503:
                assert headers["Retry-After"] == "1" and "--request-timeout" in body["error"]["message"]
            else:
                assert body["finish_reason"] == "deadline"
    finally:
        s.stop()


def test_concurrent_replies_batched_are_the_replies_alone(server):
    dialogs = [{"turns": [{"role": "user", "text": text}]} for text in
               ("I loved The Shining (1980). Any horror movies like it?", "Something funny with Jim Carrey?",
                "I want an animated movie for my kids.", "Any good science fiction?")]
    alone = []
    for d in dialogs:
        status, turn = server.json("POST", "/v1/respond", d)
        assert status == 200
        alone.append(turn)
    # Four workers, batches of up to 4; the first waits up to 1 s for the others to finish
    # recommending, so that the four replies are decoded together.
    s = Server("--workers", "4", "--batch", "4", "--batch-wait", "1000", *LIMITS)
    try:
        answers = [None] * len(dialogs)

        def ask(i):
            answers[i] = s.json("POST", "/v1/respond", dialogs[i])

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(dialogs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for (status, turn), one in zip(answers, alone):
            assert status == 200
            assert turn["reply_ids"] == one["reply_ids"] and turn["reply"] == one["reply"]
            assert turn["finish_reason"] == one["finish_reason"]
        batches, replies = scrape(s, "ecr_reply_batches_total"), scrape(s, "ecr_batched_replies_total")
        assert replies == len(dialogs) and batches < replies, (batches, replies)
        # Streamed replies are not batched.
        events = stream(s, "/v1/respond", dialogs[0])
        assert events[-1][1]["reply_ids"] == alone[0]["reply_ids"]
        assert scrape(s, "ecr_batched_replies_total") == replies
    finally:
        s.stop()
