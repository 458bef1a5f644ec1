#!/usr/bin/env bash
# The main job, end to end on a fresh machine from this repository alone: install dependencies,
# build the `ecr` tool, check the shipped model (models/, trained on ReDial by tools/train) and
# hold a short scripted chat with it: each user line is recommended for and answered.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DECR_WITH_CUDA=OFF >/dev/null
cmake --build build -j"$(nproc)" --target ecr_cli

bundle=models/ecr-redial-small.ecr
echo "== the shipped model ($bundle, see models/README.md): ecr inspect --verify"
build/src/ecr inspect "$bundle" --verify | tail -n 1
echo "== ecr chat: a scripted dialog (each turn: emotions read, movies ranked, the reply streamed)"
printf '%s\n' \
  "Hi! I love horror movies like The Shining. Any suggestions?" \
  "Scary! I also liked Halloween (1978). Something more recent?" \
  "Thanks! Could you also suggest a funny comedy for the weekend?" \
  "/quit" |
  build/src/ecr chat --top-k 5
