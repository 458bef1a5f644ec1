#!/usr/bin/env python3
"""Plain-PyTorch forward passes of GPT-2 and RoBERTa: the oracle the C++ engine is tested against.

Written from ECR_SPEC section 3 (HuggingFace semantics) without the transformers package, in
float32 like the real models, reading the checkpoint folders the converter reads.

    torch_reference.py gpt2 --checkpoint DIR --ids 1,2,3 [--ids 4,5 ...] [--prefix P.npy]
        [--positions-from 0] --out OUT.npy [--hidden-out H.npy]
      OUT: logits (T, V) of every position through the tied LM head; for a
      GPT2ForSequenceClassification checkpoint, the (num_labels,) score of the last token.
      H: final hidden states after ln_f (T, D).
    torch_reference.py gpt2-generate --checkpoint DIR --ids ... [--prefix P.npy]
        --max-new-tokens N [--no-repeat-ngram K] [--eos 50256] --out tokens.json
      Greedy decoding; tokens.json = {"prompt": [...], "generated": [...], "stopped_at_eos": bool};
      "generated" ends with the eos token when decoding stopped there (as HuggingFace returns it).
    torch_reference.py roberta --checkpoint DIR --ids 0,5,6,2 [--ids ...] --out H.npy
      Last hidden states (T, D).

--prefix: f32 .npy of shape (S, n_layer*2*n_embd), the KGPrompt output (ECR_SPEC 4, step 7),
read as (S, layer, key|value, head, head_dim). Every query attends to all S prefix rows and
causally to the sequence; the sequence's positions start at --positions-from (default 0).

Several --ids give a batch: each sequence runs on its own and the outputs are stacked with a
leading batch dimension, zero-padded to the longest (classifier scores: (B, num_labels)).
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert import load_state_dict, read_json  # noqa: E402  (reads safetensors and .bin alike)


# Debian's torch multiplies through the reference BLAS (~20x slower than oneDNN on a 12-layer
# model); oneDNN's fp32 linear computes the same products, so use it where torch has it.
ONEDNN = torch.backends.mkldnn.is_available()


class Weights(dict):
    """name -> float32 tensor, plus x @ W products with W's oneDNN copy made once."""

    def __init__(self, tensors):
        super().__init__(tensors)
        self._onednn = {}

    def times(self, x, name, transposed=False):
        """x @ W, or x @ W.T when `transposed` (nn.Linear's (out, in) weights); x is (T, in) or (in,)."""
        w = self[name]
        if not ONEDNN:
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


# --- GPT-2 ------------------------------------------------------------------------------------

class GPT2:
    def __init__(self, directory):
        self.config = read_json(os.path.join(directory, "config.json"))
        sd, _ = load_state_dict(directory)
        if "wte.weight" in sd:
            sd = {f"transformer.{k}": v for k, v in sd.items()}
        self.w = Weights({k: v.float() for k, v in sd.items() if v.is_floating_point()})
        c = self.config
        self.layers, self.nh, self.d = c["n_layer"], c["n_head"], c["n_embd"]
        self.eps = c.get("layer_norm_epsilon", 1e-5)
        self.classifier = "score.weight" in self.w

    def hidden(self, ids, prefix=None, positions_from=0):
        """Final hidden states after ln_f, (T, D)."""
        w, T = self.w, len(ids)
        ids = torch.tensor(ids, dtype=torch.long)
        pos = torch.arange(positions_from, positions_from + T)
        x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][pos]
        S = 0 if prefix is None else prefix.shape[0]
        if prefix is not None:
            prefix = prefix.view(S, self.layers, 2, self.nh, self.d // self.nh)
        # Query i sees every prefix row and its own keys 0..i.
        visible = torch.cat([torch.ones(T, S, dtype=torch.bool), torch.ones(T, T, dtype=torch.bool).tril()], dim=1)
        for n in range(self.layers):
            p = f"transformer.h.{n}"
            h = layer_norm(x, w[f"{p}.ln_1.weight"], w[f"{p}.ln_1.bias"], self.eps)
            qkv = w.times(h, f"{p}.attn.c_attn.weight") + w[f"{p}.attn.c_attn.bias"]  # Conv1D: x @ W (in, out)
            q, k, v = (heads(t, self.nh) for t in qkv.split(self.d, dim=1))
            if prefix is not None:
                k = torch.cat([prefix[:, n, 0].transpose(0, 1), k], dim=1)
                v = torch.cat([prefix[:, n, 1].transpose(0, 1), v], dim=1)
            a = attention(q, k, v, visible)
            x = x + w.times(a, f"{p}.attn.c_proj.weight") + w[f"{p}.attn.c_proj.bias"]
            h = layer_norm(x, w[f"{p}.ln_2.weight"], w[f"{p}.ln_2.bias"], self.eps)
            h = gelu_tanh(w.times(h, f"{p}.mlp.c_fc.weight") + w[f"{p}.mlp.c_fc.bias"])
            x = x + w.times(h, f"{p}.mlp.c_proj.weight") + w[f"{p}.mlp.c_proj.bias"]
        return layer_norm(x, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], self.eps)

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


# --- RoBERTa ----------------------------------------------------------------------------------

class Roberta:
    def __init__(self, directory):
        self.config = read_json(os.path.join(directory, "config.json"))
        sd, _ = load_state_dict(directory)
        self.w = Weights({k[len("roberta."):] if k.startswith("roberta.") else k: v.float()
                          for k, v in sd.items() if v.is_floating_point()})
        c = self.config
        self.layers, self.nh = c["num_hidden_layers"], c["num_attention_heads"]
        self.eps = c.get("layer_norm_eps", 1e-5)
        self.pad = c.get("pad_token_id", 1)

    def linear(self, x, name):  # nn.Linear: weight (out, in)
        return self.w.times(x, f"{name}.weight", transposed=True) + self.w[f"{name}.bias"]

    def norm(self, x, name):
        return layer_norm(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def hidden(self, ids):
        w, T = self.w, len(ids)
        ids = torch.tensor(ids, dtype=torch.long)
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


# --- command line -----------------------------------------------------------------------------

def parse_ids(text):
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        sys.exit(f"error: --ids expects comma-separated integers, got {text!r}")


def load_prefix(path, model):
    if path is None:
        return None
    p = torch.from_numpy(np.load(path).astype(np.float32, copy=False))
    width = model.layers * 2 * model.d
    if p.dim() != 2 or p.shape[1] != width:
        sys.exit(f"error: {path}: prefix has shape {list(p.shape)}, expected (S, {width})")
    return p


def stack(outputs):
    """One output as is; several stacked with a leading batch dimension, zero-padded."""
    if len(outputs) == 1:
        return outputs[0]
    rows = max(o.shape[0] for o in outputs) if outputs[0].dim() > 1 else None
    if rows is None:
        return torch.stack(outputs)
    out = torch.zeros(len(outputs), rows, *outputs[0].shape[1:])
    for i, o in enumerate(outputs):
        out[i, :o.shape[0]] = o
    return out


def save(path, t):
    np.save(path, np.ascontiguousarray(t.detach().numpy().astype(np.float32)))


def check_ids(ids_list, vocab, limit, what):
    for ids in ids_list:
        if not ids:
            sys.exit("error: --ids is empty")
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            sys.exit(f"error: token id {bad[0]} outside the vocabulary (0..{vocab - 1})")
        if len(ids) > limit:
            sys.exit(f"error: {len(ids)} tokens exceed the {limit} {what}")


def run_gpt2(a):
    model = GPT2(a.checkpoint)
    check_ids(a.ids, model.config["vocab_size"], model.config["n_positions"] - a.positions_from, "positions")
    prefix = load_prefix(a.prefix, model)
    with torch.no_grad():
        hidden = [model.hidden(ids, prefix, a.positions_from) for ids in a.ids]
        out = [model.scores(h) if model.classifier else model.logits(h) for h in hidden]
    save(a.out, stack(out))
    if a.hidden_out:
        save(a.hidden_out, stack(hidden))


def run_generate(a):
    model = GPT2(a.checkpoint)
    if len(a.ids) != 1:
        sys.exit("error: gpt2-generate takes one --ids")
    check_ids(a.ids, model.config["vocab_size"], model.config["n_positions"] - a.max_new_tokens, "positions")
    with torch.no_grad():
        generated = generate(model, a.ids[0], load_prefix(a.prefix, model), a.max_new_tokens, a.no_repeat_ngram, a.eos)
    with open(a.out, "w") as f:
        json.dump({"prompt": a.ids[0], "generated": generated,
                   "stopped_at_eos": bool(generated) and generated[-1] == a.eos}, f)
        f.write("\n")


def run_roberta(a):
    model = Roberta(a.checkpoint)
    c = model.config
    check_ids(a.ids, c["vocab_size"], c["max_position_embeddings"] - c.get("pad_token_id", 1) - 1, "positions")
    with torch.no_grad():
        save(a.out, stack([model.hidden(ids) for ids in a.ids]))


def main(argv=None):
    parser = argparse.ArgumentParser(description="plain-PyTorch GPT-2 / RoBERTa reference")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--checkpoint", required=True, help="HuggingFace checkpoint folder")
        p.add_argument("--ids", type=parse_ids, action="append", required=True,
                       help="comma-separated token ids; repeat for a batch")
        p.add_argument("--out", required=True)

    p = sub.add_parser("gpt2", help="logits / classifier scores and final hidden states")
    common(p)
    p.add_argument("--prefix", help="(S, n_layer*2*n_embd) f32 .npy of prefix keys/values")
    p.add_argument("--positions-from", type=int, default=0, help="position id of the first token")
    p.add_argument("--hidden-out", help="also write the hidden states after ln_f")
    p.set_defaults(run=run_gpt2)
    p = sub.add_parser("gpt2-generate", help="greedy decoding")
    common(p)
    p.add_argument("--prefix")
    p.add_argument("--max-new-tokens", type=int, required=True)
    p.add_argument("--no-repeat-ngram", type=int, default=0)
    p.add_argument("--eos", type=int, default=50256)
    p.set_defaults(run=run_generate)
    p = sub.add_parser("roberta", help="last hidden states")
    common(p)
    p.set_defaults(run=run_roberta)
    a = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    a.run(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
