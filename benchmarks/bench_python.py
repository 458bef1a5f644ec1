#!/usr/bin/env python3
"""What one `recommend` costs through Python over the same call in C++, at the published shapes.

    benchmarks/bench_python.py --build BUILD [--data DIR] [--threads N] [--pairs 30]

BUILD is a CMake build tree with the Python package (ECR_BUILD_PYTHON) and the benchmarks
(ECR_BUILD_BENCHMARKS); --data holds the published-shape bundle and dialog that
benchmarks/bench_recommender.py makes (GPT-2 12 x 768, RoBERTa 12 x 768, the rec KGPrompt over
a synthetic KG of 31,162 entities; a dialog of 200+ context tokens with 32 entities and host
emotions), made here on the first run (a few minutes, about 1 GB; needs torch).

The C++ side is bench_recommend_peer: Recommender::recommend on the parsed dialog, timed around
the call, one call per request. The Python side is ecr.Recommender.recommend(dict, top_k=10) on
the same bundle, dialog and thread count, timed around the call: it includes turning the dict
into a Dialog, releasing the GIL and building the result dataclasses. Calls alternate C++,
Python, Python, C++, ... so that both sides see the same load on the machine; each pair gives a
ratio, and the overhead is the median of those ratios minus one (with the medians of each side).
Both sides check that they rank the same items with the same scores.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time



def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", required=True, help="build tree with python/ecr and benchmarks/bench_recommend_peer")
    p.add_argument("--data", help="published-shape data (default: BUILD/bench-recommender-data)")
    p.add_argument("--threads", type=int, default=0, help="threads per request, both sides (0: one per core)")
    p.add_argument("--pairs", type=int, default=30, help="C++/Python pairs of calls, after one warm-up each")
    a = p.parse_args()
    build = os.path.abspath(a.build)
    data = os.path.abspath(a.data or os.path.join(build, "bench-recommender-data"))
    sys.path.insert(0, os.path.join(build, "python"))
    import ecr  # noqa: E402  (the build tree's package)

    bundle = os.path.join(data, "bench.ecr")
    if not os.path.exists(bundle):
        import bench_recommender  # noqa: E402  (needs torch, only to make the data)
        bundle = bench_recommender.make_data(data)
    dialog_path = os.path.join(data, "dialog.json")
    with open(dialog_path, encoding="utf-8") as f:
        dialog = json.load(f)

    peer = subprocess.Popen([os.path.join(build, "benchmarks", "bench_recommend_peer"), "--bundle", bundle,
                             "--dialog", dialog_path, "--threads", str(a.threads)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert json.loads(peer.stdout.readline())["ready"]
    recommender = ecr.Recommender.load(bundle, threads=a.threads)

    def cpp_call():
        peer.stdin.write("\n")
        peer.stdin.flush()
        out = json.loads(peer.stdout.readline())
        return out["ms"], [tuple(t) for t in out["top"]]

    def python_call():
        t0 = time.perf_counter()
        rec = recommender.recommend(dialog, top_k=10)
        return 1000 * (time.perf_counter() - t0), [(i.id, i.score) for i in rec.items]

    cpp_ms, py_ms, ratios = [], [], []
    (_, cpp_top), (_, py_top) = cpp_call(), python_call()  # warm-up
    assert cpp_top == py_top, "the two sides rank differently"
    for k in range(a.pairs):
        if k % 2 == 0:
            c, _ = cpp_call()
            py, _ = python_call()
        else:
            py, _ = python_call()
            c, _ = cpp_call()
        cpp_ms.append(c)
        py_ms.append(py)
        ratios.append(py / c)
        print(f"pair {k + 1}: C++ {c:.1f} ms, Python {py:.1f} ms", file=sys.stderr)
    peer.stdin.close()
    peer.wait()

    # What Python adds, timed on its own (no model involved): the dict -> Dialog conversion.
    t0 = time.perf_counter()
    for _ in range(1000):
        ecr.Dialog.from_json(dialog)
    convert_us = 1e6 * (time.perf_counter() - t0) / 1000

    c_med, p_med = statistics.median(cpp_ms), statistics.median(py_ms)
    print(f"one recommend at the published shapes: {os.cpu_count()} cores, threads={a.threads}, {a.pairs} pairs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'':<22} {'C++':>10} {'Python':>10}")
    print(f"{'median ms':<22} {c_med:>10.2f} {p_med:>10.2f}")
    print(f"{'min ms':<22} {min(cpp_ms):>10.2f} {min(py_ms):>10.2f}")
    print(f"overhead (median of the paired ratios - 1): {100 * (statistics.median(ratios) - 1):+.2f}%  "
          f"(of the medians: {100 * (p_med / c_med - 1):+.2f}%, of the minimums: "
          f"{100 * (min(py_ms) / min(cpp_ms) - 1):+.2f}%)")
    print(f"dict -> ecr.Dialog alone: {convert_us:.1f} us")


if __name__ == "__main__":
    main()
