#!/usr/bin/env bash
# Installs what ecr needs to build and test from Debian's packages (run as root or with sudo).
# Safe to run again: apt-get skips what is already there.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config
  libeigen3-dev libfmt-dev doctest-dev libzstd-dev zlib1g-dev nlohmann-json3-dev libbenchmark-dev
  libisal-dev                           # fast bundle checksums (optional: zlib computes the same)
  python3 python3-numpy python3-torch   # converter, torch references (tests' oracle)
  python3-regex python3-tqdm            # the trainer (tools/train): GPT-2 pre-split, progress bars
  pybind11-dev python3-pybind11 python3-dev python3-pytest  # the Python package (python/) and its tests
  python3-pip python3-venv python3-setuptools python3-wheel  # `pip install --no-build-isolation .`
  libopenblas0-pthread                  # a real BLAS for Debian's torch (the reference BLAS is ~20x slower)
  clang libclang-rt-dev                 # the libFuzzer target (its runtime is a separate package)
  tmux                                  # drives `ecr chat` in its terminal test
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
