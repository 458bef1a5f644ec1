#!/usr/bin/env python3
"""The CPU engine beside PyTorch on the same random 12x768 checkpoints, threads and inputs.

    compare_torch.py --bench BUILD/benchmarks/bench_engine [--threads 2] [--tokens 200] [--reps 5]
                     [--data DIR] [--dtypes f32,f16,bf16,int8] [--pairs 5]   (GGML_GPT2=path adds ggml)

Makes (once, into --data) a random GPT-2 (12 layers, 768 hidden, 1024 positions) and RoBERTa
(12 layers, 768 hidden, 3072 intermediate) with tools.make_random_checkpoints, converts them
into one bundle, runs bench_engine on it, then times the same work in PyTorch and prints a table:

    GPT-2 prefill   `tokens` ids from scratch, logits for the last one
    GPT-2 decode    one token after `tokens` of context (KV cache), logits included
    RoBERTa encode  `tokens` ids

with each side's time, the engine's speed-up over the faster torch, and each row as a fraction
of its floor: prefill and encode FLOPs / the fp32 GEMM rate (the better of Eigen's 1024^3 GEMMs,
one per thread, and torch's), decode bytes (weights + KV cache read per token) / stream read
bandwidth.

The PyTorch side is the project's references (tools.reference.gpt2 and .roberta, the oracles
of the C++ tests) with the GPT-2 KV cache and inference_mode. It runs as installed (Debian's
build sends the matrix products to the system BLAS: tools/install_deps.sh installs OpenBLAS, as
the reference BLAS would make this column ~20x slower than any user sees) and "+onednn" with
every linear through oneDNN, each at 1 thread and at --threads: torch is often fastest at one
thread for batch-1 decoding, so the speed-up is against the best of the four, and the table
names which one that was.

With GGML_GPT2=path to ggml's gpt-2 example (gpt-2-ctx, built by the user from ggml's sources;
nothing of ggml is in this repository), the same random GPT-2 is written in its file format
(benchmarks/ggml_gpt2.py) with f32 and with f16 weights, and the table gains ggml's prefill and
decode at --threads: prefill is its predict time for the prompt alone (-b covering the prompt),
decode the further time per generated token.

A last table times GPT-2 in each --dtypes weight type (the same weights converted with
tools.convert --dtype, as a user stores them, so the engine maps them), with its bytes floor
(weights in that type + KV cache / stream read bandwidth), the ratio to ggml's f16 decode, and
prefill against the engine's f32. Each row alternates the engine and ggml's f16 --pairs times and
gives medians (the ratio: the median of the pairs' ratios), as the machine's bandwidth drifts
within a run. "of floor" divides the floor at
the best stream read of the run by the median step; "paired" is the median over steps of each
step's floor at the bandwidth of a stream read just before it (bench_engine's
decode_of_floor_paired), which holds when other work on the machine moves the bandwidth between
one part of the run and the next.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.utils.mkldnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools import module_command, module_env  # noqa: E402
from tools.ecr_bundle import read_metadata  # noqa: E402
from tools.reference.gpt2 import GPT2  # noqa: E402
from tools.reference.roberta import Roberta  # noqa: E402

VOCAB_DIR = os.path.join(os.path.dirname(ROOT), "shared", "data", "gpt2")


def run(cmd):
    subprocess.run(cmd, check=True, env=module_env())


def is_current(path):
    """Whether a bundle a benchmark made earlier is what today's converter writes: it exists and its
    GPT-2 components store their Conv1D weights (out, in) ("conv1d_layout"), so that timing it does
    not time the transposes of an older bundle's load."""
    if not os.path.exists(path):
        return False
    components = read_metadata(path).get("components", {})
    return all(c.get("conv1d_layout") == "out_in" for c in components.values()
               if c.get("type") in ("gpt2", "gpt2_classifier"))


def make_data(directory):
    """Random checkpoints and their bundle, made once."""
    bundle = os.path.join(directory, "bench.ecr")
    if is_current(bundle):
        return bundle
    os.makedirs(directory, exist_ok=True)
    run(module_command("tools.make_random_checkpoints", "gpt2", "--out", os.path.join(directory, "gpt2"),
                       "--layers", "12", "--heads", "12", "--hidden", "768", "--positions", "1024",
                       "--vocab-dir", VOCAB_DIR))
    run(module_command("tools.make_random_checkpoints", "roberta", "--out", os.path.join(directory, "roberta"),
                       "--layers", "12", "--heads", "12", "--hidden", "768", "--intermediate", "3072",
                       "--positions", "512", "--vocab-dir", VOCAB_DIR))
    run(module_command("tools.convert", "--out", bundle + ".tmp", "--gpt2", "lm=" + os.path.join(directory, "gpt2"),
                       "--roberta", "text=" + os.path.join(directory, "roberta")))
    os.replace(bundle + ".tmp", bundle)
    return bundle


def dtype_bundle(directory, dtype):
    """The GPT-2 of bench.ecr converted to `dtype` (the f32 bundle itself for f32), made once."""
    if dtype == "f32":
        return os.path.join(directory, "bench.ecr")
    bundle = os.path.join(directory, f"bench-gpt2-{dtype}.ecr")
    if not is_current(bundle):
        run(module_command("tools.convert", "--out", bundle + ".tmp", "--gpt2", "lm=" + os.path.join(directory, "gpt2"),
                           "--dtype", dtype))
        os.replace(bundle + ".tmp", bundle)
    return bundle


def best_ms(rounds, reps, fn, budget_s=30.0):
    """The best of `rounds` medians of `reps` runs each, after a warm-up, as bench_engine times
    the engine; fewer runs when one is slow (torch on a plain BLAS) to stay near `budget_s`."""
    t0 = time.perf_counter()
    fn()
    runs = max(1, int(budget_s / (time.perf_counter() - t0)))
    reps = min(reps, runs)
    rounds = max(1, min(rounds, runs // reps))
    best = float("inf")
    for _ in range(rounds):
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        best = min(best, statistics.median(times))
    return best


def median_ms(reps, fn, budget_s=30.0):
    """The median of `reps` runs after a warm-up, fewer when one is slow, to stay near `budget_s`
    (bench_recommender.py and bench_responder.py time whole requests this way)."""
    return best_ms(1, reps, fn, budget_s)


def torch_gemm_gflops(threads):
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = min(timed(lambda: torch.mm(a, b)) for _ in range(5))
    return 2 * n ** 3 / best / 1e9  # torch uses all `threads` on one GEMM


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def torch_onednn_gflops():
    n = 1024
    a = torch.randn(n, n)
    m = torch.utils.mkldnn.to_mkldnn(torch.nn.Linear(n, n, bias=False))
    with torch.inference_mode():
        best = min(timed(lambda: m(a)) for _ in range(5))
    return 2 * n ** 3 / best / 1e9


def bench_torch(data, tokens, reps, rounds, threads, onednn):
    torch.set_num_threads(threads)
    out = {"gemm_gflops": torch_onednn_gflops() if onednn else torch_gemm_gflops(threads)}
    g = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        gpt2 = GPT2(os.path.join(data, "gpt2"), onednn)
        ids = torch.randint(4, gpt2.config["vocab_size"], (tokens,), generator=g)
        out["prefill_ms"] = best_ms(rounds, reps, lambda: gpt2.logits(gpt2.forward(ids)[0][-1:]))
        _, cache = gpt2.forward(ids)
        one = ids[:1]
        out["decode_ms"] = best_ms(rounds, 4 * reps, lambda: gpt2.logits(gpt2.forward(one, cache, tokens)[0]))
        del gpt2, cache
        roberta = Roberta(os.path.join(data, "roberta"), onednn)
        ids = torch.randint(4, roberta.config["vocab_size"], (tokens,), generator=g)
        out["encode_ms"] = best_ms(rounds, reps, lambda: roberta.hidden(ids))
    return out


def ggml_predict(binary, model, prompt, n_predict, threads):
    """(predict ms, tokens evaluated) from one run of ggml's gpt-2 example."""
    out = subprocess.run([binary, "-m", model, "-p", prompt, "-n", str(n_predict), "-t", str(threads),
                          "-b", "100000", "--top_k", "1", "-s", "1"], check=True, capture_output=True, text=True).stdout
    m = re.search(r"predict time =\s*([\d.]+) ms / ([\d.]+) ms per token", out)
    if not m:
        raise RuntimeError(f"{binary}: no 'predict time' line in its output")
    total, per = float(m.group(1)), float(m.group(2))
    return total, round(total / per) if per else 0


def bench_ggml(binary, data, tokens, threads, rounds=3, steps=64, ftypes=("f32", "f16")):
    """ggml's prefill (ms) and decode (ms per token) on the same weights in `ftypes`; {} without it."""
    if not binary:
        return {}
    prompt = " the" * tokens  # one GPT-2 token each
    out = {}
    for ftype in ftypes:
        model = os.path.join(data, f"ggml-{ftype}.bin")
        if not os.path.exists(model):
            run([sys.executable, os.path.join(ROOT, "benchmarks", "ggml_gpt2.py"), "--checkpoint",
                 os.path.join(data, "gpt2"), "--vocab-dir", VOCAB_DIR, "--out", model, "--ftype", ftype])
        prefill = min(ggml_predict(binary, model, prompt, 1, threads)[0] for _ in range(rounds))
        runs = [ggml_predict(binary, model, prompt, steps + 1, threads) for _ in range(rounds)]
        total, evaluated = min(runs)
        decoded = evaluated - tokens
        out[f"ggml {ftype}"] = {"prefill_ms": prefill,
                                "decode_ms": (total - prefill) / decoded if decoded > 0 else float("nan")}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", default=os.path.join(ROOT, "build-eng-native", "benchmarks", "bench_engine"),
                        help="the bench_engine executable (a -DECR_NATIVE=ON build)")
    parser.add_argument("--data", default=os.path.join(ROOT, "build-eng-native", "bench-data"),
                        help="folder for the random checkpoints and bundle (made once)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5, help="runs per median")
    parser.add_argument("--rounds", type=int, default=3, help="medians per row; the best is kept")
    parser.add_argument("--dtypes", default="f32,f16,bf16,int8",
                        help="GPT-2 weight dtypes to time the engine in (comma-separated; empty: none)")
    parser.add_argument("--pairs", type=int, default=5,
                        help="alternations of the engine and ggml's f16 per weight-dtype row (medians)")
    parser.add_argument("--json-out", help="also write both sides' raw numbers here")
    a = parser.parse_args()

    bundle = make_data(a.data)
    load = open("/proc/loadavg").read().split()[0]  # other work on the machine skews every number
    engine = json.loads(subprocess.run(
        [a.bench, "--bundle", bundle, "--gpt2", "lm", "--roberta", "text", "--threads", str(a.threads),
         "--tokens", str(a.tokens), "--reps", str(a.reps), "--rounds", str(a.rounds)], check=True, capture_output=True, text=True).stdout)
    torch_runs = {}
    for threads in sorted({1, a.threads}):
        for onednn in (False, True):
            name = f"torch{'+onednn' if onednn else ''}@{threads}"
            torch_runs[name] = bench_torch(a.data, a.tokens, a.reps, a.rounds, threads, onednn)
    at_n = torch_runs[f"torch@{a.threads}"]
    ggml = bench_ggml(os.environ.get("GGML_GPT2"), a.data, a.tokens, a.threads)

    gemm = max([engine["gemm_gflops"]] + [t["gemm_gflops"] for t in torch_runs.values()])
    bw = engine["stream_read_gbps"]
    g, r = engine["gpt2"], engine["roberta"]
    rows = [
        (f"GPT-2 prefill {a.tokens} tok (ms)", "prefill_ms", g["prefill_ms"], g["prefill_flops"] / gemm / 1e6),
        (f"GPT-2 decode @ctx {a.tokens} (ms/tok)", "decode_ms", g["decode_ms"], g["decode_bytes"] / bw / 1e6),
        (f"RoBERTa encode {a.tokens} tok (ms)", "encode_ms", r["encode_ms"], r["flops"] / gemm / 1e6),
    ]
    print(f"load average before: {load}; after: {open('/proc/loadavg').read().split()[0]}")
    print(f"threads {a.threads}; ceilings: stream read {bw:.1f} GB/s; fp32 GEMM {gemm:.1f} GFLOP/s (Eigen "
          f"{engine['gemm_gflops']:.1f}, best torch {max(t['gemm_gflops'] for t in torch_runs.values()):.1f}); "
          f"torch {torch.__version__}")
    ggml_cols = [k for k in ("ggml f32", "ggml f16") if ggml and k in ggml]
    header = f"{'':34} {'ecr':>8} {'torch@N':>9} {'best torch':>11} {'(which)':>16}"
    header += "".join(f" {k:>9}" for k in ggml_cols)
    print(header + f" {'vs best torch':>14} {'floor':>7} {'ecr/floor':>10}")
    for name, key, ours, floor in rows:
        which = min(torch_runs, key=lambda k: torch_runs[k][key])
        best = torch_runs[which][key]
        line = f"{name:34} {ours:8.1f} {at_n[key]:9.1f} {best:11.1f} {which:>16}"
        line += "".join(f" {ggml[k].get(key, float('nan')):9.1f}" for k in ggml_cols)
        print(line + f" {best / ours:13.2f}x {floor:7.1f} {floor / ours:10.0%}")
    best_decode = min(t["decode_ms"] for t in torch_runs.values())
    line = (f"{'GPT-2 decode (tokens/s)':34} {1e3 / g['decode_ms']:8.1f} {1e3 / at_n['decode_ms']:9.1f} "
            f"{1e3 / best_decode:11.1f} {'':>16}")
    line += "".join(f" {1e3 / ggml[k]['decode_ms']:9.1f}" for k in ggml_cols)
    print(line)
    if not ggml:
        print("(no ggml column: set GGML_GPT2 to ggml's gpt-2-ctx to add one)")

    # GPT-2 in each weight dtype (bench_engine --dtype casts the matrices at load), against its
    # bytes floor and, where ggml ran, ggml's f16 decode.
    # Each row is --pairs alternations of the engine (one round) and ggml's f16 (one round), and
    # every number the median over them, the ratio to ggml too: the bandwidth of this kind of
    # machine drifts by a fifth within minutes, moving both sides of a pair alike.
    by_dtype, ggml_f16, vs_ggml_f16 = {}, {}, {}
    for dtype in filter(None, a.dtypes.split(",")):
        ours, theirs = [], []
        for _ in range(a.pairs):
            ours.append(json.loads(subprocess.run(
                [a.bench, "--bundle", dtype_bundle(a.data, dtype), "--gpt2", "lm", "--threads", str(a.threads),
                 "--tokens", str(a.tokens), "--reps", str(a.reps), "--rounds", "1"],
                check=True, capture_output=True, text=True).stdout)["gpt2"])
            if ggml:
                theirs.append(bench_ggml(os.environ.get("GGML_GPT2"), a.data, a.tokens, a.threads, rounds=1,
                                         ftypes=("f16",))["ggml f16"]["decode_ms"])
        by_dtype[dtype] = {k: (statistics.median(o[k] for o in ours) if isinstance(v, float) else v)
                           for k, v in ours[0].items()}
        if theirs:
            ggml_f16[dtype] = statistics.median(theirs)
            vs_ggml_f16[dtype] = statistics.median(t / o["decode_ms"] for t, o in zip(theirs, ours))
    if by_dtype:
        base_prefill = by_dtype.get("f32", {}).get("prefill_ms")
        print(f"\nGPT-2 by weight dtype (kernels: {next(iter(by_dtype.values())).get('kernels')}), threads {a.threads}")
        print(f"{'dtype':6} {'decode ms':>10} {'tokens/s':>9} {'floor ms':>9} {'of floor':>9} {'paired':>7} "
              f"{'ggml f16 ms':>12} {'vs ggml f16':>12} {'prefill ms':>11} {'vs f32 prefill':>15}")
        for dtype, g2 in by_dtype.items():
            theirs = f"{ggml_f16[dtype]:12.1f}" if dtype in ggml_f16 else f"{'-':>12}"
            vs_ggml = f"{vs_ggml_f16[dtype]:11.2f}x" if dtype in vs_ggml_f16 else f"{'-':>12}"
            vs_f32 = f"{base_prefill / g2['prefill_ms']:14.2f}x" if base_prefill else f"{'-':>15}"
            print(f"{dtype:6} {g2['decode_ms']:10.1f} {1e3 / g2['decode_ms']:9.1f} {g2['decode_floor_ms']:9.1f} "
                  f"{g2['decode_floor_ms'] / g2['decode_ms']:9.0%} {g2['decode_of_floor_paired']:7.0%} {theirs} {vs_ggml} "
                  f"{g2['prefill_ms']:11.1f} {vs_f32}")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"engine": engine, "torch": torch_runs, "ggml": ggml, "gpt2_by_dtype": by_dtype,
                       "ggml_f16_beside_each_dtype": ggml_f16, "vs_ggml_f16": vs_ggml_f16}, f, indent=2)
    return 0

if __name__ == "__main__":
    sys.exit(main())
