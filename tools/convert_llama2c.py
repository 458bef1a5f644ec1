"""A llama2.c checkpoint and tokenizer as a GGUF file, laid out as llama.cpp's
llama-convert-llama2c-to-ggml writes it.

    python3 tools/convert_llama2c.py --model stories260K.bin --tokenizer tok512.bin --out stories260K.gguf
                                     [--compare LLAMACPP.gguf]

(a python with the `gguf` package: tools/setup_venv.sh's build/venv.) The inputs are llama2.c's
formats (shared/data/README.md): the checkpoint is 7 int32 (dim, hidden_dim, n_layers, n_heads,
n_kv_heads, vocab_size, seq_len; a negative vocab_size means a separate classifier) and then f32
weights, PyTorch's (out, in) row-major matrices, which are ggml's [in, out] as they are; the
tokenizer is an int32 max piece length, then per piece an f32 score, an int32 length and the bytes.

The file gets general.architecture "llama", the llama.* hyperparameters (rope dimension
dim / n_heads, RMS epsilon 1e-5), tokenizer.ggml.model "llama" with tokens (spaces as U+2581;
ids 0, 1, 2 named <unk>, <s>, </s>), scores and types (unknown, control, byte for <0xXX>, control
for an empty piece, else normal), bos 1 / eos 2 / unk 0, and every weight as F32 under llama.cpp's
names, output.weight included (a copy of token_embd.weight when the classifier is shared).

Where it differs from llama.cpp's converter, on purpose: llama.context_length is the
checkpoint's seq_len (llama.cpp writes its --n-ctx option, 128 unless given); no separator or
padding token id is written (llama.cpp writes 0xFFFFFFFF, meaning none).

--compare reads a file that llama.cpp's llama-convert-llama2c-to-ggml wrote from the same inputs
and checks that tokens, scores, token types and every tensor (name, shape, type, values) are
the same; it prints each difference and exits 1 if there is one.
"""
import argparse
import struct

import numpy as np
from gguf import GGUFReader, GGUFWriter, TokenType

SPACE = "\u2581"


def read_tokenizer(path, vocab_size):
    tokens, scores, types = [], [], []
    with open(path, "rb") as f:
        f.read(4)  # max piece length: not needed
        for i in range(vocab_size):
            score, length = struct.unpack("<fi", f.read(8))
            if length < 0 or length > 1 << 16:
                raise SystemExit("%s: piece %d has length %d" % (path, i, length))
            text = f.read(length).decode("utf-8")
            if i == 0:
                text, kind = "<unk>", TokenType.UNKNOWN
            elif i in (1, 2):
                text, kind = ("<s>", "</s>")[i - 1], TokenType.CONTROL
            elif not text:
                kind = TokenType.CONTROL
            elif len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
                kind = TokenType.BYTE
            else:
                kind = TokenType.NORMAL
            tokens.append(text.replace(" ", SPACE))
            scores.append(score)
            types.append(kind)
    return tokens, scores, types


def read_checkpoint(path):
    with open(path, "rb") as f:
        header = struct.unpack("<7i", f.read(28))
        weights = np.frombuffer(f.read(), dtype="<f4")
    dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len = header
    shared = vocab > 0
    vocab = abs(vocab)
    head = dim // n_heads
    kv_dim = n_kv_heads * head
    shapes = [  # llama2.c's order; each (rows, cols) is (out, in) per layer
        ("token_embd", (vocab, dim), 1), ("attn_norm", (dim,), n_layers), ("attn_q", (dim, dim), n_layers),
        ("attn_k", (kv_dim, dim), n_layers), ("attn_v", (kv_dim, dim), n_layers), ("attn_output", (dim, dim), n_layers),
        ("ffn_norm", (dim,), n_layers), ("ffn_gate", (hidden, dim), n_layers), ("ffn_down", (dim, hidden), n_layers),
        ("ffn_up", (hidden, dim), n_layers), ("output_norm", (dim,), 1),
        ("freq_cis_real", (seq_len, head // 2), 1), ("freq_cis_imag", (seq_len, head // 2), 1),
    ]
    if not shared:
        shapes.append(("output", (vocab, dim), 1))
    tensors, at = {}, 0
    for name, shape, count in shapes:
        size = int(np.prod(shape)) * count
        if at + size > weights.size:
            raise SystemExit("%s: ends inside %s (%d floats, needs %d)" % (path, name, weights.size, at + size))
        block = weights[at:at + size].reshape((count,) + shape)
        at += size
        tensors[name] = block
    if at != weights.size:
        raise SystemExit("%s: %d floats left after the weights" % (path, weights.size - at))
    if shared:
        tensors["output"] = tensors["token_embd"]
    hparams = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads,
                   vocab=vocab, seq_len=seq_len)
    return hparams, tensors


def compare(ours_path, theirs_path):
    ours, theirs = GGUFReader(ours_path), GGUFReader(theirs_path)
    problems = []
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        a, b = ours.fields[key], theirs.fields[key]
        if [bytes(a.parts[i]) for i in a.data] != [bytes(b.parts[i]) for i in b.data]:
            problems.append("%s differs" % key)
    mine = {t.name: t for t in ours.tensors}
    other = {t.name: t for t in theirs.tensors}
    if set(mine) != set(other):
        problems.append("tensor names differ: %s" % sorted(set(mine) ^ set(other)))
    for name in sorted(set(mine) & set(other)):
        a, b = mine[name], other[name]
        if a.tensor_type != b.tensor_type or list(a.shape) != list(b.shape):
            problems.append("%s: %s %s vs %s %s" % (name, a.tensor_type.name, list(a.shape), b.tensor_type.name,
                                                    list(b.shape)))
        elif not np.array_equal(np.asarray(a.data), np.asarray(b.data)):
            problems.append("%s: values differ" % name)
    for p in problems:
        print(p)
    print("compared with %s: %d tensors, %d differences" % (theirs_path, len(mine), len(problems)))
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--compare", help="a GGUF file llama.cpp's converter wrote from the same inputs")
    args = ap.parse_args()
    hp, tensors = read_checkpoint(args.model)
    tokens, scores, types = read_tokenizer(args.tokenizer, hp["vocab"])

    w = GGUFWriter(args.out, "llama")
    w.add_name("llama")
    w.add_context_length(hp["seq_len"])
    w.add_embedding_length(hp["dim"])
    w.add_feed_forward_length(hp["hidden"])
    w.add_head_count(hp["n_heads"])
    w.add_head_count_kv(hp["n_kv_heads"])
    w.add_block_count(hp["n_layers"])
    w.add_rope_dimension_count(hp["dim"] // hp["n_heads"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    # llama.cpp's order: embeddings, final norm, output, then per layer q k v o, norms and the FFN.
    w.add_tensor("token_embd.weight", tensors["token_embd"][0])
    w.add_tensor("output_norm.weight", tensors["output_norm"][0])
    w.add_tensor("output.weight", np.ascontiguousarray(tensors["output"][0]))
    for i in range(hp["n_layers"]):
        for name in ("attn_q", "attn_k", "attn_v", "attn_output", "attn_norm", "ffn_gate", "ffn_down", "ffn_up",
                     "ffn_norm"):
            w.add_tensor("blk.%d.%s.weight" % (i, name), np.ascontiguousarray(tensors[name][i]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return compare(args.out, args.compare) if args.compare else 0


if __name__ == "__main__":
    raise SystemExit(main())
