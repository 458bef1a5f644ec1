"""The R-GCN of docs/math.md section 3: PyG's RGCNConv with basis decomposition, mean aggregation per
relation, a root weight and a bias, written by hand (no torch-geometric) with index_add. The one
implementation the KGPrompt reference, the trainer (with autograd) and the benchmarks share.

Keys of a KGPrompt state dict's kg_encoder: weight (bases, d, d), comp (R, bases), root (d, d),
bias (d). Edges are (E, 3) int rows [source, target, relation].
"""

import torch


def relation_index(edges, num_nodes, num_relations, dtype=torch.float32):
    """Per relation r: (sources, targets, 1 / in-degree of each target under r), made once per graph."""
    e = torch.as_tensor(edges, dtype=torch.long)
    index = []
    for r in range(num_relations):
        src, dst = e[e[:, 2] == r, 0], e[e[:, 2] == r, 1]
        count = torch.zeros(num_nodes, dtype=dtype).index_add_(0, dst, torch.ones(len(dst), dtype=dtype))
        index.append((src, dst, 1.0 / count.clamp(min=1)[dst]))
    return index


def rgcn(x, index, weight, comp, root, bias):
    """x root + bias + sum_r mean_{j->i under r} x_j W_r, W_r = sum_b comp[r, b] weight[b]; `index`
    from relation_index()."""
    w = (comp @ weight.reshape(weight.shape[0], -1)).reshape(-1, x.shape[1], weight.shape[2])
    out = x @ root + bias
    for r, (src, dst, scale) in enumerate(index):
        mean = torch.zeros_like(x).index_add_(0, dst, x[src] * scale[:, None])
        out = out + mean @ w[r]
    return out


def rgcn_edges(x, edges, weight, comp, root, bias):
    """rgcn() straight from the (E, 3) edges."""
    return rgcn(x, relation_index(edges, x.shape[0], comp.shape[0], x.dtype), weight, comp, root, bias)
