"""PyTorch checkpoints -> one ecr bundle: ``python3 -m ecr.convert --out model.ecr ...``.

The project's converter (tools/convert.py, ``python3 -m tools.convert`` in a source tree, every
flag in tools/README.md), shipped inside the package as the subpackage ecr._tools. It needs torch
(Debian's python3-torch); nothing else in the package imports this module, so ``import ecr``
never loads torch.
"""

import sys

from ._tools.convert import main

if __name__ == "__main__":
    sys.exit(main())
