"""Logits and greedy continuation of a Llama-architecture GGUF file, computed in float64 NumPy
from the file alone (every tensor dequantized with gguf.quants.dequantize): the reference that
ecr's LlamaModel is tested against. It shares no code with ecr.

    python -m tools.llama_reference --gguf F.gguf --ids "1 2 3" [--ids "4 5" ...] [--logits OUT.npy] [--greedy N]
        [--peft DIR[:SCALE] ...] [--lora ADAPTER.gguf[:SCALE] ...]

--logits writes the f32 logits of every position of the first prompt, (len(ids), vocab).
--greedy prints the N tokens of greedy decoding (the first arg max each step) of each prompt,
space-separated, one line per prompt, on stdout (no stop token: always N). The model
is what llama.cpp computes for general.architecture = llama: RMSNorm, rotary embeddings in
ggml's adjacent-pair form with linear scaling, grouped-query causal attention, SwiGLU, tied or
separate output. Needs the PyPI package gguf (tools/setup_venv.sh).

--peft and --lora merge LoRA adapters into the weights before running (W + scale * alpha / r *
B @ A, in float64): --peft from a PEFT directory itself (adapter_config.json, the safetensors or
.bin tensors, HF names), with the update's rows of q_proj / k_proj reordered per head from HF's
rotate-half order to ggml's adjacent pairs as llama.cpp's converter reorders the base weights;
--lora from a llama.cpp GGUF LoRA file (tensors <name>.lora_a / .lora_b, adapter.lora.alpha).

--activations q8 emulates llama.cpp's 8-bit activations (ecr's default, nn::Activations::q8):
before a product with a weight in GGML's blocks of 32, each row of activations is rounded to f32
and quantized as ggml's quantize_row_q8_0 / q8_1 do (d = max|x| / 127 stored f16, q = x * (127 /
max|x|) rounded half to even), and the product is the float64 one of the dequantized operands,
with the minimum's term of Q4_1 / Q5_1 weights taken, as ggml takes it, from q8_1's
s = f16(d * sum(q)). Everything else stays float64. --jitter E scales the activations by 1 + E
before they are quantized: a probe of how far a rounding boundary is, since f32 and float64
activations differ by about 1e-7 and can then round to neighbouring quants.
"""

import argparse
import json
import re
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize


def scalar(reader, key, default=None):
    field = reader.get_field(key)
    if field is None:
        if default is None:
            raise SystemExit(f"no key {key}")
        return default
    value = field.contents()
    return value


# Weight types of 32-value blocks, the blocks ggml quantizes their activations to, and the byte
# offset of the block's minimum m (Q4_1, Q5_1) or None.
Q8_BLOCKS = {
    GGMLQuantizationType.Q8_0: None,
    GGMLQuantizationType.Q4_0: None,
    GGMLQuantizationType.Q5_0: None,
    GGMLQuantizationType.Q4_1: 2,
    GGMLQuantizationType.Q5_1: 2,
}


def quantize_q8(x):
    """Rows of x (rounded to f32) as ggml's q8 blocks: the dequantized values d16 * q, and per
    block d (f32), the f16 s = d * sum(q) and sum(q)."""
    blocks = x.astype(np.float32).reshape(x.shape[0], -1, 32)
    amax = np.abs(blocks).max(axis=-1)
    d = amax / np.float32(127)
    with np.errstate(divide="ignore"):
        inverse = np.where(amax != 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
    q = np.rint(blocks * inverse[..., None])
    d16 = d.astype(np.float16).astype(np.float64)
    s16 = (d * q.sum(axis=-1).astype(np.float32)).astype(np.float16).astype(np.float64)
    return (d16[..., None] * q).reshape(x.shape), d16, s16, q.sum(axis=-1)


class Llama:
    def __init__(self, path, activations="f32", jitter=0.0):
        self.q8 = activations == "q8"
        self.jitter = jitter
        self.mins = {}  # weight name -> (out, in / 32) minima m of a Q4_1 / Q5_1 weight
        self.q8_weights = set()
        r = GGUFReader(path)
        assert scalar(r, "general.architecture") == "llama"
        self.n_layer = int(scalar(r, "llama.block_count"))
        self.n_embd = int(scalar(r, "llama.embedding_length"))
        self.n_head = int(scalar(r, "llama.attention.head_count"))
        self.n_head_kv = int(scalar(r, "llama.attention.head_count_kv", self.n_head))
        self.head_dim = self.n_embd // self.n_head
        self.n_rot = int(scalar(r, "llama.rope.dimension_count", self.head_dim))
        self.base = float(scalar(r, "llama.rope.freq_base", 10000.0))
        self.eps = float(scalar(r, "llama.attention.layer_norm_rms_epsilon"))
        scaling = scalar(r, "llama.rope.scaling.type", "none")
        self.factor = float(scalar(r, "llama.rope.scaling.factor")) if scaling == "linear" else 1.0
        self.w = {}
        for t in r.tensors:
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))  # ggml dims are ne0 first
            self.w[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(shape)
            if t.tensor_type in Q8_BLOCKS and len(shape) == 2:
                self.q8_weights.add(t.name)
                at = Q8_BLOCKS[t.tensor_type]
                if at is not None:
                    raw = np.asarray(t.data, dtype=np.uint8).reshape(shape[0], shape[1] // 32, -1)
                    self.mins[t.name] = raw[..., at:at + 2].copy().view(np.float16)[..., 0].astype(np.float64)
        self.output_name = "output.weight" if "output.weight" in self.w else "token_embd.weight"

    def linear(self, x, name):
        """x @ W.T, with llama.cpp's 8-bit activations under --activations q8."""
        w = self.w[name]
        if not (self.q8 and name in self.q8_weights):
            return x @ w.T
        xq, d, s, qsum = quantize_q8(x * (1.0 + self.jitter))
        y = xq @ w.T
        if name in self.mins:  # ggml's m * s in place of m * d * sum(q), the exact value's term
            y += (s - d * qsum) @ self.mins[name].T
        return y

    def merge(self, name, delta):
        """Adds a LoRA update (out, in) to the (dequantized) matrix `name`."""
        assert self.w[name].shape == delta.shape, (name, self.w[name].shape, delta.shape)
        self.w[name] = self.w[name] + delta

    def merge_gguf_lora(self, path, scale):
        r = GGUFReader(path)
        alpha = float(scalar(r, "adapter.lora.alpha", 0.0))
        t = {x.name: dequantize(x.data, x.tensor_type).astype(np.float64).reshape(
            tuple(int(d) for d in reversed(x.shape.tolist()))) for x in r.tensors}
        for name in [n[:-len(".lora_a")] for n in t if n.endswith(".lora_a")]:
            a, b = t[name + ".lora_a"], t[name + ".lora_b"]  # (r, in), (out, r)
            factor = scale * alpha / a.shape[0] if alpha else scale
            self.merge(name, factor * (b @ a))

    def merge_peft(self, directory, scale):
        import torch
        directory = Path(directory)
        config = json.loads((directory / "adapter_config.json").read_text())
        factor = scale * float(config["lora_alpha"]) / int(config["r"])
        if (directory / "adapter_model.safetensors").is_file():
            from safetensors.torch import load_file
            tensors = load_file(str(directory / "adapter_model.safetensors"))
        else:
            tensors = torch.load(str(directory / "adapter_model.bin"), weights_only=True)
        tensors = {k: v.double().numpy() for k, v in tensors.items()}
        names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
        for key in [k for k in tensors if k.endswith(".lora_A.weight")]:
            prefix = key[:-len(".lora_A.weight")]
            delta = factor * (tensors[prefix + ".lora_B.weight"] @ tensors[key])  # HF (out, in)
            m = re.fullmatch(r"base_model\.model\.model\.layers\.(\d+)\.(.+)", prefix)
            if m:
                kind = names[m.group(2)]
                heads = {"attn_q": self.n_head, "attn_k": self.n_head_kv}.get(kind)
                if heads:
                    # ggml row h*d + 2j + t holds HF row h*d + t*d/2 + j (d: the head size)
                    d = delta.shape[0] // heads
                    h, j, t = np.meshgrid(np.arange(heads), np.arange(d // 2), np.arange(2), indexing="ij")
                    order = np.empty(delta.shape[0], dtype=np.int64)
                    order[(h * d + 2 * j + t).ravel()] = (h * d + t * (d // 2) + j).ravel()
                    delta = delta[order]
                self.merge(f"blk.{m.group(1)}.{kind}.weight", delta)
            elif prefix == "base_model.model.lm_head":
                self.merge("output.weight", delta)
            else:
                raise SystemExit(f"{key}: not a module the reference merges")

    def rms_norm(self, x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * weight

    def rope(self, x, positions):
        """x: (n, heads, head_dim); rotates (x[2i], x[2i+1]) of the first n_rot values."""
        x = x.copy()
        i = np.arange(self.n_rot // 2)
        angle = (positions[:, None] / self.factor) * self.base ** (-2.0 * i / self.n_rot)[None, :]
        cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
        even, odd = x[..., 0:self.n_rot:2].copy(), x[..., 1:self.n_rot:2].copy()
        x[..., 0:self.n_rot:2] = even * cos - odd * sin
        x[..., 1:self.n_rot:2] = even * sin + odd * cos
        return x

    def logits(self, ids, last_only=False):
        n = len(ids)
        positions = np.arange(n, dtype=np.float64)
        x = self.w["token_embd.weight"][np.asarray(ids)]
        group = self.n_head // self.n_head_kv
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for layer in range(self.n_layer):
            h = self.rms_norm(x, self.w[f"blk.{layer}.attn_norm.weight"])
            p = lambda name: f"blk.{layer}.{name}.weight"
            q = self.rope(self.linear(h, p("attn_q")).reshape(n, self.n_head, self.head_dim), positions)
            k = self.rope(self.linear(h, p("attn_k")).reshape(n, self.n_head_kv, self.head_dim), positions)
            v = self.linear(h, p("attn_v")).reshape(n, self.n_head_kv, self.head_dim)
            out = np.empty((n, self.n_head, self.head_dim))
            for head in range(self.n_head):
                kv = head // group
                scores = q[:, head] @ k[:, kv].T / np.sqrt(self.head_dim) + mask
                scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
                out[:, head] = (scores / scores.sum(axis=-1, keepdims=True)) @ v[:, kv]
            x = x + self.linear(out.reshape(n, self.n_embd), p("attn_output"))
            h = self.rms_norm(x, self.w[p("ffn_norm")])
            gate, up = self.linear(h, p("ffn_gate")), self.linear(h, p("ffn_up"))
            x = x + self.linear(gate / (1.0 + np.exp(-gate)) * up, p("ffn_down"))
        if last_only:  # the (vocab, n_embd) head on one row: a greedy step needs no more
            x = x[-1:]
        return self.linear(self.rms_norm(x, self.w["output_norm.weight"]), self.output_name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--ids", required=True, action="append", help="prompt token ids, space-separated")
    ap.add_argument("--logits", help="write the prompt's logits (n, vocab) f32 here (.npy)")
    ap.add_argument("--greedy", type=int, default=0, help="print this many greedy tokens")
    ap.add_argument("--activations", choices=["f32", "q8"], default="f32",
                    help="f32: exact (default); q8: llama.cpp's 8-bit activations for the 32-value block types")
    ap.add_argument("--jitter", type=float, default=0.0, help="q8: scale activations by 1 + this before quantizing")
    ap.add_argument("--peft", action="append", default=[], help="merge a PEFT adapter directory, DIR[:SCALE]")
    ap.add_argument("--lora", action="append", default=[], help="merge a GGUF LoRA file, FILE[:SCALE]")
    args = ap.parse_args()
    if args.activations == "q8" and (args.peft or args.lora):
        ap.error("--activations q8 with an adapter: ecr adds the adapter's f32 product to the 8-bit one, "
                 "which a merged weight cannot emulate; compare adapters in f32")
    model = Llama(args.gguf, args.activations, args.jitter)

    def split(spec):
        path, _, scale = spec.rpartition(":")
        return (path, float(scale)) if path else (spec, 1.0)
    for spec in args.peft:
        model.merge_peft(*split(spec))
    for spec in args.lora:
        model.merge_gguf_lora(*split(spec))
    prompts = [[int(t) for t in ids.split()] for ids in args.ids]
    if args.logits:
        np.save(args.logits, model.logits(prompts[0]).astype(np.float32))
    for ids in prompts if args.greedy else []:
        generated = []
        for _ in range(args.greedy):
            generated.append(int(np.argmax(model.logits(ids + generated, last_only=True)[-1])))
        print(" ".join(map(str, generated)))


if __name__ == "__main__":
    main()
