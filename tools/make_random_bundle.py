"""A complete ECR bundle with random weights, for tests and benchmarks.

    python3 -m tools.make_random_bundle --out B.ecr --size tiny|published [--kg-dir DIR | --synthetic-entities N]
        [--dialogs FILE] [--reviews FILE] [--seed S] [--codec raw|zstd]
        [--components backbone,text_encoder,...] [--keep-checkpoints DIR] [--dtype f32|f16|bf16|int8]

Writes random checkpoints in the published layouts into a temporary folder and converts them
with tools.convert into ONE bundle, components named as ecr::ComponentNames says:

    backbone            GPT-2 (DialoGPT-like)                 tools.make_random_checkpoints gpt2
    text_encoder        RoBERTa (RobertaForMaskedLM layout)   tools.make_random_checkpoints roberta
    rec_prompt          ECR KGPrompt model.pt (emotions)      tools.make_random_kgprompt rec
    conv_prompt         UniCRS KGPrompt model.pt              tools.make_random_kgprompt conv
    emotion_classifier  GPT2ForSequenceClassification, 9 labels (docs/math.md section 0 order)
    generator           GPT-2 (same shapes as the backbone, other weights)

plus the KG (--kg-dir, default ../shared/data/redial next to the project; or a synthetic one
with --synthetic-entities N: movies, genres and people with random triples, and, unless
--dialogs is given, 3000 random dialogs with random emotion labels for its co-occurrence
matrix), the co-occurrence matrix from --dialogs and the review entities from --reviews
(tools.ecr_reviews). The KGPrompt checkpoints get the KG's entity and relation counts.
--keep-checkpoints DIR keeps the checkpoints (and a synthetic KG in DIR/kg) for the references.
--dtype is tools.convert's (int8: GPT-2 matrices quantized, the rest f32).

Sizes:
  tiny       GPT-2 2 layers x 64 hidden x 4 heads, 512 positions; RoBERTa 2 x 48 x 4 heads,
             intermediate 96 (T != H on purpose: it catches a swapped width)
  published  GPT-2 12 x 768 x 12 heads, 1024 positions (DialoGPT-small); RoBERTa-base 12 x 768,
             3072, 514 positions
Both: 8 R-GCN bases, 10 rec prefix rows, 20 conv prefix rows (UniCRS's n_prefix_conv).

Co-occurrence: ReDial dialogs carry no emotion labels, so when --dialogs has none the matrix is
built in tools.ecr_kg's uniform-emotions mode (every entity gets the one label "neutral": plain
ordered co-occurrence within a dialog); annotated dialogs are counted as docs/math.md section 9 says.

Vocabulary: GPT-2's encoder.json / vocab.bpe from --vocab-dir (default ../shared/data/gpt2).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
from . import convert, ecr_kg
from . import make_random_checkpoints as mrc
from . import make_random_kgprompt as mrk

SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))
ALL_COMPONENTS = ["backbone", "text_encoder", "rec_prompt", "conv_prompt", "emotion_classifier", "generator"]

SIZES = {
    "tiny": {"gpt2": dict(layers=2, heads=4, hidden=64, positions=512),
             "roberta": dict(layers=2, heads=4, hidden=48, intermediate=96, positions=512)},
    "published": {"gpt2": dict(layers=12, heads=12, hidden=768, positions=1024),
                  "roberta": dict(layers=12, heads=12, hidden=768, intermediate=3072, positions=512)},
}
NUM_BASES = 8
REC_PREFIX, CONV_PREFIX = 10, 20


def gpt2_checkpoint(out, shape, vocab_dir, seed, classifier=None):
    mrc.main(["gpt2", "--out", out, "--layers", str(shape["layers"]), "--heads", str(shape["heads"]),
              "--hidden", str(shape["hidden"]), "--positions", str(shape["positions"]), "--vocab-dir", vocab_dir,
              "--seed", str(seed)] + (["--classifier", str(classifier)] if classifier else []))


def roberta_checkpoint(out, shape, vocab_dir, seed):
    mrc.main(["roberta", "--out", out, "--layers", str(shape["layers"]), "--heads", str(shape["heads"]),
              "--hidden", str(shape["hidden"]), "--intermediate", str(shape["intermediate"]),
              "--positions", str(shape["positions"]), "--vocab-dir", vocab_dir, "--seed", str(seed)])


def kgprompt_checkpoint(out, kind, kg, size, seed):
    g, r = SIZES[size]["gpt2"], SIZES[size]["roberta"]
    init = mrk.Init(seed)
    sd = mrk.kgprompt_state_dict(kind, init, kg.num_entities, len(kg.relations), NUM_BASES, g["hidden"],
                                 r["hidden"], g["layers"], REC_PREFIX if kind == "rec" else CONV_PREFIX)
    torch.save(sd, out)


def synthetic_kg(out, n_entity, seed, num_relations=12, items=6281, triples_per_entity=4):
    """A UniCRS-layout KG folder with N = n_entity (ids 0..N-2 named, N-1 the padding entity):
    `items` movies ("Movie k (1990+)"), the rest people and genres, random triples."""
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    named = n_entity - 1
    items = min(items, named)
    names, types = {}, {}
    for i in range(named):
        if i < items:
            name, kind = f"Movie {i} ({1950 + i % 70})", "movie"
        elif i < items + 30:
            name, kind = f"genre{i}", "genre"
        else:
            name, kind = f"Person {i}", "person"
        names[name] = i
        types[name] = kind
    heads = rng.integers(0, items, size=named * triples_per_entity // 2)
    tails = rng.integers(items, named, size=heads.size) if named > items else rng.integers(0, named, size=heads.size)
    rels = rng.integers(0, num_relations, size=heads.size)
    kg = {}
    for h, r, t in zip(heads.tolist(), rels.tolist(), tails.tolist()):
        kg.setdefault(str(h), []).append([r, t])
    files = {"entity2id.json": names, "entity2type.json": types, "kg.json": kg,
             "relation2id.json": {f"relation{k}": k for k in range(num_relations)},
             "item_ids.json": list(range(items))}
    for name, obj in files.items():
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(obj, f)


def synthetic_dialogs(path, kg_dir, seed, dialogs=3000, messages=8, mentions=2):
    """ReDial-shaped dialogs over a synthetic KG, with random emotion labels on every message, so
    that the co-occurrence matrix of a synthetic bundle is counted as docs/math.md section 9 says."""
    rng = np.random.default_rng(seed + 1)
    with open(os.path.join(kg_dir, "entity2id.json"), encoding="utf-8") as f:
        names = list(json.load(f))
    labels = ecr_kg.EMOTIONS
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(dialogs):
            out = []
            for m in range(messages):
                mentioned = [names[i] for i in rng.integers(0, len(names), size=mentions)]
                probs = rng.dirichlet(np.full(len(labels), 0.3))
                out.append({"senderWorkerId": 1 + m % 2, "text": "...", "item": mentioned[:1], "entity": mentioned[1:],
                            "emotion": {label: round(float(p), 4) for label, p in zip(labels, probs)}})
            f.write(json.dumps({"initiatorWorkerId": 1, "respondentWorkerId": 2, "messages": out}) + "\n")


def dialogs_have_emotions(path):
    return ecr_kg.has_emotions(ecr_kg.read_dialogs(path))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="bundle to write")
    p.add_argument("--size", choices=list(SIZES), default="tiny")
    kg_source = p.add_mutually_exclusive_group()
    kg_source.add_argument("--kg-dir", help="UniCRS/ECR KG folder (default: the shared ReDial KG)")
    kg_source.add_argument("--synthetic-entities", type=int, metavar="N",
                           help="a random KG of N entities (padding included) instead")
    p.add_argument("--dialogs", help="ReDial dialogs (JSON lines) for the co-occurrence matrix")
    p.add_argument("--reviews", help="movie reviews for the generator's review entities (tools.ecr_reviews)")
    p.add_argument("--vocab-dir", default=os.path.join(SHARED, "gpt2"), help="GPT-2 encoder.json + vocab.bpe")
    p.add_argument("--components", default=",".join(ALL_COMPONENTS),
                   help="comma-separated subset of " + ",".join(ALL_COMPONENTS) + " (default all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--codec", choices=["raw", "zstd"], default="raw")
    p.add_argument("--dtype", choices=list(convert.DTYPES), default="f32", help="weights (tools.convert --dtype)")
    p.add_argument("--static-tables", action="store_true", help="store the KGPrompts' static tables (tools.convert)")
    p.add_argument("--keep-checkpoints", metavar="DIR",
                   help="write the checkpoints here and keep them (the torch references read them)")
    a = p.parse_args(argv)
    components = [c for c in a.components.split(",") if c]
    unknown = [c for c in components if c not in ALL_COMPONENTS]
    if unknown:
        p.error(f"unknown component {unknown[0]!r}")

    work = a.keep_checkpoints or tempfile.mkdtemp(prefix="ecr_random_bundle_")
    os.makedirs(work, exist_ok=True)
    try:
        kg_dir = a.kg_dir or os.path.join(SHARED, "redial")
        if a.synthetic_entities:
            kg_dir = os.path.join(work, "kg")
            synthetic_kg(kg_dir, a.synthetic_entities, a.seed)
            if not a.dialogs:
                a.dialogs = os.path.join(kg_dir, "dialogs.jsonl")
                synthetic_dialogs(a.dialogs, kg_dir, a.seed)
        try:
            kg = ecr_kg.load_kg(kg_dir)
        except ecr_kg.KgError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1

        g, r = SIZES[a.size]["gpt2"], SIZES[a.size]["roberta"]
        argv_convert = ["--out", a.out, "--codec", a.codec, "--dtype", a.dtype, "--untrained"]
        # Distinct seeds per component, so no two share weights by accident.
        for k, name in enumerate(ALL_COMPONENTS):
            if name not in components:
                continue
            seed = a.seed * 101 + k
            path = os.path.join(work, name)
            if name in ("backbone", "generator"):
                gpt2_checkpoint(path, g, a.vocab_dir, seed)
                argv_convert += ["--gpt2", f"{name}={path}"]
            elif name == "emotion_classifier":
                gpt2_checkpoint(path, g, a.vocab_dir, seed, classifier=len(mrc.EMOTION_LABELS))
                argv_convert += ["--gpt2", f"{name}={path}"]
            elif name == "text_encoder":
                roberta_checkpoint(path, r, a.vocab_dir, seed)
                argv_convert += ["--roberta", f"{name}={path}"]
            else:
                kind = "rec" if name == "rec_prompt" else "conv"
                os.makedirs(path, exist_ok=True)
                model = os.path.join(path, "model.pt")
                kgprompt_checkpoint(model, kind, kg, a.size, seed)
                argv_convert += [f"--{kind}-prompt", f"{name}={model}"]
        if any(c.endswith("_prompt") for c in components):
            argv_convert += ["--prompt-n-head", str(g["heads"])]
        argv_convert += ["--kg", kg_dir] + (["--static-tables"] if a.static_tables else [])
        if a.dialogs:
            argv_convert += ["--dialogs", a.dialogs]
            if not dialogs_have_emotions(a.dialogs):
                argv_convert += ["--uniform-emotions"]
        if a.reviews:
            argv_convert += ["--reviews", a.reviews]
        return convert.main(argv_convert)
    finally:
        if not a.keep_checkpoints:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
