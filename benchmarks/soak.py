#!/usr/bin/env python3
"""Soak test of `ecr`: memory and time on long dialogs, a long chat and many dialogs.

    soak.py --ecr BUILD/src/ecr [--bundle B.ecr] [--work DIR] [--chat-turns 1000]
            [--eval-dialogs 10000] [--report FILE.md]

Without --bundle it makes the tiny random bundle over the shared ReDial KG once, into --work
(tools.make_random_bundle --size tiny, every component, the emotion classifier included).
Three parts, each `ecr` run in its own process, peak resident memory (VmHWM) measured by the
kernel:

  recommend  `ecr recommend` on dialogs of 100, 1,000 and 10,000 user turns (each answered by a
             system turn; the classifier labels every user turn): peak memory and time. It must
             grow at most linearly with the turns.
  chat       `ecr chat --json` driven through a pipe for --chat-turns scripted turns: the time of
             each turn (recommend + reply) and the peak memory after 10%, 50% and 100% of them.
             A turn must cost the same at turn 1,000 as at turn 100.
  eval       `ecr eval` over 1,000 and --eval-dialogs ReDial dialogs (the shared test split,
             repeated under new ids): peak memory and time per sample.

Prints a table and, with --report, writes it as Markdown.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
sys.path.insert(0, ROOT)
from tools import module_command, module_env  # noqa: E402

USER_LINES = [
    "Hi! I love horror movies like The Shining (1980). Any suggestions?",
    "I also liked Halloween (1978), something more recent?",
    "Thanks! Could you suggest a funny comedy for the weekend?",
    "My kids loved Toy Story (1995), anything animated?",
    "I am in the mood for a thriller with a twist.",
    "Something with Tom Hanks maybe?",
    "That sounds great, I will watch it tonight.",
    "Not a fan of that one, it was too slow for me.",
]


def peak_kib(pid):
    """VmHWM of a running process, KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def measured(cmd, stdin=None):
    """Runs cmd in a child of a fresh Python, so that RUSAGE_CHILDREN is this command's alone:
    (exit code, seconds, peak KiB, stdout)."""
    wrapper = ("import resource, subprocess, sys, time, json\n"
               "t = time.perf_counter()\n"
               "p = subprocess.run(sys.argv[1:], stdin=sys.stdin, stdout=subprocess.PIPE)\n"
               "s = time.perf_counter() - t\n"
               "sys.stderr.write(json.dumps([p.returncode, s, "
               "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]) + '\\n')\n"
               "sys.stdout.buffer.write(p.stdout)\n")
    with open(stdin or os.devnull, "rb") as f:
        p = subprocess.run([sys.executable, "-c", wrapper] + cmd, stdin=f, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, check=False)
    last = p.stderr.decode().strip().splitlines()[-1]
    rc, seconds, kib = json.loads(last)
    if rc != 0:
        sys.exit(f"failed ({rc}): {' '.join(cmd)}\n{p.stderr.decode()[-2000:]}")
    return rc, seconds, kib, p.stdout


def make_bundle(work):
    bundle = os.path.join(work, "tiny.ecr")
    if not os.path.exists(bundle):
        kg = os.path.join(SHARED, "redial")
        subprocess.run(module_command("tools.make_random_bundle", "--out", bundle, "--size", "tiny", "--kg-dir", kg,
                                      "--dialogs", os.path.join(kg, "dialogs.jsonl"), "--seed", "3"),
                       check=True, env=module_env())
    return bundle


def long_dialog(path, user_turns):
    turns = []
    for t in range(user_turns):
        turns.append({"role": "user", "text": f"{USER_LINES[t % len(USER_LINES)]} (turn {t})"})
        turns.append({"role": "system", "text": "Have you seen Alien (1979)? It is a classic."})
    with open(path, "w") as f:
        json.dump({"turns": turns}, f)


def soak_recommend(ecr, bundle, work, rows):
    out = []
    for n in (100, 1000, 10000):
        path = os.path.join(work, f"dialog_{n}.json")
        long_dialog(path, n)
        _, seconds, kib, stdout = measured([ecr, "recommend", "--bundle", bundle, "--dialog", path, "--json"])
        result = json.loads(stdout)
        assert len(result["turns"]) == 2 * n and result["turns"][0]["emotions_from"] == "classifier"
        out.append({"user_turns": n, "seconds": seconds, "peak_mib": kib / 1024})
        rows.append(f"| recommend, {n:,} user turns | {kib / 1024:.0f} MiB | {seconds:.2f} s |")
    return out


def soak_chat(ecr, bundle, turns, rows):
    p = subprocess.Popen([ecr, "chat", "--bundle", bundle, "--json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, bufsize=1)
    times, peaks = [], {}
    marks = {max(1, turns // 10), max(1, turns // 2), turns}
    for t in range(1, turns + 1):
        start = time.perf_counter()
        p.stdin.write(USER_LINES[t % len(USER_LINES)] + "\n")
        p.stdin.flush()
        while True:
            line = p.stdout.readline()
            if not line:
                sys.exit(f"ecr chat ended at turn {t}: {p.stderr.read()[-2000:]}")
            if line.startswith("{"):
                break
        times.append(time.perf_counter() - start)
        if t in marks:
            peaks[t] = peak_kib(p.pid) / 1024
    p.stdin.write("/quit\n")
    p.stdin.close()
    if p.wait() != 0:
        sys.exit(f"ecr chat failed: {p.stderr.read()[-2000:]}")

    def window(a, b):
        return 1000 * statistics.mean(times[a:b])

    tenth = max(1, turns // 10)
    spans = [(0, tenth), (turns // 2 - tenth // 2, turns // 2 + tenth - tenth // 2), (turns - tenth, turns)]
    out = {"turns": turns, "ms_per_turn": {f"{a + 1}-{b}": window(a, b) for a, b in spans},
           "peak_mib": {str(k): v for k, v in sorted(peaks.items())}}
    for (a, b) in spans:
        rows.append(f"| chat, turns {a + 1:,}-{b:,} | {peaks.get(b, peaks[max(k for k in peaks if k <= b)]):.0f} MiB "
                    f"(after turn {max(k for k in peaks if k <= b):,}) | {window(a, b):.1f} ms per turn |")
    return out


def soak_eval(ecr, bundle, work, dialogs, rows):
    source = os.path.join(SHARED, "redial", "test_dialogs.jsonl")
    with open(source) as f:
        records = [json.loads(line) for line in f if line.strip()]
    out = []
    for n in sorted({min(1000, dialogs), dialogs}):
        path = os.path.join(work, f"dialogs_{n}.jsonl")
        with open(path, "w") as f:
            for i in range(n):
                r = dict(records[i % len(records)])
                r["conversationId"] = f"soak-{i}"
                f.write(json.dumps(r) + "\n")
        _, seconds, kib, stdout = measured([ecr, "eval", "--bundle", bundle, "--dialogs", path, "--limit", str(n)])
        first = stdout.decode().splitlines()[0]
        samples = int(first.split(" samples")[0].split(", ")[-1])
        out.append({"dialogs": n, "samples": samples, "seconds": seconds, "peak_mib": kib / 1024,
                    "ms_per_sample": 1000 * seconds / max(samples, 1)})
        rows.append(f"| eval, {n:,} dialogs ({samples:,} samples) | {kib / 1024:.0f} MiB | "
                    f"{seconds:.1f} s, {1000 * seconds / max(samples, 1):.2f} ms per sample |")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ecr", required=True, help="the ecr binary")
    ap.add_argument("--bundle", help="bundle to use (default: make the tiny random one in --work)")
    ap.add_argument("--work", default=os.path.join(ROOT, "build-soak"))
    ap.add_argument("--chat-turns", type=int, default=1000)
    ap.add_argument("--eval-dialogs", type=int, default=10000)
    ap.add_argument("--report", help="write the table as Markdown here")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    bundle = a.bundle or make_bundle(a.work)
    rows = []
    results = {"bundle": bundle, "cpus": os.cpu_count(), "loadavg": os.getloadavg()}
    results["recommend"] = soak_recommend(a.ecr, bundle, a.work, rows)
    results["chat"] = soak_chat(a.ecr, bundle, a.chat_turns, rows)
    results["eval"] = soak_eval(a.ecr, bundle, a.work, a.eval_dialogs, rows)
    table = "\n".join(["| run | peak resident memory | time |", "|---|---|---|"] + rows)
    print(table)
    print(json.dumps(results, indent=1))
    if a.report:
        with open(a.report, "w") as f:
            f.write(table + "\n\n```json\n" + json.dumps(results, indent=1) + "\n```\n")


if __name__ == "__main__":
    main()
