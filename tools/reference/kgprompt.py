"""Plain-torch reference of KGPrompt (ECR rec with emotions, UniCRS conv) and its R-GCN, written
from docs/math.md sections 3-4 and the published modules, for checking the engine's PromptEncoder.
Its R-GCN is tools.reference.rgcn (RGCNConv by hand, no torch-geometric).

State: --state model.pt (a KGPrompt state dict) or a folder of <key>.npy files.
Edges: --edges edges.npy ((E, 3) int rows [source, target, relation]) or --kg-dir DIR (built
from entity2id.json + kg.json / dbpedia_subkg.json + relation2id.json as docs/math.md section 3 says).

    python3 -m tools.reference.kgprompt --kg-dir DIR --save-edges edges.npy           # just the edges
    python3 -m tools.reference.kgprompt --rgcn-only --state S --edges E --out rgcn.npy  # RGCN(node_embeds)
    python3 -m tools.reference.kgprompt --state S --edges E [--cooc-csr PREFIX | --cooc dense.npy] \\
        --tables-out DIR                                # E.npy, M.npy (rec), G.npy (with C)
    python3 -m tools.reference.kgprompt --state S --edges E --kind rec|conv --tokens T.npy \\
        [--entities e.npy] [--emotion-ids ids.npy --emotion-probs p.npy] [--no-global] --out prefix.npy
    python3 -m tools.reference.kgprompt --state S --edges E --cases cases.json --out-dir DIR

A prefix is (S, n_layer * 2 * H): row s read as (layer, key|value, head, head_dim). cases.json
is {"cases": [{"name", "kind", "tokens", "entities", "emotion_ids", "emotion_probs", "global"}]}
with paths relative to the file; each case writes DIR/<name>.npy. --cooc-csr PREFIX reads
PREFIX_indptr.npy, PREFIX_indices.npy, PREFIX_values.npy.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from .rgcn import rgcn_edges


# --- inputs -----------------------------------------------------------------------------------

def load_state(path, dtype):
    if os.path.isdir(path):
        sd = {f[:-4]: torch.from_numpy(np.load(os.path.join(path, f))) for f in os.listdir(path) if f.endswith(".npy")}
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}


def build_edges(kg_dir):
    """(edges (E, 3) int64 [source, target, relation], N, R) as ECR's DBpedia loader builds them:
    each triple of an entity in entity2id gives head->tail and tail->head, duplicates dropped,
    plus a self loop with relation 0 on the padding entity N - 1 = max id + 1."""
    with open(os.path.join(kg_dir, "entity2id.json"), encoding="utf-8") as f:
        entity2id = json.load(f)
    kg_file = "kg.json" if os.path.exists(os.path.join(kg_dir, "kg.json")) else "dbpedia_subkg.json"
    with open(os.path.join(kg_dir, kg_file), encoding="utf-8") as f:
        kg = json.load(f)
    with open(os.path.join(kg_dir, "relation2id.json"), encoding="utf-8") as f:
        num_relations = len(json.load(f))
    edges = set()
    for head in set(entity2id.values()):
        for relation, tail in kg.get(str(head), []):
            edges.add((head, tail, relation))
            edges.add((tail, head, relation))
    pad = max(entity2id.values()) + 1
    edges.add((pad, pad, 0))
    return np.array(sorted(edges), dtype=np.int64), pad + 1, num_relations


def load_cooccurrence(a, n, dtype):
    if a.cooc:
        return torch.from_numpy(np.load(a.cooc)).to(dtype)
    if a.cooc_csr:
        indptr = np.load(a.cooc_csr + "_indptr.npy").astype(np.int64)
        indices = np.load(a.cooc_csr + "_indices.npy").astype(np.int64)
        values = np.load(a.cooc_csr + "_values.npy")
        rows = np.repeat(np.arange(n), np.diff(indptr))
        dense = torch.zeros(n, n, dtype=dtype)
        dense.index_put_((torch.from_numpy(rows), torch.from_numpy(indices)),
                         torch.from_numpy(values).to(dtype), accumulate=True)
        return dense
    return None


# --- the model --------------------------------------------------------------------------------

class KGPromptReference:
    def __init__(self, sd, edges, cooccurrence=None):
        self.sd = sd
        self.kind = "rec" if "rec_prefix_embeds" in sd else "conv"
        self.hidden = sd["cross_attn.weight"].shape[0]
        e = torch.from_numpy(edges).long()
        node = sd["node_embeds"]
        self.rgcn_out = rgcn_edges(node, e, sd["kg_encoder.weight"], sd["kg_encoder.comp"], sd["kg_encoder.root"],
                             sd["kg_encoder.bias"])
        g = self.rgcn_out + node
        self.entities = self.linear("entity_proj2", self.mlp("entity_proj1", g) + g)
        self.emotions = None
        if self.kind == "rec":
            m = sd["emo_embeds"]
            self.emotions = self.linear("emo_proj2", self.mlp("emo_proj1", m) + m)
        self.global_entities = cooccurrence @ self.entities if cooccurrence is not None else None

    def linear(self, key, x):
        return F.linear(x, self.sd[f"{key}.weight"], self.sd.get(f"{key}.bias"))

    def mlp(self, key, x):
        return self.linear(f"{key}.2", F.relu(self.linear(f"{key}.0", x)))

    def prompt(self, kind, tokens, entities, emotion_ids=None, emotion_probs=None, use_global=True):
        """One unpadded dialog through KGPrompt.forward (batch of 1), returned as (S, layers*2*H):
        the (S, layer, 2, head, head_dim) tensor KGPrompt reshapes before its permute."""
        if kind != self.kind:
            raise SystemExit(f"state dict is a {self.kind} prompt, case asks for {kind}")
        t = self.linear("token_proj2", self.mlp("token_proj1", tokens) + tokens)
        ek = self.entities[entities]
        attn = self.linear("cross_attn", t) @ ek.T / self.hidden  # (n, L)
        if kind == "rec":
            p = F.softmax(attn, dim=0).T @ t + ek  # each entity over the tokens
            if emotion_ids is not None:
                mu = torch.einsum("lkh,lk->lh", self.emotions[emotion_ids], emotion_probs)
                if use_global:
                    p = torch.cat([p, self.global_entities[entities]], 0)
                    mu = torch.cat([mu, mu], 0)
                p = self.linear("emo_fuse_proj2", self.mlp("emo_fuse_proj1", torch.cat([p, mu], -1)))
            q = self.sd["rec_prefix_embeds"]
            q = self.mlp("rec_prefix_proj", q) + q
        else:
            p = F.softmax(attn, dim=1) @ ek + t  # each token over the entities
            q = self.sd["conv_prefix_embeds"]
            q = self.mlp("conv_prefix_proj", q) + q
        p = torch.cat([q, p], 0)
        p = self.linear("prompt_proj2", self.mlp("prompt_proj1", p) + p)
        return p


# --- command line -----------------------------------------------------------------------------

def save(path, t):
    np.save(path, t.detach().to(torch.float32).numpy())


def load_case_inputs(case, base, dtype):
    def arr(key):
        path = case.get(key)
        return None if path is None else np.load(os.path.join(base, path))
    tokens = torch.from_numpy(arr("tokens")).to(dtype)
    entities = arr("entities")
    entities = torch.from_numpy(entities.astype(np.int64)) if entities is not None else torch.zeros(0, dtype=torch.long)
    ids, probs = arr("emotion_ids"), arr("emotion_probs")
    if ids is not None:
        ids = torch.from_numpy(ids.astype(np.int64))
        probs = torch.from_numpy(probs).to(dtype)
    return tokens, entities, ids, probs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state")
    p.add_argument("--edges")
    p.add_argument("--kg-dir")
    p.add_argument("--save-edges")
    p.add_argument("--cooc", help="dense (N, N) co-occurrence .npy")
    p.add_argument("--cooc-csr", help="PREFIX of PREFIX_{indptr,indices,values}.npy")
    p.add_argument("--rgcn-only", action="store_true")
    p.add_argument("--tables-out")
    p.add_argument("--kind", choices=["rec", "conv"])
    p.add_argument("--tokens")
    p.add_argument("--entities")
    p.add_argument("--emotion-ids")
    p.add_argument("--emotion-probs")
    p.add_argument("--no-global", action="store_true")
    p.add_argument("--cases")
    p.add_argument("--out")
    p.add_argument("--out-dir")
    p.add_argument("--float64", action="store_true", help="compute in float64 (outputs stay float32)")
    a = p.parse_args(argv)
    dtype = torch.float64 if a.float64 else torch.float32
    torch.set_num_threads(1)

    if a.kg_dir:
        edges, n, r = build_edges(a.kg_dir)
        if a.save_edges:
            np.save(a.save_edges, edges)
        print(json.dumps({"num_nodes": int(n), "num_relations": int(r), "num_edges": int(len(edges))}))
    elif a.edges:
        edges = np.load(a.edges).astype(np.int64)
    if a.state is None:
        return 0
    sd = load_state(a.state, dtype)

    if a.rgcn_only:
        e = torch.from_numpy(edges)
        save(a.out, rgcn_edges(sd["node_embeds"], e, sd["kg_encoder.weight"], sd["kg_encoder.comp"],
                         sd["kg_encoder.root"], sd["kg_encoder.bias"]))
        return 0

    model = KGPromptReference(sd, edges, load_cooccurrence(a, sd["node_embeds"].shape[0], dtype))
    if a.tables_out:
        os.makedirs(a.tables_out, exist_ok=True)
        save(os.path.join(a.tables_out, "E.npy"), model.entities)
        if model.emotions is not None:
            save(os.path.join(a.tables_out, "M.npy"), model.emotions)
        if model.global_entities is not None:
            save(os.path.join(a.tables_out, "G.npy"), model.global_entities)
    cases = []
    if a.cases:
        with open(a.cases, encoding="utf-8") as f:
            spec = json.load(f)
        base = os.path.dirname(os.path.abspath(a.cases))
        for case in spec["cases"]:
            cases.append((os.path.join(a.out_dir, case["name"] + ".npy"), case["kind"], case.get("global", True),
                          load_case_inputs(case, base, dtype)))
    elif a.tokens:
        case = {"tokens": a.tokens, "entities": a.entities, "emotion_ids": a.emotion_ids,
                "emotion_probs": a.emotion_probs}
        cases.append((a.out, a.kind or model.kind, not a.no_global, load_case_inputs(case, os.getcwd(), dtype)))
    if a.out_dir:
        os.makedirs(a.out_dir, exist_ok=True)
    for out, kind, use_global, (tokens, entities, ids, probs) in cases:
        save(out, model.prompt(kind, tokens, entities, ids, probs, use_global))
    return 0


if __name__ == "__main__":
    sys.exit(main())
