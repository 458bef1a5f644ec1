"""A small random-weight Llama GGUF file, written by the `gguf` package's GGUFWriter.

    python -m tools.make_llama_fixture --out F.gguf [--type f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1] [--untied]
        [--rope-scale FACTOR] [--seed S] [--break WHAT] [--chat [--full-vocab]] [--context N]

2 blocks, width 64, 4 query heads sharing 2 key/value heads (head size 16), feed-forward 128,
vocabulary 300, context 64, rope base 10000 (or 500000 with --rope-scale, which also sets a linear
rope.scaling.factor). The matrices are stored in --type (quantized with gguf.quants.quantize), the
norms in F32. --untied adds a separate `output` matrix; without it the head is token_embd.

--break makes one thing wrong, for the loader's error tests: shape (blk.1.attn_k is (64, 64)),
missing-tensor (no blk.1.ffn_up), missing-key (no llama.feed_forward_length), heads (head_count
5, not dividing 64), zero-blocks (block_count 0), kv-heads (head_count_kv 3, not dividing 4), type (blk.0.ffn_up stored IQ4_NL,
a ggml type ecr has no kernel for), arch (general.architecture gpt2).

--chat adds what a chat model's file has (the LLM responder's fixture): a byte-level BPE tokenizer
(tokenizer.ggml.model gpt2, pre gpt2) of the 256 byte tokens, a few merges and the control tokens
<|endoftext|> (bos, eos), <|im_start|> and <|im_end|>, and a ChatML tokenizer.chat_template.
--full-vocab pads that vocabulary with user-defined tokens <|extra_N|> up to token_embd's 300 rows,
so that any id the model chooses decodes to text (an untied random model chooses them freely).
--context sets the context length (default 64).

Needs the PyPI package gguf (tools/setup_venv.sh installs it into build/venv).
"""

import argparse

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGML_QUANT_SIZES, GGUFWriter, RopeScalingType
from gguf.quants import quantize

TYPES = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0, "q4_0": Q.Q4_0, "q4_1": Q.Q4_1,
         "q5_0": Q.Q5_0, "q5_1": Q.Q5_1}
N_LAYER, N_EMBD, N_HEAD, N_HEAD_KV, N_FF, N_VOCAB, N_CTX = 2, 64, 4, 2, 128, 300, 64
BREAKS = ("shape", "missing-tensor", "missing-key", "heads", "zero-blocks", "kv-heads", "type", "arch")


def byte_tokens():
    """GPT-2's byte-to-character table: the text of the 256 byte tokens, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def add_chat_tokenizer(w, full_vocab=False):
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a"]
    tokens = byte_tokens() + [m.replace(" ", "") for m in merges] + ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert len(tokens) <= N_VOCAB
    types = [1] * (len(tokens) - 3) + [3, 3, 3]
    if full_vocab:  # user-defined tokens for the rest of token_embd's rows, so that every id decodes
        extra = N_VOCAB - len(tokens)
        tokens += [f"<|extra_{i}|>" for i in range(extra)]
        types += [4] * extra
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tokens.index("<|endoftext|>"))
    w.add_eos_token_id(tokens.index("<|endoftext|>"))
    w.add_chat_template("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
                        "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
                        "{{ '<|im_start|>assistant\\n' }}{% endif %}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--type", choices=sorted(TYPES), default="f32")
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--rope-scale", type=float)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--break", dest="broken", choices=BREAKS)
    ap.add_argument("--chat", action="store_true")
    ap.add_argument("--full-vocab", action="store_true")
    ap.add_argument("--context", type=int, default=N_CTX)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    qtype = TYPES[args.type]

    w = GGUFWriter(args.out, "gpt2" if args.broken == "arch" else "llama")
    w.add_block_count(0 if args.broken == "zero-blocks" else N_LAYER)
    w.add_context_length(args.context)
    if args.chat:
        add_chat_tokenizer(w, args.full_vocab)
    w.add_embedding_length(N_EMBD)
    if args.broken != "missing-key":
        w.add_feed_forward_length(N_FF)
    w.add_head_count(5 if args.broken == "heads" else N_HEAD)
    w.add_head_count_kv(3 if args.broken == "kv-heads" else N_HEAD_KV)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    if args.rope_scale:
        w.add_rope_freq_base(500000.0)
        w.add_rope_scaling_type(RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(args.rope_scale)
    else:
        w.add_rope_freq_base(10000.0)

    def matrix(name, out, inp, scale=None, tensor_type=None):
        """An (out, in) matrix, stored as ggml dims [in, out]."""
        a = (rng.standard_normal((out, inp)) * (scale or 1.0 / np.sqrt(inp))).astype(np.float32)
        t = tensor_type or qtype
        if t == Q.IQ4_NL:  # no quantizer: any bytes are a valid block
            block, nbytes = GGML_QUANT_SIZES[t]
            raw = rng.integers(0, 256, (out, inp // block * nbytes), dtype=np.uint8)
            w.add_tensor(name, raw, raw_dtype=t)
        elif t == Q.F32:
            w.add_tensor(name, a)
        elif t == Q.F16:
            w.add_tensor(name, a.astype(np.float16))
        else:
            w.add_tensor(name, quantize(a, t), raw_dtype=t)

    def norm(name):
        w.add_tensor(name, (1.0 + 0.1 * rng.standard_normal(N_EMBD)).astype(np.float32))

    head_dim = N_EMBD // N_HEAD
    matrix("token_embd.weight", N_VOCAB, N_EMBD, scale=1.0)
    for layer in range(N_LAYER):
        b = f"blk.{layer}."
        norm(b + "attn_norm.weight")
        matrix(b + "attn_q.weight", N_EMBD, N_EMBD)
        kv_rows = N_EMBD if args.broken == "shape" and layer == 1 else N_HEAD_KV * head_dim
        matrix(b + "attn_k.weight", kv_rows, N_EMBD)
        matrix(b + "attn_v.weight", N_HEAD_KV * head_dim, N_EMBD)
        matrix(b + "attn_output.weight", N_EMBD, N_EMBD)
        norm(b + "ffn_norm.weight")
        matrix(b + "ffn_gate.weight", N_FF, N_EMBD)
        if not (args.broken == "missing-tensor" and layer == 1):
            matrix(b + "ffn_up.weight", N_FF, N_EMBD,
                   tensor_type=Q.IQ4_NL if args.broken == "type" and layer == 0 else None)
        matrix(b + "ffn_down.weight", N_EMBD, N_FF)
    norm("output_norm.weight")
    if args.untied:
        matrix("output.weight", N_VOCAB, N_EMBD)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
