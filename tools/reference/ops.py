"""Pieces the GPT-2 and RoBERTa references share: weights with oneDNN products, LayerNorm, GELU,
multi-head attention."""

import math

import torch

# Debian's torch multiplies through the reference BLAS (~20x slower than oneDNN on a 12-layer
# model); oneDNN's fp32 linear computes the same products, so use it where torch has it.
ONEDNN = torch.backends.mkldnn.is_available()


class Weights(dict):
    """name -> float32 tensor, plus x @ W products with W's oneDNN copy made once."""

    def __init__(self, tensors, onednn=ONEDNN):
        super().__init__(tensors)
        self.onednn = onednn and ONEDNN
        self._onednn = {}

    def times(self, x, name, transposed=False):
        """x @ W, or x @ W.T when `transposed` (nn.Linear's (out, in) weights); x is (T, in) or (in,)."""
        w = self[name]
        if not self.onednn:
            return x @ (w.T if transposed else w)
        key = (name, transposed)
        if key not in self._onednn:
            self._onednn[key] = (w if transposed else w.T).contiguous().to_mkldnn()  # (out, in)
        x2 = x.reshape(-1, x.shape[-1]).contiguous().to_mkldnn()
        return torch._C._nn.mkldnn_linear(x2, self._onednn[key]).to_dense().reshape(*x.shape[:-1], -1)


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def attention(q, k, v, visible):
    """q (NH, T, hd), k/v (NH, S+T, hd), visible (T, S+T) bool -> (T, NH*hd)."""
    scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~visible, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v
    return out.transpose(0, 1).reshape(q.shape[1], -1)


def heads(x, nh):
    """(T, D) -> (NH, T, hd)."""
    return x.view(x.shape[0], nh, -1).transpose(0, 1)
