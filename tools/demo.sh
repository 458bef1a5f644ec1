#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install dependencies, build, make one bundle
# from random (untrained) checkpoints with the converter, and chat with it.
# Weights are random: the outputs show the engine working, not a trained recommender.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DECR_WITH_CUDA=OFF >/dev/null
cmake --build build -j"$(nproc)" --target ecr_cli

if [ ! -f ../shared/data/gpt2/encoder.json ]; then
  echo "demo: needs the shared data at ../shared/data (GPT-2 vocabulary, ReDial KG and dialogs, reviews)" >&2
  exit 1
fi
work=build/demo
mkdir -p "$work"
python=/usr/bin/python3
data=../shared/data
echo "== a full bundle from random (untrained) checkpoints in the published layouts:"
echo "   backbone, text encoder, rec + conv prompts, emotion classifier, generator, KG, co-occurrence, reviews"
$python tools/make_random_bundle.py --out "$work/ecr.ecr" --size tiny --kg-dir "$data/redial" \
  --dialogs "$data/redial/dialogs.jsonl" --reviews "$data/reviews/movie_reviews.json"
echo "== ecr inspect --verify"
build/src/ecr inspect "$work/ecr.ecr" --verify | tail -n 1
echo "== ecr chat: one scripted turn (recommend, then respond; weights are random, so is the reply)"
printf 'Hi! I loved The Matrix (1999) and anything with Keanu Reeves. Any suggestions?\n/quit\n' |
  build/src/ecr chat --bundle "$work/ecr.ecr"
