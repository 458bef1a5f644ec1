"""Load on `ecr serve`: requests/s and p50/p99 latency of POST /v1/recommend at several numbers of
concurrent connections (each a keep-alive client sending one request after another), the tokens/s
of streamed replies (POST /v1/respond, Accept: text/event-stream), the same for non-streamed
replies (the ones --batch decodes together), and the server's resident memory (VmRSS, VmHWM)
after the load. Standard library only.

    /usr/bin/python3 benchmarks/bench_serve.py [--cli build/src/ecr] [--seconds 10]
        [--connections 1,8,64] [--stream-connections 1,8] [--respond-connections 8]
        [-- SERVE OPTIONS...]

It starts `ecr serve --port 0` with the shipped bundle and the options after `--` (default:
--workers 2 --queue 64 --generator gpt2), and stops it with SIGTERM at the end. An empty list
skips its table.
"""

import argparse
import http.client
import json
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1]
DIALOG = json.dumps({"turns": [{"role": "user", "text": "I loved The Shining (1980). Any horror movies like it?"}]})


def start(cli, extra):
    proc = subprocess.Popen([cli, "serve", "--port", "0", "--bundle", str(SOURCE / "models" / "ecr-redial-small.ecr"),
                             *extra], stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline() if ready else ""
    if "listening on http://" not in line:
        proc.kill()
        sys.exit(f"ecr serve did not start: {line!r}")
    return proc, int(line.split("http://127.0.0.1:")[1].split("/")[0])


def memory(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def load(port, connections, seconds, path, headers, on_response):
    """Each connection sends requests until `seconds` pass; returns (latencies, statuses)."""
    latencies, statuses, lock = [], {}, threading.Lock()
    deadline = time.monotonic() + seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while time.monotonic() < deadline:
            start = time.monotonic()
            conn.request("POST", path, body=DIALOG, headers=headers)
            res = conn.getresponse()
            body = res.read()
            took = time.monotonic() - start
            with lock:
                statuses[res.status] = statuses.get(res.status, 0) + 1
                if res.status == 200:
                    latencies.append(took)
                    on_response(body, took)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(connections)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, statuses, time.monotonic() - began


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


def counts(text):
    return [int(n) for n in text.split(",") if n]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cli", default=str(SOURCE / "build" / "src" / "ecr"))
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", default="1,8,64")
    parser.add_argument("--stream-connections", default="1,8")
    parser.add_argument("--respond-connections", default="")
    parser.add_argument("serve", nargs="*", default=["--workers", "2", "--queue", "64", "--generator", "gpt2"])
    args = parser.parse_args()
    proc, port = start(args.cli, args.serve)
    try:
        print(f"ecr serve {' '.join(args.serve)}; {args.seconds:g} s per row\n")
        print("| route | connections | requests/s | p50 ms | p99 ms | statuses |\n|---|---|---|---|---|---|")
        for n in counts(args.connections):
            lat, statuses, took = load(port, n, args.seconds, "/v1/recommend", {}, lambda body, t: None)
            print(f"| /v1/recommend | {n} | {len(lat) / took:.1f} | {percentile(lat, 50) * 1000:.0f} | "
                  f"{percentile(lat, 99) * 1000:.0f} | {statuses} |", flush=True)
        print("\n| route | connections | replies/s | reply tokens/s (all connections) | p50 s | statuses |\n"
              "|---|---|---|---|---|---|")
        for streamed, lists in ((True, args.stream_connections), (False, args.respond_connections)):
            for n in counts(lists):
                tokens = [0]

                def count(body, took):
                    result = body.decode().split("event: result\ndata: ")[1].split("\n")[0] if streamed else body
                    tokens[0] += len(json.loads(result)["reply_ids"])

                lat, statuses, took = load(port, n, args.seconds, "/v1/respond",
                                           {"Accept": "text/event-stream"} if streamed else {}, count)
                print(f"| /v1/respond{' (SSE)' if streamed else ''} | {n} | {len(lat) / took:.2f} | "
                      f"{tokens[0] / took:.1f} | {percentile(lat, 50):.2f} | {statuses} |", flush=True)
        mem = memory(proc.pid)
        print(f"\nserver memory after the load: VmRSS {mem['VmRSS']:.0f} MiB, peak (VmHWM) {mem['VmHWM']:.0f} MiB")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


if __name__ == "__main__":
    main()
