#!/usr/bin/env bash
# Trains the shipped model from scratch and writes models/ecr-redial-small.ecr (models/README.md):
# installs what it needs (Debian's torch, OpenBLAS, tqdm, regex), builds the `ecr` tool (its linker
# annotates the dialogs), then runs the trainer (python3 -m tools.train) on ../shared/data. About 45
# minutes on 2 cores.
#   tools/train.sh [--smoke] [extra tools.train options]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DECR_WITH_CUDA=OFF >/dev/null
cmake --build build -j"$(nproc)" --target ecr_cli
data=$(cd .. && pwd)/shared/data
if [ ! -f "$data/redial/train_dialogs.jsonl" ]; then
  echo "train: needs the ReDial data at ../shared/data (see models/README.md)" >&2
  exit 1
fi
out=build/train
bundle=models/ecr-redial-small.ecr
if [ "${1:-}" = "--smoke" ]; then out=build/train-smoke bundle=$out/ecr.ecr; fi
mkdir -p "$out" models
exec /usr/bin/python3 -m tools.train --data "$data" --ecr build/src/ecr --out "$out" --bundle "$bundle" "$@"
