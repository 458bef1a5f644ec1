"""Random-weight KGPrompt checkpoints in the published layouts (docs/math.md appendix A), for testing
the converter (tools.ecr_prompt) and the engine's PromptEncoder.

    python3 -m tools.make_random_kgprompt rec  --out model.pt [shape options] [--kg-out DIR]
    python3 -m tools.make_random_kgprompt conv --out model.pt [shape options] [--kg-out DIR]

rec:  ECR's KGPrompt with emotions, as its save() writes model.pt (a plain state dict, no edge
      tensors), including the keys the published forward path never uses (emo_fuse_proj3.*,
      copy_proj_1.*, copy_proj_2.*).
conv: UniCRS's KGPrompt with conv_prefix_*; with --edge-tensors it also holds edge_index (2, E)
      and edge_type (E), as the module's own state_dict() does.

Shapes: H = --hidden (GPT-2), T = --token-hidden (text encoder), d = H/2, h = H/16, N =
--n-entity, R = --num-relations, --num-bases bases, --layers GPT-2 layers. emo_embeds is
(n_emotion + 1, T): KGPrompt declares it with H columns but feeds it to the T-sized emo_proj1,
so only checkpoints with H = T run at all; T columns keep H != T test configs runnable.

--kg-out DIR writes a random KG and co-occurrence matrix that fit the checkpoint:
  edges.npy    (E, 3) int64 rows [source, target, relation]: every random triple (h, r, t) in
               both directions, no duplicates, plus the padding entity's self loop (relation 0)
  cooc_indptr.npy (N+1) int64, cooc_indices.npy (nnz) int32, cooc_values.npy (nnz) float32:
               a sparse row-stochastic N x N matrix (some rows empty, as for entities that
               never co-occur)

Init: torch's nn.Linear default (uniform +-1/sqrt(in) for weight and bias), glorot R-GCN
bases/coefficients/root, a non-zero R-GCN bias (PyG starts it at zero, which would hide a
skipped bias), uniform node/emotion embeddings as KGPrompt draws them, normal(0, 1) prefixes.
"""

import argparse
import math
import os
import sys

import numpy as np
import torch


class Init:
    """Draws tensors from one seeded generator, in the order they are asked for."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def uniform(self, shape, bound):
        return (torch.rand(*shape, generator=self.g) * 2 - 1) * bound

    def normal(self, *shape):
        return torch.randn(*shape, generator=self.g)

    def glorot(self, *shape):
        return self.uniform(shape, math.sqrt(6.0 / (shape[-2] + shape[-1])))

    def linear(self, sd, key, in_features, out_features, bias=True):
        bound = 1.0 / math.sqrt(in_features)
        sd[f"{key}.weight"] = self.uniform((out_features, in_features), bound)
        if bias:
            sd[f"{key}.bias"] = self.uniform((out_features,), bound)

    def mlp(self, sd, key, dim_in, dim_hidden, dim_out):
        """Sequential(Linear, ReLU, Linear): keys .0. and .2."""
        self.linear(sd, f"{key}.0", dim_in, dim_hidden)
        self.linear(sd, f"{key}.2", dim_hidden, dim_out)


def kgprompt_state_dict(kind, init, n_entity, num_relations, num_bases, hidden, token_hidden, layers,
                        n_prefix, n_emotion=9):
    """The state dict in KGPrompt's parameter order (rec: ECR, conv: UniCRS)."""
    H, T = hidden, token_hidden
    d, h = H // 2, H // 16
    sd = {}
    sd["kg_encoder.weight"] = init.glorot(num_bases, d, d)
    sd["kg_encoder.comp"] = init.glorot(num_relations, num_bases)
    sd["kg_encoder.root"] = init.glorot(d, d)
    sd["kg_encoder.bias"] = init.uniform((d,), 0.1)
    sd["node_embeds"] = init.uniform((n_entity, d), math.sqrt(6.0 / (n_entity + d)))
    if kind == "rec":
        sd["emo_embeds"] = init.uniform((n_emotion + 1, T), math.sqrt(6.0 / (n_emotion + 1 + T)))
    init.mlp(sd, "entity_proj1", d, d // 2, d)
    init.linear(sd, "entity_proj2", d, H)
    init.mlp(sd, "token_proj1", T, T // 2, T)
    init.linear(sd, "token_proj2", T, H)
    if kind == "rec":
        init.mlp(sd, "emo_proj1", T, T // 2, T)
        init.linear(sd, "emo_proj2", T, h)
    init.linear(sd, "cross_attn", H, H, bias=False)
    init.mlp(sd, "prompt_proj1", H, H // 2, H)
    init.linear(sd, "prompt_proj2", H, layers * 2 * H)
    if kind == "rec":
        init.mlp(sd, "emo_fuse_proj1", H + h, H, H + h)
        init.linear(sd, "emo_fuse_proj2", H + h, H)
        init.linear(sd, "emo_fuse_proj3", H, H)
        sd["rec_prefix_embeds"] = init.normal(n_prefix, H)
        init.mlp(sd, "rec_prefix_proj", H, H // 2, H)
        init.mlp(sd, "copy_proj_1", h, h // 2, H)
        init.linear(sd, "copy_proj_2", H, 1)
    else:
        sd["conv_prefix_embeds"] = init.normal(n_prefix, H)
        init.mlp(sd, "conv_prefix_proj", H, H // 2, H)
    return sd


def random_kg(rng, n_entity, num_relations, triples):
    """(E, 3) int64 edges [source, target, relation] built as docs/math.md section 3 says."""
    pad = n_entity - 1
    heads = rng.integers(0, pad, size=triples)
    tails = rng.integers(0, pad, size=triples)
    rels = rng.integers(0, num_relations, size=triples)
    edges = set()
    for h, t, r in zip(heads.tolist(), tails.tolist(), rels.tolist()):
        edges.add((h, t, r))
        edges.add((t, h, r))
    edges.add((pad, pad, 0))
    return np.array(sorted(edges), dtype=np.int64).reshape(-1, 3)


def random_cooccurrence(rng, n_entity, density=0.15, empty_rows=0.2):
    indptr, indices, values = [0], [], []
    for _ in range(n_entity):
        if rng.random() >= empty_rows:
            cols = np.flatnonzero(rng.random(n_entity) < density)
            counts = rng.integers(1, 6, size=cols.size).astype(np.float64)
            if cols.size:
                indices.extend(cols.tolist())
                values.extend((counts / counts.sum()).tolist())
        indptr.append(len(indices))
    return (np.array(indptr, dtype=np.int64), np.array(indices, dtype=np.int32),
            np.array(values, dtype=np.float32))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["rec", "conv"])
    p.add_argument("--out", required=True, help="model.pt to write (torch.save of the state dict)")
    p.add_argument("--n-entity", type=int, default=40, help="N, the padding entity included")
    p.add_argument("--num-relations", type=int, default=3)
    p.add_argument("--num-bases", type=int, default=8)
    p.add_argument("--hidden", type=int, default=64, help="H (GPT-2 width), a multiple of 32")
    p.add_argument("--token-hidden", type=int, default=None, help="T (text encoder width; default H)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--n-prefix", type=int, default=None, help="prefix rows (default 10 rec, 20 conv)")
    p.add_argument("--n-emotion", type=int, default=9, help="emotion labels (the table adds the padding one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kg-out", help="also write a random KG (edges.npy) and co-occurrence CSR here")
    p.add_argument("--triples", type=int, default=None, help="random KG triples (default 3 N)")
    p.add_argument("--edge-tensors", action="store_true", help="conv: keep edge_index/edge_type in the state dict")
    a = p.parse_args(argv)

    if a.hidden % 32:
        p.error("--hidden must be a multiple of 32 (d = H/2 and h = H/16 are halved again)")
    token_hidden = a.token_hidden or a.hidden
    n_prefix = a.n_prefix if a.n_prefix is not None else (10 if a.kind == "rec" else 20)
    init = Init(a.seed)
    sd = kgprompt_state_dict(a.kind, init, a.n_entity, a.num_relations, a.num_bases, a.hidden, token_hidden,
                             a.layers, n_prefix, a.n_emotion)

    rng = np.random.default_rng(a.seed)
    edges = random_kg(rng, a.n_entity, a.num_relations, a.triples or 3 * a.n_entity)
    if a.kind == "conv" and a.edge_tensors:
        sd["edge_index"] = torch.from_numpy(edges[:, :2].T.copy())
        sd["edge_type"] = torch.from_numpy(edges[:, 2].copy())
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    torch.save(sd, a.out)
    if a.kg_out:
        os.makedirs(a.kg_out, exist_ok=True)
        np.save(os.path.join(a.kg_out, "edges.npy"), edges)
        indptr, indices, values = random_cooccurrence(rng, a.n_entity)
        np.save(os.path.join(a.kg_out, "cooc_indptr.npy"), indptr)
        np.save(os.path.join(a.kg_out, "cooc_indices.npy"), indices)
        np.save(os.path.join(a.kg_out, "cooc_values.npy"), values)
    return 0


if __name__ == "__main__":
    sys.exit(main())
