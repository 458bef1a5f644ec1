#!/usr/bin/env bash
# Runs README.md's quick starts as a new user would, word for word: the blocks that follow a
# `<!-- quickstart: NAME -->` line are extracted and run, so the README cannot drift from what
# works. HOME is a fresh folder (the README installs into ~/.local and ~/ecr-venv); after the
# installs, the source tree's models/ is moved away (put back on exit) and the build tree's
# copies of the model are deleted, so the installed `ecr`, the host program built from the
# README and the installed Python package must each find the model they installed.
#   tools/quickstart.sh             C++ and Python
#   PYTHON_DIRS="/usr/bin ..."      also run the Python quick start with the python3 of each folder
# Reuses build/ (tools/test.sh's Release build): the README's build command finds it up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
home=$(mktemp -d /tmp/ecr-quickstart.XXXXXX)
# The compiler cache stays where it is: it lives in the real HOME unless told otherwise.
if command -v ccache >/dev/null; then export CCACHE_DIR="${CCACHE_DIR:-$(ccache -k cache_dir)}"; fi
away="$home/models-moved-away"
restore() {
  if [ -d "$away" ]; then mv "$away" "$root/models"; fi
}
trap restore EXIT

block() {  # the fenced block after <!-- quickstart: $1 -->
  awk -v marker="<!-- quickstart: $1 -->" '
    $0 == marker { found = 1; next }
    found && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }' "$root/README.md"
}
run_block() {  # run_block NAME DIR: the sh block NAME, run in DIR with the fresh HOME
  local name=$1 dir=$2
  echo "-- README quickstart: $name (in ${dir/#$home/\~})"
  local script
  script=$(block "$name")
  [ -n "$script" ] || { echo "README.md has no block <!-- quickstart: $name -->" >&2; exit 1; }
  sed 's/^/   | /' <<<"$script"
  (cd "$dir" && HOME="$home" bash -euo pipefail -c "$script")
}

# C++: build and install the library and the tool; write the host project's two files.
run_block cpp-install "$root"
mkdir -p "$home/app"
block cpp-host-cmake > "$home/app/CMakeLists.txt"
block cpp-host-main > "$home/app/main.cpp"
# Python: a venv with the package, for each python3 asked for (the first on PATH by default).
pythons=("")
for dir in ${PYTHON_DIRS:-}; do pythons+=("$dir"); done
for dir in "${pythons[@]}"; do
  if [ -n "$dir" ]; then
    echo "-- with $dir/python3 first on PATH ($("$dir/python3" --version))"
    rm -rf "$home/ecr-venv"
    (export PATH="$dir:$PATH"; run_block python-install "$root")
  else
    echo "-- with the python3 on PATH ($(python3 --version))"
    run_block python-install "$root"
  fi
  mv "$home/ecr-venv" "$home/ecr-venv-${dir//\//_}"
done

# No model where the build left one: only the installed copies remain.
mv "$root/models" "$away"
find "$root"/build* -name 'ecr-redial-small.ecr' -delete 2>/dev/null || true

run_block cpp-cli "$home"
out=$(run_block cpp-host "$home")
echo "$out"
grep -q "^reply: ." <<<"$out" || { echo "the host printed no reply" >&2; exit 1; }
block python-use > "$home/quickstart.py"
for dir in "${pythons[@]}"; do
  venv="$home/ecr-venv-${dir//\//_}"
  echo "-- README quickstart: python-use with $("$venv/bin/python" --version)"
  # From $HOME: the source tree's python/ecr is not on sys.path.
  out=$(cd "$home" && "$venv/bin/python" quickstart.py)
  echo "$out"
  grep -q "share/ecr/ecr-redial-small.ecr" <<<"$out" || { echo "the package did not use its own model" >&2; exit 1; }
  # Not in the README: importing ecr loads no torch, and the converter's modules were installed.
  (cd "$home" && "$venv/bin/python" -c "import ecr, sys; assert 'torch' not in sys.modules, 'torch loaded'")
  (cd "$home" && "$venv/bin/python" -c "import importlib.util as u; assert u.find_spec('ecr._tools.convert')")
done
restore
rm -rf "$home"
echo "-- README quick starts: all ran"
