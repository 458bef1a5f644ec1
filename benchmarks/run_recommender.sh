#!/usr/bin/env bash
# One command for the Recommender-vs-PyTorch table (load with static tables, one recommend call)
# at the published shapes: builds bench_recommender with -march=native in build-rec-native (or
# $BUILD), then runs benchmarks/bench_recommender.py with the given options (default: all cores).
# The first run makes the ~1 GB random bundle (a few minutes). Example: benchmarks/run_recommender.sh --threads 2
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD:-$root/build-rec-native}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DECR_NATIVE=ON -DECR_BUILD_BENCHMARKS=ON \
      -DECR_BUILD_TESTS=OFF -DECR_BUILD_EXAMPLES=OFF -DECR_WITH_CUDA=OFF >/dev/null
cmake --build "$build" --target bench_recommender >/dev/null
python="${ECR_PYTHON:-/usr/bin/python3}"
exec "$python" "$root/benchmarks/bench_recommender.py" --bench "$build/benchmarks/bench_recommender" \
     --data "$build/bench-recommender-data" "$@"
