"""A PEFT LoRA adapter directory -> a llama.cpp-style GGUF LoRA file that `ecr generate --lora`
(and llama.cpp's --lora) apply over a Llama GGUF model.

    python -m tools.convert_peft_lora --peft DIR --base MODEL.gguf --out ADAPTER.gguf [--outtype f32|f16]

DIR holds adapter_config.json and adapter_model.safetensors (or adapter_model.bin), as PEFT's
save_pretrained writes them. --base is the GGUF model the adapter was trained on (converted from
the same HuggingFace checkpoint): its architecture, head counts and tensor shapes check the
adapter and give the q/k row permutation.

What it writes (llama.cpp's convert_lora_to_gguf.py writes the same layout): general.type
"adapter", adapter.type "lora", adapter.lora.alpha, and per adapted matrix
`<GGUF tensor name>.lora_a` = lora_A (r, in) and `.lora_b` = lora_B (out, r), ggml dims [in, r]
and [r, out]. HF names map to GGUF ones as llama.cpp's converter maps the base weights:

    base_model.model.model.layers.N.self_attn.{q,k,v,o}_proj   blk.N.attn_{q,k,v,output}.weight
    base_model.model.model.layers.N.mlp.{gate,up,down}_proj    blk.N.ffn_{gate,up,down}.weight
    base_model.model.lm_head                                   output.weight

llama.cpp's HF->GGUF conversion permutes the rows of q_proj and k_proj (per head, from the
rotate-half order HF's rotary embedding uses to ggml's adjacent pairs); the same permutation of
lora_B's rows keeps B @ A aligned with the permuted base (lora_A works on the input side, which
is not permuted). rsLoRA (alpha / sqrt(r)) is written as the alpha that gives the same factor
under llama.cpp's alpha / r.

Refused with a message naming the field: a peft_type other than LORA, DoRA (use_dora),
rank_pattern / alpha_pattern, modules_to_save, trained biases (bias != none), fan_in_fan_out,
LoRA on embed_tokens, a module outside the list above (in target_modules or among the tensors), a
tensor of a module target_modules does not name, a tensor whose shape does not fit the
base model or the rank r.

Needs gguf, safetensors (tools/setup_venv.sh) and torch (Debian's python3; the venv sees it).
"""

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFWriter

MODULES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
LAYER = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(.+)\.lora_([AB])\.weight$")
HEAD = re.compile(r"^base_model\.model\.lm_head\.lora_([AB])\.weight$")


class ConversionError(Exception):
    pass


def read_config(directory):
    path = directory / "adapter_config.json"
    if not path.is_file():
        raise ConversionError(f"{directory}: no adapter_config.json (a PEFT adapter directory has one)")
    config = json.loads(path.read_text())

    def refuse(field, why):
        raise ConversionError(f"{path}: {field} = {config.get(field)!r}: {why}")

    if config.get("peft_type", "LORA") != "LORA":
        refuse("peft_type", "only LoRA adapters convert")
    if config.get("use_dora"):
        refuse("use_dora", "DoRA's magnitude vector has no place in a GGUF LoRA")
    for field in ("rank_pattern", "alpha_pattern"):
        if config.get(field):
            refuse(field, "per-module ranks or alphas are not supported (one r and lora_alpha for all)")
    if config.get("modules_to_save"):
        refuse("modules_to_save", "fully trained modules are not LoRA pairs")
    if config.get("bias", "none") != "none":
        refuse("bias", "trained biases are not supported (Llama has none)")
    if config.get("fan_in_fan_out"):
        refuse("fan_in_fan_out", "Llama's projections are nn.Linear (out, in)")
    targets = config.get("target_modules")
    if isinstance(targets, list):  # (a string is a regex over module names: the tensors say what it matched)
        known = {m.split(".")[1] for m in MODULES} | {"lm_head"}
        unknown = sorted(set(targets) - known)
        if unknown:
            refuse("target_modules", f"{unknown} are not modules this converter maps ({', '.join(sorted(known))})")
    for field in ("r", "lora_alpha"):
        if not isinstance(config.get(field), (int, float)) or config[field] <= 0:
            refuse(field, "expected a positive number")
    return config


def read_tensors(directory):
    """name -> float32 numpy array, from adapter_model.safetensors or adapter_model.bin."""
    import torch
    st, pt = directory / "adapter_model.safetensors", directory / "adapter_model.bin"
    if st.is_file():
        from safetensors.torch import load_file
        tensors = load_file(str(st))
    elif pt.is_file():
        tensors = torch.load(str(pt), map_location="cpu", weights_only=True)
    else:
        raise ConversionError(f"{directory}: no adapter_model.safetensors or adapter_model.bin")
    return {name: t.to(torch.float32).numpy() for name, t in tensors.items()}


def permute_rows(b, n_head):
    """llama.cpp's LlamaModel.permute of an (out, r) matrix's rows: per head, rotate-half order
    -> adjacent pairs."""
    return b.reshape(n_head, 2, b.shape[0] // n_head // 2, *b.shape[1:]).swapaxes(1, 2).reshape(b.shape)


def field(reader, key):
    f = reader.get_field(key)
    return None if f is None else f.contents()


def convert(peft_dir, base_path, out_path, outtype="f32"):
    directory = Path(peft_dir)
    config = read_config(directory)
    rank = int(config["r"])
    alpha = float(config["lora_alpha"])
    if config.get("use_rslora"):
        alpha *= math.sqrt(rank)  # rsLoRA's alpha / sqrt(r) as llama.cpp's alpha' / r
    tensors = read_tensors(directory)

    base = GGUFReader(base_path)
    arch = field(base, "general.architecture")
    if arch != "llama":
        raise ConversionError(f"{base_path}: general.architecture is {arch!r}, expected 'llama'")
    n_head = int(field(base, "llama.attention.head_count"))
    n_head_kv = int(field(base, "llama.attention.head_count_kv") or n_head)
    base_dims = {t.name: [int(d) for d in t.shape] for t in base.tensors}  # ggml order: [in, out]

    pairs = {}  # GGUF name -> {"A": ..., "B": ...}
    for name, value in tensors.items():
        if ".embed_tokens." in name or ".lora_embedding_" in name:
            raise ConversionError(f"{name}: LoRA of the token embeddings is not supported")
        m, h = LAYER.match(name), HEAD.match(name)
        if m and m.group(2) in MODULES:
            target, half = f"blk.{m.group(1)}.{MODULES[m.group(2)]}.weight", m.group(3)
        elif h:
            target, half = "output.weight", h.group(1)
        else:
            raise ConversionError(f"{name}: not a LoRA tensor of a module this converter maps "
                                  f"({', '.join(MODULES)}, lm_head)")
        module = "lm_head" if h else m.group(2).split(".")[1]
        if isinstance(config.get("target_modules"), list) and module not in config["target_modules"]:
            raise ConversionError(f"{name}: module {module} is not in adapter_config.json's target_modules")
        if value.ndim != 2:
            raise ConversionError(f"{name}: shape {list(value.shape)}, expected a matrix")
        pairs.setdefault(target, {})[half] = (name, value)

    w = GGUFWriter(out_path, "llama")
    w.add_type("adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", alpha)
    for target in sorted(pairs):
        halves = pairs[target]
        if set(halves) != {"A", "B"}:
            missing = "lora_B" if "A" in halves else "lora_A"
            raise ConversionError(f"{next(iter(halves.values()))[0]}: its {missing} is missing")
        (a_name, a), (b_name, b) = halves["A"], halves["B"]
        if target not in base_dims:
            raise ConversionError(f"{a_name}: the base model has no tensor {target}"
                                  + (" (its output is tied to token_embd)" if target == "output.weight" else ""))
        n_in, n_out = base_dims[target]
        if a.shape != (rank, n_in):
            raise ConversionError(f"{a_name}: shape {list(a.shape)}, expected [{rank}, {n_in}] (r, in)")
        if b.shape != (n_out, rank):
            raise ConversionError(f"{b_name}: shape {list(b.shape)}, expected [{n_out}, {rank}] (out, r)")
        if target.endswith(".attn_q.weight"):
            b = permute_rows(b, n_head)
        elif target.endswith(".attn_k.weight"):
            b = permute_rows(b, n_head_kv)
        dtype = np.float16 if outtype == "f16" else np.float32
        w.add_tensor(target + ".lora_a", np.ascontiguousarray(a, dtype=dtype))
        w.add_tensor(target + ".lora_b", np.ascontiguousarray(b, dtype=dtype))
    if not pairs:
        raise ConversionError(f"{directory}: no LoRA tensors")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return len(pairs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peft", required=True, help="the PEFT adapter directory")
    ap.add_argument("--base", required=True, help="the base model's GGUF file")
    ap.add_argument("--out", required=True)
    ap.add_argument("--outtype", choices=("f32", "f16"), default="f32")
    args = ap.parse_args()
    try:
        n = convert(args.peft, args.base, args.out, args.outtype)
    except ConversionError as e:
        sys.exit(f"convert_peft_lora: {e}")
    print(f"{args.out}: {n} adapted matrices")


if __name__ == "__main__":
    main()
