#!/usr/bin/env bash
# A venv for the Python packages that some tests and tools need beyond Debian's: the `gguf`
# package, whose numpy quantizers are the reference for the Q8_0 / Q4_0 tests (tests/test_quant.cpp).
# --system-site-packages keeps Debian's numpy and torch visible.
#   tools/setup_venv.sh [DIR]     default DIR: build/venv (where tests/CMakeLists.txt looks)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/venv}
if [ ! -x "$dir/bin/python3" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$dir"
fi
"$dir/bin/python3" -m pip install --quiet --disable-pip-version-check gguf==0.19.0
