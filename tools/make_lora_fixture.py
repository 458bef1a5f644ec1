"""Random LoRA adapters for tools/make_llama_fixture.py's model (width 64, 4 heads, 2 key/value
heads, feed-forward 128, 2 blocks, vocabulary 300), for the LoRA tests.

    python -m tools.make_lora_fixture --peft DIR [--format safetensors|bin] [--rank R] [--alpha A]
        [--targets q_proj,k_proj,...] [--lm-head] [--seed S] [--config-extra JSON]
    python -m tools.make_lora_fixture --gguf F.gguf [--rank R] [--alpha A] [--type f32|f16|q8_0]
        [--seed S] [--break WHAT] [--like MODEL.gguf]

--peft writes a PEFT adapter directory as save_pretrained does (adapter_config.json and
adapter_model.safetensors or .bin, torch tensors named base_model.model.model.layers.N.
self_attn.q_proj.lora_A.weight ...) for every target module of both blocks (all seven by
default), lm_head too with --lm-head; --config-extra merges fields into adapter_config.json
(use_dora, rank_pattern, ... for the converter's refusals).

--gguf writes a llama.cpp GGUF LoRA directly (GGUFWriter) over attn_q, attn_v, ffn_down of block
0 and attn_k, ffn_up of block 1, with --type for the pairs (q8_0 takes rank 32: a row of B must
be whole blocks). --break makes one thing wrong, for the loader's error tests: not-adapter
(general.type model), arch (general.architecture gpt2), unknown (a pair for blk.7.attn_q),
shape (lora_a of blk.0.attn_q with 48 inputs), rank (lora_b of blk.0.attn_q with rank r + 1),
missing-b (no blk.1.ffn_up.weight.lora_b), suffix (a tensor blk.0.attn_q.weight.lora_c),
embd (a pair for token_embd.weight), alora (adapter.alora.invocation_tokens), nan (a NaN in
blk.1.attn_k.weight.lora_b). --like MODEL.gguf
instead adapts all seven matrices of every block of that model, at its shapes (for benchmarks:
`bench_llama --lora`).

B is random here (PEFT initialises it to zero; a trained adapter's is not), scaled so that the
adapter moves the logits visibly.
"""

import argparse
import json
from pathlib import Path

import numpy as np

N_LAYER, N_EMBD, N_HEAD_KV, HEAD_DIM, N_FF, N_VOCAB = 2, 64, 2, 16, 128, 300
SHAPES = {  # module -> (out, in)
    "self_attn.q_proj": (N_EMBD, N_EMBD), "self_attn.k_proj": (N_HEAD_KV * HEAD_DIM, N_EMBD),
    "self_attn.v_proj": (N_HEAD_KV * HEAD_DIM, N_EMBD), "self_attn.o_proj": (N_EMBD, N_EMBD),
    "mlp.gate_proj": (N_FF, N_EMBD), "mlp.up_proj": (N_FF, N_EMBD), "mlp.down_proj": (N_EMBD, N_FF),
}
GGUF_SHAPES = {"attn_q": (N_EMBD, N_EMBD), "attn_k": (N_HEAD_KV * HEAD_DIM, N_EMBD),
               "attn_v": (N_HEAD_KV * HEAD_DIM, N_EMBD), "ffn_up": (N_FF, N_EMBD), "ffn_down": (N_EMBD, N_FF)}
BREAKS = ("not-adapter", "arch", "unknown", "shape", "rank", "missing-b", "suffix", "embd", "alora", "nan")


def pair(rng, out, inp, rank):
    a = rng.standard_normal((rank, inp)) / np.sqrt(inp)
    b = rng.standard_normal((out, rank)) * 0.5 / np.sqrt(rank)
    return a.astype(np.float32), b.astype(np.float32)


def write_peft(args, rng):
    import torch
    directory = Path(args.peft)
    directory.mkdir(parents=True, exist_ok=True)
    targets = args.targets.split(",")
    tensors = {}
    for layer in range(N_LAYER):
        for module, (out, inp) in SHAPES.items():
            if module.split(".")[1] not in targets:
                continue
            a, b = pair(rng, out, inp, args.rank)
            prefix = f"base_model.model.model.layers.{layer}.{module}"
            tensors[prefix + ".lora_A.weight"] = torch.from_numpy(a)
            tensors[prefix + ".lora_B.weight"] = torch.from_numpy(b)
    if args.lm_head:
        a, b = pair(rng, N_VOCAB, N_EMBD, args.rank)
        tensors["base_model.model.lm_head.lora_A.weight"] = torch.from_numpy(a)
        tensors["base_model.model.lm_head.lora_B.weight"] = torch.from_numpy(b)
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": args.rank, "lora_alpha": args.alpha,
              "lora_dropout": 0.05, "bias": "none", "fan_in_fan_out": False, "use_dora": False,
              "use_rslora": False, "rank_pattern": {}, "alpha_pattern": {}, "modules_to_save": None,
              "target_modules": targets + (["lm_head"] if args.lm_head else []), "inference_mode": True}
    config.update(json.loads(args.config_extra or "{}"))
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2))
    if args.format == "bin":
        torch.save(tensors, directory / "adapter_model.bin")
    else:
        from safetensors.torch import save_file
        save_file(tensors, str(directory / "adapter_model.safetensors"))


def write_gguf(args, rng):
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFWriter
    from gguf.quants import quantize

    broken = args.broken
    w = GGUFWriter(args.gguf, "gpt2" if broken == "arch" else "llama")
    w.add_type("model" if broken == "not-adapter" else "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", args.alpha)
    if broken == "alora":
        w.add_array("adapter.alora.invocation_tokens", [1, 2, 3])

    def add(name, m):
        if args.type == "f16":
            w.add_tensor(name, m.astype(np.float16))
        elif args.type == "q8_0":
            w.add_tensor(name, quantize(m, Q.Q8_0), raw_dtype=Q.Q8_0)
        else:
            w.add_tensor(name, m)

    shapes = dict(GGUF_SHAPES)
    targets = [("blk.0.attn_q", "attn_q"), ("blk.0.attn_v", "attn_v"), ("blk.0.ffn_down", "ffn_down"),
               ("blk.1.attn_k", "attn_k"), ("blk.1.ffn_up", "ffn_up")]
    if args.like:
        from gguf import GGUFReader
        base = GGUFReader(args.like)
        shapes, targets = {}, []
        for t in base.tensors:
            parts = t.name.split(".")
            if len(parts) == 4 and parts[0] == "blk" and parts[2] in (
                    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
                inp, out = (int(d) for d in t.shape)  # ggml order
                shapes[t.name] = (out, inp)
                targets.append((t.name[:-len(".weight")], t.name))
    if broken == "unknown":
        targets.append(("blk.7.attn_q", "attn_q"))
    if broken == "embd":
        targets.append(("token_embd", None))
    for name, kind in targets:
        out, inp = shapes[kind] if kind else (N_VOCAB, N_EMBD)
        if broken == "shape" and name == "blk.0.attn_q":
            inp = 48
        a, b = pair(rng, out, inp, args.rank)
        if broken == "rank" and name == "blk.0.attn_q":
            b = pair(rng, out, inp, args.rank + 1)[1]
        if broken == "nan" and name == "blk.1.attn_k":
            b[3, 1] = np.nan
        add(f"{name}.weight.lora_a", a)
        if not (broken == "missing-b" and name == "blk.1.ffn_up"):
            add(f"{name}.weight.lora_b", b)
    if broken == "suffix":
        add("blk.0.attn_q.weight.lora_c", np.zeros((args.rank, N_EMBD), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peft")
    ap.add_argument("--gguf")
    ap.add_argument("--format", choices=("safetensors", "bin"), default="safetensors")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    ap.add_argument("--lm-head", action="store_true")
    ap.add_argument("--type", choices=("f32", "f16", "q8_0"), default="f32")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--config-extra")
    ap.add_argument("--break", dest="broken", choices=BREAKS)
    ap.add_argument("--like", help="--gguf: adapt every block matrix of this model")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    if bool(args.peft) == bool(args.gguf):
        ap.error("give exactly one of --peft or --gguf")
    if args.peft:
        write_peft(args, rng)
    else:
        write_gguf(args, rng)


if __name__ == "__main__":
    main()
