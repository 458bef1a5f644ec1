"""The Python side of ecr as one package: the bundle format, the converter, random checkpoints,
the PyTorch references (tools.reference) and the trainer (tools.train).

Run its modules from the repository root, or with the root on PYTHONPATH:

    python3 -m tools.convert --out model.ecr ...
    python3 -m tools.make_random_bundle --out tiny.ecr --size tiny
    python3 -m tools.reference gpt2 --checkpoint ck/gpt2 --ids 1,2,3 --out logits.npy
    python3 -m tools.train --smoke ...
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module_command(module, *args):
    """argv running `python3 -m <module>` with this interpreter; pair it with module_env()."""
    return [sys.executable, "-m", module, *map(str, args)]


def module_env():
    """os.environ with the repository root first on PYTHONPATH, so `-m tools.x` resolves from any cwd."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    return env
