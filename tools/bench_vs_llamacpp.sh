#!/usr/bin/env bash
# ecr's bench_llama and llama.cpp's llama-bench on the same GGUF file and thread count, one after
# the other in one run, and the ratios (ecr / llama.cpp; above 1 means ecr is faster):
#
#   tools/bench_vs_llamacpp.sh MODEL.gguf [THREADS] [PROMPT] [GEN]     defaults 2, 128, 64
#
# Needs ecr built with its benchmarks (ECR_BUILD, default build/: build/benchmarks/bench_llama)
# and llama.cpp's llama-bench (LLAMACPP_BUILD, default build/llamacpp: bin/llama-bench).
# Both run 5 repetitions after their own warm-up and report the mean rate.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: tools/bench_vs_llamacpp.sh MODEL.gguf [THREADS] [PROMPT] [GEN]}
threads=${2:-2} prompt=${3:-128} gen=${4:-64}
bench=${ECR_BUILD:-build}/benchmarks/bench_llama
llama_bench=${LLAMACPP_BUILD:-build/llamacpp}/bin/llama-bench

ours=$("$bench" --gguf "$model" --threads "$threads" --prompt "$prompt" --gen "$gen" --reps 5 --json)
theirs=$("$llama_bench" -m "$model" -t "$threads" -p "$prompt" -n "$gen" -r 5 -o json 2>/dev/null)
python3 - "$ours" "$theirs" "$model" "$threads" "$prompt" "$gen" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
model, threads, prompt, gen = sys.argv[3:]
lc = {}
for row in theirs:
    if row["n_prompt"] and not row["n_gen"]:
        lc["pp"] = row["avg_ts"]
    elif row["n_gen"] and not row["n_prompt"]:
        lc["tg"] = row["avg_ts"]
print(f"{model}, {threads} threads (ecr kernels: {ours['isa']})")
print(f"{'test':<8}{'ecr tok/s':>12}{'llama.cpp tok/s':>18}{'ratio':>8}")
for test, key, n in (("pp", "pp_tok_s", prompt), ("tg", "tg_tok_s", gen)):
    print(f"{test + n:<8}{ours[key]:>12.2f}{lc[test]:>18.2f}{ours[key] / lc[test]:>8.2f}")
PY
