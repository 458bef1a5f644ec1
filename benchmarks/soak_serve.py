"""Soak of `ecr serve`: sessions churning against one server for --minutes, its resident memory
(VmRSS from /proc/PID/status) sampled every --every seconds. Memory must stay bounded: the last
minutes' samples no higher than the first minutes' plus a small margin.

    /usr/bin/python3 benchmarks/soak_serve.py [--cli build/src/ecr] [--minutes 10] [--every 10]
        [--clients 4] [--report FILE.md]

The server keeps at most 32 sessions, each dropped after 4 idle seconds, with short replies
(--max-new-tokens 16) and at most 8 turns a session; --clients threads each loop over:
  create a session, take 1-3 turns, then one of: delete it, read it back and delete it, or leave
  it to expire;
and every 20th loop also a turn on a session id that no longer exists (404), a one-shot
/v1/respond, and a burst of 10 sessions left alone, which pushes the store past its 32 so that
the least recently used are evicted. /metrics gives the session, eviction and expiry counts at each sample.
Standard library only; the shipped bundle with the GPT-2 generator (so that an installed LLM does
not change what is measured).
"""

import argparse
import http.client
import json
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import bench_serve  # start(): one `ecr serve` on a free port

SOURCE = Path(__file__).resolve().parents[1]
TEXTS = ["I loved The Shining (1980). Any horror movies like it?", "Something funny, maybe with Jim Carrey?",
         "I didn't like Titanic (1997) much.", "Do you know any good animated films?",
         "Thanks! What else would you suggest?"]


def start(cli):
    return bench_serve.start(cli, ["--generator", "gpt2", "--max-sessions", "32", "--session-idle", "4",
                                   "--max-new-tokens", "16", "--max-turns", "8", "--queue", "64"])


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method, path, body=None):
        """(status, body); a keep-alive connection the server closed while idle is opened anew once."""
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=json.dumps(body) if body is not None else None,
                                  headers={"Content-Type": "application/json"} if body is not None else {})
                res = self.conn.getresponse()
                return res.status, res.read()
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt:
                    raise


def churn(port, stop, counts, lock, seed):
    rng, client, loop = random.Random(seed), Client(port), 0
    while not stop.is_set():
        loop += 1
        done = {}

        def count(what, status):
            done[f"{what} {status}"] = done.get(f"{what} {status}", 0) + 1

        status, body = client.call("POST", "/v1/sessions", {})
        count("create", status)
        if status != 201:
            time.sleep(0.1)
        else:
            sid = json.loads(body)["id"]
            for _ in range(rng.randint(1, 3)):
                status, _ = client.call("POST", f"/v1/sessions/{sid}/turns", {"text": rng.choice(TEXTS)})
                count("turn", status)
            ending = rng.choice(["delete", "read+delete", "expire"])
            if ending == "delete":
                count("delete", client.call("DELETE", f"/v1/sessions/{sid}")[0])
            elif ending == "read+delete":
                count("read", client.call("GET", f"/v1/sessions/{sid}")[0])
                count("delete", client.call("DELETE", f"/v1/sessions/{sid}")[0])
            elif ending == "expire":
                time.sleep(rng.uniform(0, 1))
            if loop % 20 == 0:
                count("turn on a gone session", client.call("POST", "/v1/sessions/" + "0" * 32 + "/turns",
                                                            {"text": "hello"})[0])
                count("respond", client.call("POST", "/v1/respond", {"turns": [{"role": "user", "text": TEXTS[0]}]})[0])
                for _ in range(10):
                    count("create (burst)", client.call("POST", "/v1/sessions", {})[0])
        with lock:
            for k, v in done.items():
                counts[k] = counts.get(k, 0) + v


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cli", default=str(SOURCE / "build" / "src" / "ecr"))
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--every", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--report")
    args = parser.parse_args()
    proc, port = start(args.cli)
    stop, lock, counts = threading.Event(), threading.Lock(), {}
    threads = [threading.Thread(target=churn, args=(port, stop, counts, lock, seed)) for seed in range(args.clients)]
    samples = []  # (seconds, VmRSS MiB, sessions, evicted, expired)
    began = time.monotonic()
    for t in threads:
        t.start()
    probe = Client(port)
    try:
        while time.monotonic() - began < args.minutes * 60:
            time.sleep(args.every)
            _, text = probe.call("GET", "/metrics")
            text = text.decode()
            samples.append((time.monotonic() - began, rss_mib(proc.pid), metric(text, "ecr_sessions"),
                            metric(text, "ecr_sessions_evicted_total"), metric(text, "ecr_sessions_expired_total")))
            print("{:6.0f} s  VmRSS {:6.1f} MiB  sessions {:3.0f}  evicted {:5.0f}  expired {:5.0f}".format(*samples[-1]),
                  flush=True)
    finally:
        stop.set()
        for t in threads:
            t.join()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)

    lines = ["| minute | VmRSS min MiB | VmRSS max MiB | sessions kept (last sample) | evicted (total) | expired (total) |",
             "|---|---|---|---|---|---|"]
    for minute in range(int(args.minutes + 0.999)):
        rows = [s for s in samples if minute * 60 < s[0] <= (minute + 1) * 60]
        if rows:
            lines.append(f"| {minute + 1} | {min(r[1] for r in rows):.1f} | {max(r[1] for r in rows):.1f} | "
                         f"{rows[-1][2]:.0f} | {rows[-1][3]:.0f} | {rows[-1][4]:.0f} |")
    first = [s[1] for s in samples if s[0] <= 120]
    last = [s[1] for s in samples if s[0] > samples[-1][0] - 120]
    lines.append("")
    lines.append(f"VmRSS over the first two minutes: median {statistics.median(first):.1f} MiB, max {max(first):.1f}; "
                 f"over the last two: median {statistics.median(last):.1f} MiB, max {max(last):.1f}; "
                 f"server exit status {proc.returncode}.")
    lines.append("")
    lines.append("Requests (what, status: count): " +
                 ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    report = "\n".join(lines)
    print("\n" + report)
    if args.report:
        Path(args.report).write_text(report + "\n")
    errors = {k: v for k, v in counts.items() if k.split()[-1].startswith("5")}
    bounded = max(last) <= max(first) * 1.05 + 4
    if errors or not bounded or proc.returncode != 0:
        sys.exit(f"soak failed: 5xx {errors}, memory bounded {bounded}, exit {proc.returncode}")


if __name__ == "__main__":
    main()
