#!/usr/bin/env bash
# One command for the engine-vs-PyTorch table: builds bench_engine with -march=native in
# build-eng-native (or $BUILD), then runs benchmarks/compare_torch.py with the given options
# (default: all cores, 200 tokens). Example: benchmarks/run_engine.sh --threads 2
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD:-$root/build-eng-native}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DECR_NATIVE=ON -DECR_BUILD_BENCHMARKS=ON \
      -DECR_BUILD_TESTS=OFF -DECR_BUILD_EXAMPLES=OFF -DECR_WITH_CUDA=OFF >/dev/null
cmake --build "$build" --target bench_engine >/dev/null
python="${ECR_PYTHON:-/usr/bin/python3}"
exec "$python" "$root/benchmarks/compare_torch.py" --bench "$build/benchmarks/bench_engine" \
     --data "$build/bench-data" "$@"
