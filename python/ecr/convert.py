"""PyTorch checkpoints -> one ecr bundle: ``python3 -m ecr.convert --out model.ecr ...``.

The project's converter (tools/convert.py, every flag in tools/README.md), shipped inside the
package in ecr/_tools. It needs torch (Debian's python3-torch); nothing else in the package
imports this module, so ``import ecr`` never loads torch.
"""

import importlib.util
import os
import sys

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_tools")


def main(argv=None):
    # Loaded by path under its own name: the converter puts its folder on sys.path for its
    # helpers (ecr_bundle, ecr_kg, ecr_prompt, ecr_reviews), which must not shadow this module.
    spec = importlib.util.spec_from_file_location("ecr_tools_convert", os.path.join(TOOLS, "convert.py"))
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    return converter.main(argv)


if __name__ == "__main__":
    sys.exit(main())
