#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install dependencies, build, make a bundle from
# random (untrained) checkpoints with the converter, and use it.
# Weights are random: the outputs show the engine working, not a trained recommender.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DECR_WITH_CUDA=OFF >/dev/null
cmake --build build -j"$(nproc)" --target ecr_cli

vocab=../shared/data/gpt2
if [ ! -f "$vocab/encoder.json" ]; then
  echo "demo: needs the GPT-2 vocabulary at $vocab (encoder.json, vocab.bpe)" >&2
  exit 1
fi
work=build/demo
mkdir -p "$work"
python=/usr/bin/python3
echo "== random (untrained) checkpoints in the published layouts"
$python tools/make_random_checkpoints.py gpt2 --out "$work/dialogpt" --layers 2 --heads 4 --hidden 64 \
  --positions 256 --vocab-dir "$vocab" --seed 1
echo "== convert to one bundle"
$python tools/convert.py --out "$work/demo.ecr" --gpt2 "backbone=$work/dialogpt" --codec zstd
echo "== ecr inspect --verify"
build/src/ecr inspect "$work/demo.ecr" --verify
