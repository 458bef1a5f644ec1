"""A GPT-2 checkpoint in the model file of ggml's gpt-2 example, for compare_torch.py's ggml column.

    python3 benchmarks/ggml_gpt2.py --checkpoint DIR --vocab-dir DIR --out FILE [--ftype f32|f16]

The same random weights the engine and torch run, written as ggml's example reads them (its
gpt2_model_load): the magic "ggml", six int32 hyper-parameters (n_vocab, n_ctx, n_embd, n_head,
n_layer, ftype), the vocabulary (count, then each token's length and bytes), then each tensor as
n_dims, name length, type (0 f32, 1 f16), the dims innermost first, the name and the data. ggml
keeps a Conv1D weight as (out, in) rows, so those are transposed; 2-D weights take --ftype,
biases, LayerNorm and the position table stay f32, as ggml's own converter writes them. Nothing
of ggml is in this repository: the user builds its gpt-2 example (GGML_GPT2=path) from its sources.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools.convert import load_state_dict  # noqa: E402
from tools.train.text import _bytes_to_unicode  # noqa: E402

MAGIC = 0x67676D6C
TYPES = {"f32": (0, np.float32), "f16": (1, np.float16)}
FTYPES = {"f32": 0, "f16": 1}


def vocabulary(vocab_dir, n_vocab):
    """Token bytes by id (GPT-2's byte-level strings decoded); ids past encoder.json are empty."""
    with open(os.path.join(vocab_dir, "encoder.json"), encoding="utf-8") as f:
        encoder = json.load(f)
    char_bytes = {c: b for b, c in _bytes_to_unicode().items()}
    tokens = [b""] * n_vocab
    for text, i in encoder.items():
        if i < n_vocab:
            tokens[i] = bytes(char_bytes[c] for c in text) if all(c in char_bytes for c in text) else text.encode()
    return tokens


def ggml_name(key):
    """HF GPT-2 key -> the example's tensor name; None for tensors it does not read."""
    key = key.removeprefix("transformer.")
    fixed = {"wte.weight": "model/wte", "wpe.weight": "model/wpe", "ln_f.weight": "model/ln_f/g",
             "ln_f.bias": "model/ln_f/b", "lm_head.weight": "model/lm_head"}
    if key in fixed:
        return fixed[key]
    parts = key.split(".")
    if parts[0] != "h" or len(parts) < 4:
        return None
    layer, rest = parts[1], ".".join(parts[2:])
    names = {"ln_1.weight": "ln_1/g", "ln_1.bias": "ln_1/b", "ln_2.weight": "ln_2/g", "ln_2.bias": "ln_2/b",
             "attn.c_attn.weight": "attn/c_attn/w", "attn.c_attn.bias": "attn/c_attn/b",
             "attn.c_proj.weight": "attn/c_proj/w", "attn.c_proj.bias": "attn/c_proj/b",
             "mlp.c_fc.weight": "mlp/c_fc/w", "mlp.c_fc.bias": "mlp/c_fc/b",
             "mlp.c_proj.weight": "mlp/c_proj/w", "mlp.c_proj.bias": "mlp/c_proj/b"}
    return f"model/h{layer}/{names[rest]}" if rest in names else None


def write(checkpoint, vocab_dir, out, ftype):
    with open(os.path.join(checkpoint, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    state, _ = load_state_dict(checkpoint)
    n_vocab, n_ctx, n_embd = config["vocab_size"], config["n_positions"], config["n_embd"]
    with open(out + ".tmp", "wb") as f:
        f.write(struct.pack("<I6i", MAGIC, n_vocab, n_ctx, n_embd, config["n_head"], config["n_layer"], FTYPES[ftype]))
        tokens = vocabulary(vocab_dir, n_vocab)
        f.write(struct.pack("<i", n_vocab))
        for t in tokens:
            f.write(struct.pack("<I", len(t)) + t)
        for key, tensor in state.items():
            name = ggml_name(key)
            if name is None:
                continue
            a = tensor.float().numpy()
            if name.endswith("/w"):
                a = a.T  # Conv1D (in, out) -> ggml's (out, in) rows
            kind = ftype if a.ndim == 2 and name != "model/wpe" else "f32"
            code, dtype = TYPES[kind]
            a = np.ascontiguousarray(a, dtype=dtype)
            encoded = name.encode()
            f.write(struct.pack("<3i", a.ndim, len(encoded), code))
            f.write(struct.pack(f"<{a.ndim}i", *reversed(a.shape)))
            f.write(encoded)
            f.write(a.tobytes())
    os.replace(out + ".tmp", out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a HuggingFace GPT-2 directory (config.json + weights)")
    p.add_argument("--vocab-dir", required=True, help="GPT-2's encoder.json")
    p.add_argument("--out", required=True)
    p.add_argument("--ftype", choices=sorted(FTYPES), default="f16")
    a = p.parse_args()
    write(a.checkpoint, a.vocab_dir, a.out, a.ftype)


if __name__ == "__main__":
    main()
