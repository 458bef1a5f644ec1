"""Fixtures of the Python suite: the tiny random bundle the C++ tests use (made the same way,
once per build tree), the `ecr` tool to compare with, and the shipped model where it exists.

ctest runs this suite with PYTHONPATH at the build tree's python/ folder, ECR_CLI at the built
`ecr` tool and ECR_TEST_TMP inside the build tree. Tests that need the shared ReDial data
(../shared/data beside the checkout) skip with a message when it is absent.
"""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import ecr

SOURCE = Path(os.environ.get("ECR_SOURCE_DIR", Path(__file__).resolve().parents[2]))
TOOLS = SOURCE / "tools"
SHARED = Path(os.environ.get("ECR_SHARED_DATA", SOURCE.parent / "shared" / "data"))
TMP = Path(os.environ.get("ECR_TEST_TMP", Path("/tmp") / "ecr-python-tests"))
# The tools need Debian's python3 (torch); the suite itself may run under another interpreter.
TOOLS_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
HAVE_TORCH = importlib.util.find_spec("torch") is not None or subprocess.run(
    [TOOLS_PYTHON, "-c", "import torch"], capture_output=True).returncode == 0


def require_shared_data():
    if not (SHARED / "redial").is_dir():
        pytest.skip(f"needs the shared ReDial data, absent at {SHARED}")


def require_torch():
    if not HAVE_TORCH:
        pytest.skip("needs torch (Debian's python3-torch) to make random checkpoints and references")


def run_tool(module, *args, log=None):
    """Runs `python3 -m tools.<module>` with Debian's python3 and the source tree first on
    PYTHONPATH; fails the test with its output on error."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(SOURCE), os.environ.get("PYTHONPATH")) if p))
    done = subprocess.run([TOOLS_PYTHON, "-m", f"tools.{module}", *map(str, args)], capture_output=True, text=True,
                          env=env)
    if log:
        Path(log).write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"tools.{module} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def cached_fixture(recipe, files, build):
    """The folder `build` fills for `recipe` (and the contents of `files`), made once per build
    tree; concurrent makers race harmlessly: the first to publish wins."""
    key = hashlib.sha256(recipe.encode())
    for f in files:
        key.update(Path(f).read_bytes())
    root = TMP / "fixtures"
    done = root / key.hexdigest()[:16]
    if (done / "ready").exists():
        return done
    work = root / f"{done.name}.{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        build(work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    (work / "ready").write_text(recipe + "\n")
    try:
        os.rename(work, done)
    except OSError:
        shutil.rmtree(work, ignore_errors=True)
    return done


@pytest.fixture(scope="session")
def tiny():
    """tests/recommender_fixture.hpp's bundle: every component at the tiny size over the real
    ReDial KG, seed 3, with the checkpoints kept for the torch reference."""
    require_shared_data()
    require_torch()
    kg = SHARED / "redial"
    tools = [TOOLS / t for t in ("make_random_bundle.py", "make_random_kgprompt.py", "make_random_checkpoints.py",
                                 "ecr_prompt.py", "ecr_kg.py", "convert.py")]

    def build(out):
        run_tool("make_random_bundle", "--out", out / "tiny.ecr", "--size", "tiny", "--kg-dir", kg, "--dialogs",
                 kg / "dialogs.jsonl", "--vocab-dir", SHARED / "gpt2", "--keep-checkpoints", out / "checkpoints",
                 "--seed", 3)

    d = cached_fixture("recommender tiny redial seed 3", tools, build)
    return SimpleNamespace(bundle=d / "tiny.ecr", checkpoints=d / "checkpoints", kg_dir=kg)


@pytest.fixture(scope="session")
def tiny_recommender(tiny):
    return ecr.Recommender.load(tiny.bundle)


@pytest.fixture(scope="session")
def shipped():
    """The shipped model's path; skips while it has not been trained into models/."""
    try:
        return Path(ecr.default_bundle_path())
    except ecr.ConfigError as e:
        pytest.skip(f"no shipped model yet: {e}")


def cli(*args, stdin=None, check=True):
    """Runs the built `ecr` tool; returns (exit code, stdout, stderr)."""
    tool = os.environ.get("ECR_CLI")
    if not tool or not os.path.exists(tool):
        pytest.skip("needs the built `ecr` tool (ECR_CLI; ctest sets it)")
    done = subprocess.run([tool, *map(str, args)], input=stdin, capture_output=True)
    if check:
        assert done.returncode == 0, f"ecr {' '.join(map(str, args))} failed:\n{done.stdout!r}\n{done.stderr!r}"
    return done.returncode, done.stdout, done.stderr


def cli_json(*args, dialog):
    """`ecr ... --json` on a dialog given as a dict, parsed."""
    _, out, _ = cli(*args, "--dialog", "-", "--json", stdin=json.dumps(dialog).encode())
    return json.loads(out)
