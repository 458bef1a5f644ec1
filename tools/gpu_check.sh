#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (about 8 minutes on an H100, build included):
#   1. checks the build's Debian packages and installs missing ones with apt-get when it can;
#   2. builds the CUDA tests and benchmark only (Release, -DECR_NATIVE=ON, the GPU's own
#      architecture, -j16);
#   3. runs `ctest -R cuda` (every kernel against its CPU twin, the device GPT-2 and RoBERTa against
#      the CPU ones, device top-k against the CPU ranking, whole Recommender / Responder requests
#      on cuda against the CPU's), then a CLI smoke: `ecr recommend`, `ecr respond` and `ecr chat`
#      on the shipped model with --device cuda and --device cpu, whose JSON must agree (the same
#      items in the same order, the same greedy reply);
#   4. runs benchmarks/bench_cuda (decode tokens/s, attention bandwidth, R-GCN encode, RoBERTa encode);
#   5. runs tools.gpu_compare (HF generate and PyG RGCNConv on the same card) and writes the
#      table to $OUT/gpu-results.md and stdout.
# Every step's log goes to $OUT (default: ./gpu-out). A failing step is reported in the table and
# the later steps still run, so one run gives as much as it can.
#   tools/gpu_check.sh            BUILD=... to choose the build folder (default ./build-gpu)
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$root/gpu-out}"
build="${BUILD:-$root/build-gpu}"
mkdir -p "$out"
cd "$root" || exit 1
# test_cuda_pipeline's fixtures read the shared data (gpt2 vocabulary, ReDial KG): ../shared/data
# beside the checkout, or shared/data inside it (where a lent machine's copy carries it).
if [ -z "${ECR_SHARED_DATA:-}" ] && [ -d "$root/shared/data" ]; then export ECR_SHARED_DATA="$root/shared/data"; fi
start=$(date +%s)
deadline=$(( start + ${GPU_CHECK_SECONDS:-540} ))  # stay inside a lent machine's 10-minute command limit
# Seconds a step may take: at most $1, and never past the deadline.
budget() { local left=$(( deadline - $(date +%s) )); (( left < 10 )) && left=10; (( left < $1 )) && echo "$left" || echo "$1"; }
note() { echo "[gpu_check +$(( $(date +%s) - start ))s] $*" | tee -a "$out/gpu_check.log"; }

note "machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -1)"
nvcc="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
note "nvcc: $("$nvcc" --version 2>&1 | tail -1)"

# --- 1. packages ---------------------------------------------------------------------------------
need=(cmake g++ libeigen3-dev libfmt-dev nlohmann-json3-dev libzstd-dev zlib1g-dev doctest-dev libbenchmark-dev ninja-build)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  note "missing packages: ${missing[*]}; trying apt-get"
  as_root=(); [ "$(id -u)" = 0 ] || as_root=(sudo -n)
  if timeout 30 "${as_root[@]}" apt-get update >>"$out/apt.log" 2>&1 &&
     timeout 120 "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       "${missing[@]}" >>"$out/apt.log" 2>&1; then
    note "installed: ${missing[*]}"
  else
    note "apt-get could not install them (no network?); continuing with what is there (see apt.log)"
  fi
fi
generator=(-G Ninja); command -v ninja >/dev/null || generator=(-G "Unix Makefiles")
benchmarks=ON
dpkg -s libbenchmark-dev >/dev/null 2>&1 || benchmarks=OFF  # benchmarks/CMakeLists.txt requires it for bench_ops

# --- 2. build ------------------------------------------------------------------------------------
cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
[[ "$cap" =~ ^[0-9]+$ ]] || cap="90"
note "configuring $build for sm_$cap"
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DECR_NATIVE=ON -DECR_WITH_CUDA=ON \
      -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="$cap" -DECR_BUILD_TESTS=ON \
      -DECR_BUILD_BENCHMARKS=$benchmarks -DECR_BUILD_EXAMPLES=OFF >"$out/configure.log" 2>&1 \
  || note "configure FAILED (configure.log)"
targets=(test_cuda_kernels test_cuda_gpt2 test_cuda_roberta test_cuda_device test_cuda_pipeline ecr_cli)
[ "$benchmarks" = ON ] && targets+=(bench_cuda)
note "building ${targets[*]}"
if timeout "$(budget 330)" cmake --build "$build" -j16 --target "${targets[@]}" >"$out/build.log" 2>&1; then
  note "build ok"
else
  note "build FAILED (tail of build.log follows)"; tail -40 "$out/build.log"
fi
bench="$build/benchmarks/bench_cuda"
if [ "$benchmarks" = OFF ] && [ -f "$build/src/libecr.a" ]; then
  # Without Google Benchmark the benchmarks folder is off; link bench_cuda by hand instead.
  note "building bench_cuda by hand (no libbenchmark-dev)"
  cuda_lib="$(dirname "$(dirname "$nvcc")")/lib64"
  if g++ -O2 -std=c++20 -march=native -DECR_WITH_CUDA=1 -I"$root/include" -I"$root/kernels" \
       -I"$(dirname "$(dirname "$nvcc")")/include" -I/usr/include/eigen3 "$root/benchmarks/bench_cuda.cpp" \
       "$build/src/libecr.a" -L"$cuda_lib" -lcublas -lcudart -lfmt -lzstd -lz -pthread \
       -o "$out/bench_cuda" >>"$out/build.log" 2>&1; then
    bench="$out/bench_cuda"
  else
    note "hand build of bench_cuda FAILED"
  fi
fi

# --- 3. tests ------------------------------------------------------------------------------------
note "ctest -R cuda"
# ECR_REQUIRE_GPU turns a test that would skip for want of a GPU into a failure.
(cd "$build" && ECR_REQUIRE_GPU=1 timeout "$(budget 180)" ctest -R cuda --output-on-failure --timeout 120) >"$out/ctest.log" 2>&1
ctest_rc=$?
{ grep -E "tests passed|tests failed|Failed|\*\*\*|Not Run|Passed|Timeout" "$out/ctest.log" | sed 's/^ *//' | tail -60
  echo "ctest exit code: $ctest_rc"; } >"$out/ctest-summary.txt"
note "ctest exit code $ctest_rc"

# --- 3b. the CLI on cuda against the CLI on cpu -------------------------------------------------
cli="$build/src/ecr"
model="$root/models/ecr-redial-small.ecr"
smoke="$out/cli-smoke"
mkdir -p "$smoke"
echo '{"turns": [{"role": "user", "text": "Hi! I love horror movies like The Shining (1980), any ideas?", "emotions": {"like": 0.8}}, {"role": "system", "text": "Have you seen It (2017)?"}, {"role": "user", "text": "Yes, too scary for me. Something funnier?"}]}' >"$smoke/dialog.json"
cli_rc=0
if [ -x "$cli" ] && [ -f "$model" ]; then
  for device in cpu cuda; do
    timeout "$(budget 60)" "$cli" recommend --bundle "$model" --dialog "$smoke/dialog.json" --json --top-k 20 \
      --device "$device" >"$smoke/recommend-$device.json" 2>"$smoke/recommend-$device.err" || cli_rc=1
    timeout "$(budget 60)" "$cli" respond --bundle "$model" --dialog "$smoke/dialog.json" --json \
      --device "$device" >"$smoke/respond-$device.json" 2>"$smoke/respond-$device.err" || cli_rc=1
    echo "I love horror movies like The Shining, anything like it?" |
      timeout "$(budget 60)" "$cli" chat --bundle "$model" --json --device "$device" \
      >"$smoke/chat-$device.json" 2>"$smoke/chat-$device.err" || cli_rc=1
  done
  # recommend: the same items in the same order, scores within 1e-3; respond and chat: the same
  # greedy template and reply, tokens and text.
  /usr/bin/env python3 - "$smoke" >>"$out/gpu_check.log" 2>&1 <<'PY' || cli_rc=1
import json, sys
d = sys.argv[1]
def load(name):
    with open(f"{d}/{name}") as f:
        lines = [l for l in f.read().splitlines() if l.strip().startswith("{")]
    return [json.loads(l) for l in lines]
bad = []
for cmd in ("recommend", "respond", "chat"):
    cpu, gpu = load(f"{cmd}-cpu.json"), load(f"{cmd}-cuda.json")
    if not cpu or len(cpu) != len(gpu):
        bad.append(f"{cmd}: {len(cpu)} JSON objects on cpu, {len(gpu)} on cuda")
        continue
    for c, g in zip(cpu, gpu):
        if [i["id"] for i in c["items"]] != [i["id"] for i in g["items"]]:
            bad.append(f"{cmd}: items differ: {[i['id'] for i in c['items']]} vs {[i['id'] for i in g['items']]}")
        worst = max((abs(a["score"] - b["score"]) for a, b in zip(c["items"], g["items"])), default=0.0)
        if worst > 1e-3:
            bad.append(f"{cmd}: item scores differ by {worst}")
        for key in ("reply", "reply_ids", "template", "template_ids"):
            if key in c and c[key] != g.get(key):
                bad.append(f"{cmd}: {key} differs: {c[key]!r} vs {g.get(key)!r}")
print("cli smoke: " + ("cuda and cpu agree" if not bad else "MISMATCH\n  " + "\n  ".join(bad)))
sys.exit(1 if bad else 0)
PY
  note "cli smoke (cuda vs cpu): $([ $cli_rc = 0 ] && echo ok || echo FAILED, see gpu_check.log and $smoke)"
else
  note "cli smoke FAILED: no $cli or no $model"
  cli_rc=1
fi
echo "cli smoke (ecr recommend/respond/chat, cuda vs cpu): $([ $cli_rc = 0 ] && echo passed || echo FAILED)" \
  >>"$out/ctest-summary.txt"

# --- 4. benchmark --------------------------------------------------------------------------------
json="$out/bench_cuda.json"
rm -f "$json"
if [ -x "$bench" ]; then
  note "bench_cuda"
  timeout "$(budget 120)" "$bench" --json "$json" 2>&1 | tee "$out/bench_cuda.txt" || note "bench_cuda FAILED"
else
  note "no bench_cuda binary"
fi

# --- 5. references and the table -----------------------------------------------------------------
python=""
for p in python3 /usr/bin/python3 python; do
  if command -v "$p" >/dev/null && "$p" -c "import torch" 2>/dev/null; then python="$p"; break; fi
done
args=(--out "$out/gpu-results.md" --ctest "$out/ctest-summary.txt")
[ -f "$json" ] && args+=(--ecr-json "$json")
if [ -n "$python" ]; then
  note "tools.gpu_compare with $python"
  PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" timeout "$(budget 150)" "$python" -m tools.gpu_compare "${args[@]}" \
    2>"$out/gpu_compare.err" || { note "tools.gpu_compare FAILED (gpu_compare.err)"; tail -20 "$out/gpu_compare.err"; }
else
  note "no python with torch: the table has the ecr side only"
  PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" /usr/bin/env python3 -m tools.gpu_compare "${args[@]}" \
    2>"$out/gpu_compare.err" || cat "$out/ctest-summary.txt"
fi
note "done in $(( $(date +%s) - start ))s; table: $out/gpu-results.md"
(( ctest_rc != 0 )) && exit $ctest_rc
exit $cli_rc
