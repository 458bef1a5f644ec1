#!/usr/bin/env bash
# Installs what ecr needs from Debian's packages (run as root or with sudo). Safe to run again:
# apt-get skips what is already there.
#   tools/install_deps.sh            everything: build, tests, converter, trainer, fuzzing
#   tools/install_deps.sh --runtime  only what building the library, the `ecr` tool and the
#                                    Python package takes (tools/demo.sh, README's quick starts)
set -euo pipefail
runtime=(
  build-essential cmake ninja-build ccache pkg-config
  libeigen3-dev libfmt-dev libzstd-dev zlib1g-dev nlohmann-json3-dev
  doctest-dev libbenchmark-dev          # found when a configure has tests and benchmarks on (the default)
  libisal-dev                           # fast bundle checksums (optional: zlib computes the same)
  libcpp-httplib-dev                    # the HTTP server of `ecr serve`
  python3 python3-dev python3-venv python3-pip  # `pip install .` of the Python package into a venv
)
development=(
  python3-numpy python3-torch           # converter, torch references (tests' oracle)
  python3-regex python3-tqdm            # the trainer (tools/train): GPT-2 pre-split, progress bars
  python3-jinja2                        # chat templates rendered as HuggingFace renders them (tests)
  pybind11-dev python3-pybind11 python3-pytest  # the Python package in the CMake build, its tests
  libopenblas0-pthread                  # a real BLAS for Debian's torch (the reference BLAS is ~20x slower)
  clang libclang-rt-dev                 # the libFuzzer target (its runtime is a separate package)
  wamerican                             # tools/reply_report.py's English dictionary (/usr/share/dict/words)
  tmux                                  # drives `ecr chat` in its terminal test
  chromium chromium-driver              # the browser test of `ecr serve`'s page (with selenium: tools/setup_venv.sh)
)
case "${1:-}" in
  --runtime) packages=("${runtime[@]}") ;;
  "") packages=("${runtime[@]}" "${development[@]}") ;;
  *) echo "usage: tools/install_deps.sh [--runtime]" >&2; exit 2 ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
