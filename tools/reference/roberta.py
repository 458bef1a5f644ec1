"""Plain-PyTorch RoBERTa (docs/math.md section 3, HuggingFace semantics) in float32, reading the
checkpoint folders the converter reads: the text encoder's oracle and the benchmarks' torch side."""

import os

import torch

from ..convert import load_state_dict, read_json
from .ops import ONEDNN, Weights, attention, gelu_erf, heads, layer_norm


class Roberta:
    def __init__(self, directory, onednn=ONEDNN):
        self.config = read_json(os.path.join(directory, "config.json"))
        sd, _ = load_state_dict(directory)
        self.w = Weights({k[len("roberta."):] if k.startswith("roberta.") else k: v.float()
                          for k, v in sd.items() if v.is_floating_point()}, onednn)
        c = self.config
        self.layers, self.nh = c["num_hidden_layers"], c["num_attention_heads"]
        self.eps = c.get("layer_norm_eps", 1e-5)
        self.pad = c.get("pad_token_id", 1)

    def linear(self, x, name):  # nn.Linear: weight (out, in)
        return self.w.times(x, f"{name}.weight", transposed=True) + self.w[f"{name}.bias"]

    def norm(self, x, name):
        return layer_norm(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def hidden(self, ids):
        """Last hidden states (T, D) of one sequence."""
        w = self.w
        ids = torch.as_tensor(ids, dtype=torch.long)
        T = ids.shape[0]
        # HuggingFace: non-pad tokens count up from padding_idx + 1; pads sit at padding_idx.
        real = (ids != self.pad).long()
        pos = torch.cumsum(real, 0) * real + self.pad
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos] +
             w["embeddings.token_type_embeddings.weight"][torch.zeros(T, dtype=torch.long)])
        x = self.norm(x, "embeddings.LayerNorm")
        visible = torch.ones(T, T, dtype=torch.bool)
        for n in range(self.layers):
            p = f"encoder.layer.{n}"
            q, k, v = (heads(self.linear(x, f"{p}.attention.self.{part}"), self.nh) for part in ("query", "key", "value"))
            a = self.linear(attention(q, k, v, visible), f"{p}.attention.output.dense")
            x = self.norm(x + a, f"{p}.attention.output.LayerNorm")
            h = gelu_erf(self.linear(x, f"{p}.intermediate.dense"))
            x = self.norm(x + self.linear(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        return x
