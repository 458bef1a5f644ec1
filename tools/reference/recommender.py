"""End-to-end PyTorch reference of ECR's recommendation (docs/math.md sections 4 and 5), composed
from the independent references: RoBERTa (tools.reference.roberta) -> KGPrompt
(tools.reference.kgprompt) -> GPT-2 with the prefix (tools.reference.gpt2) -> the last hidden
state z -> scores z E^T over every entity.

    python3 -m tools.reference.recommender --checkpoints DIR --kg-dir KG [--bundle B.ecr] --cases cases.json --out-dir OUT

DIR holds the checkpoints tools.make_random_bundle --keep-checkpoints writes: backbone/ (GPT-2),
text_encoder/ (RoBERTa) and rec_prompt/model.pt (ECR KGPrompt). The R-GCN edges are built from
the KG files (kgprompt.build_edges); the co-occurrence matrix C, when the cases ask for
global entities, is read from --bundle (cooccurrence/* tensors, the matrix the engine loads).

cases.json: {"cases": [{"name", "context_ids": [GPT-2 ids], "prompt_ids": [RoBERTa ids, <s>
first], "entities": [ids], "emotion_ids": [[3 ids] per entity] or null (no emotions: no fusion,
no global part), "emotion_probs": [[3 probs] per entity], "global": bool}]}. Each case writes
OUT/<name>.npy: the (N,) float32 scores. The inputs are taken as given (the engine's context
building is tested elsewhere), so both sides see the same ids.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

from ..ecr_bundle import read_bundle
from . import kgprompt as kgp
from .gpt2 import GPT2
from .roberta import Roberta

EMOTIONS_PER_ENTITY = 3  # docs/math.md section 2: the 3 strongest labels, padded


def cooccurrence_from_bundle(path, n):
    _, tensors = read_bundle(path)
    if "cooccurrence/indptr" not in tensors:
        return None
    indptr = tensors["cooccurrence/indptr"].astype(np.int64)
    indices = tensors["cooccurrence/indices"].astype(np.int64)
    values = np.asarray(tensors["cooccurrence/values"], dtype=np.float32)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    # Sparse: a dense N x N matrix of the real KG would take gigabytes.
    return torch.sparse_coo_tensor(torch.from_numpy(np.stack([rows, indices])), torch.from_numpy(values.copy()), (n, n))


class Recommender:
    def __init__(self, checkpoints, kg_dir, bundle=None):
        self.backbone = GPT2(os.path.join(checkpoints, "backbone"))
        self.text_encoder = Roberta(os.path.join(checkpoints, "text_encoder"))
        sd = kgp.load_state(os.path.join(checkpoints, "rec_prompt", "model.pt"), torch.float32)
        edges, n, _ = kgp.build_edges(kg_dir)
        cooc = cooccurrence_from_bundle(bundle, n) if bundle else None
        self.prompt = kgp.KGPromptReference(sd, edges, cooc)

    def scores(self, case):
        tokens = self.text_encoder.hidden(case["prompt_ids"])
        entities = torch.tensor(case.get("entities") or [], dtype=torch.long)
        ids = probs = None
        if case.get("emotion_ids") is not None:
            ids = torch.tensor(case["emotion_ids"], dtype=torch.long).reshape(len(entities), EMOTIONS_PER_ENTITY)
            probs = torch.tensor(case["emotion_probs"], dtype=torch.float32).reshape(len(entities), EMOTIONS_PER_ENTITY)
        prefix = self.prompt.prompt("rec", tokens, entities, ids, probs, case.get("global", True))
        z = self.backbone.hidden(case["context_ids"], prefix)[-1]
        return self.prompt.entities @ z


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", required=True, help="folder with backbone/, text_encoder/, rec_prompt/model.pt")
    p.add_argument("--kg-dir", required=True)
    p.add_argument("--bundle", help="bundle whose cooccurrence/* tensors give C (global entities)")
    p.add_argument("--cases", required=True)
    p.add_argument("--out-dir", required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    with open(a.cases, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    model = Recommender(a.checkpoints, a.kg_dir, a.bundle)
    os.makedirs(a.out_dir, exist_ok=True)
    with torch.inference_mode():
        for case in cases:
            np.save(os.path.join(a.out_dir, case["name"] + ".npy"), model.scores(case).to(torch.float32).numpy())
    return 0


if __name__ == "__main__":
    sys.exit(main())
