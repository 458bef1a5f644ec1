"""Plain-PyTorch GPT-2 (docs/math.md section 3, HuggingFace semantics) in float32 like the real
models, reading the checkpoint folders the converter reads: the oracle the C++ engine is tested
against, and the torch side of the benchmarks.

A prefix is an f32 (S, n_layer*2*n_embd) tensor, the KGPrompt output (docs/math.md section 4, step 7), read
as (S, layer, key|value, head, head_dim). Every query attends to all S prefix rows and causally
to the sequence. forward() keeps the keys and values (prefix rows first) as a cache, so decoding
can go on one token at a time.
"""

import os

import torch

from ..convert import load_state_dict, read_json  # reads safetensors and .bin alike
from .ops import ONEDNN, Weights, attention, gelu_tanh, heads, layer_norm


class GPT2:
    def __init__(self, directory, onednn=ONEDNN):
        self.config = read_json(os.path.join(directory, "config.json"))
        sd, _ = load_state_dict(directory)
        if "wte.weight" in sd:
            sd = {f"transformer.{k}": v for k, v in sd.items()}
        self.w = Weights({k: v.float() for k, v in sd.items() if v.is_floating_point()}, onednn)
        c = self.config
        self.layers, self.nh, self.d = c["n_layer"], c["n_head"], c["n_embd"]
        self.eps = c.get("layer_norm_epsilon", 1e-5)
        self.classifier = "score.weight" in self.w

    def start(self, prefix):
        """The cache a prefix gives: per layer its (NH, S, hd) keys and values; None for none."""
        if prefix is None:
            return None
        p = prefix.view(prefix.shape[0], self.layers, 2, self.nh, self.d // self.nh)
        return [(p[:, n, 0].transpose(0, 1), p[:, n, 1].transpose(0, 1)) for n in range(self.layers)]

    def forward(self, ids, cache=None, position=0):
        """ids (T,) with position ids from `position` -> (hidden states after ln_f (T, D), the
        cache with this call's keys and values appended). Query i sees every cached row and its
        own keys 0..i."""
        w = self.w
        ids = torch.as_tensor(ids, dtype=torch.long)
        T = ids.shape[0]
        pos = torch.arange(position, position + T)
        x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][pos]
        S = 0 if cache is None else cache[0][0].shape[1]
        visible = torch.cat([torch.ones(T, S, dtype=torch.bool), torch.ones(T, T, dtype=torch.bool).tril()], dim=1)
        new_cache = []
        for n in range(self.layers):
            p = f"transformer.h.{n}"
            h = layer_norm(x, w[f"{p}.ln_1.weight"], w[f"{p}.ln_1.bias"], self.eps)
            qkv = w.times(h, f"{p}.attn.c_attn.weight") + w[f"{p}.attn.c_attn.bias"]  # Conv1D: x @ W (in, out)
            q, k, v = (heads(t, self.nh) for t in qkv.split(self.d, dim=1))
            if cache is not None:
                k = torch.cat([cache[n][0], k], dim=1)
                v = torch.cat([cache[n][1], v], dim=1)
            new_cache.append((k, v))
            a = attention(q, k, v, visible)
            x = x + w.times(a, f"{p}.attn.c_proj.weight") + w[f"{p}.attn.c_proj.bias"]
            h = layer_norm(x, w[f"{p}.ln_2.weight"], w[f"{p}.ln_2.bias"], self.eps)
            h = gelu_tanh(w.times(h, f"{p}.mlp.c_fc.weight") + w[f"{p}.mlp.c_fc.bias"])
            x = x + w.times(h, f"{p}.mlp.c_proj.weight") + w[f"{p}.mlp.c_proj.bias"]
        return layer_norm(x, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], self.eps), new_cache

    def hidden(self, ids, prefix=None, positions_from=0):
        """Final hidden states after ln_f, (T, D)."""
        return self.forward(ids, self.start(prefix), positions_from)[0]

    def logits(self, hidden):
        head = "lm_head.weight" if "lm_head.weight" in self.w else "transformer.wte.weight"  # tied
        return self.w.times(hidden, head, transposed=True)

    def scores(self, hidden):
        """Classifier: score.weight on the last token (inputs are unpadded)."""
        return self.w.times(hidden[-1], "score.weight", transposed=True)


def banned_tokens(tokens, n):
    """HuggingFace no_repeat_ngram_size: tokens that would complete an n-gram already present."""
    if n <= 0 or len(tokens) + 1 < n:
        return set()
    tail = tuple(tokens[len(tokens) - n + 1:]) if n > 1 else ()
    return {tuple(tokens[i:i + n])[-1] for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n - 1]) == tail}


def generate(model, ids, prefix, max_new_tokens, no_repeat_ngram, eos):
    """Greedy decoding as HuggingFace's generate(), the whole sequence rerun for every token."""
    tokens, generated = list(ids), []
    for _ in range(max_new_tokens):
        logits = model.logits(model.hidden(tokens, prefix)[-1])
        for t in banned_tokens(tokens, no_repeat_ngram):
            logits[t] = float("-inf")
        nxt = int(torch.argmax(logits))
        tokens.append(nxt)
        generated.append(nxt)
        if nxt == eos:
            break
    return generated
