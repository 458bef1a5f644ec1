"""Random-weight checkpoints in the real HuggingFace layouts, for testing the converter and engine.

    python3 -m tools.make_random_checkpoints gpt2 --out DIR --layers L --heads NH --hidden D --positions P \
        --vocab-dir VDIR [--classifier NUM_LABELS] [--seed S] [--safetensors]
    python3 -m tools.make_random_checkpoints roberta --out DIR --layers L --heads NH --hidden D --intermediate I \
        --positions P --vocab-dir VDIR [--bare] [--seed S] [--safetensors]

Writes config.json, pytorch_model.bin (torch.save of the state dict; model.safetensors instead
with --safetensors) and the tokenizer files. VDIR holds GPT-2's encoder.json + vocab.bpe.

GPT-2: GPT2LMHeadModel keys (lm_head.weight tied to wte; with --safetensors it is left out,
as HuggingFace's safe serialisation drops tied weights) or GPT2ForSequenceClassification
(--classifier: score.weight, no lm_head); the attn.bias / attn.masked_bias buffers old
checkpoints carry are included. Tokenizer: vocab.json + merges.txt copied from VDIR, added
<pad>=50257, <movie>=50258; vocab_size 50259.

RoBERTa: RobertaForMaskedLM keys (roberta.* + lm_head.*) or a bare RobertaModel (--bare: no
prefix, with the pooler). There is no real RoBERTa vocabulary here, so one is derived from
GPT-2's with RoBERTa's id plan: <s>=0, <pad>=1, </s>=2, <unk>=3, GPT-2 token i at id i + 4
(<|endoftext|> included, at 50260), fairseq's filler tokens madeupword0000..0002 at
50261..50263, <mask>=50264 (50265 entries, as roberta-base), added <movie>=50265; the model's
vocab_size is 50266, as after resize_token_embeddings. Merges are GPT-2's (as in roberta-base).

Init: weight matrices normal(0, 1/sqrt(fan_in)), embeddings normal(0, 0.1), LayerNorm weights
1 + normal(0, 0.1), biases normal(0, 0.02). Nothing is zero or one, so a skipped bias or a
swapped LayerNorm parameter shows; fan-in scaling keeps activations O(1) at any width, so
attention is far from uniform and tanh-vs-erf GELU differ by more than test tolerances (with
HuggingFace's std 0.02 a 16-wide test model would have near-zero pre-activations that hide both).
"""

import argparse
import json
import os
import shutil
import struct
import sys

import torch

EMOTION_LABELS = ["like", "curious", "happy", "grateful", "negative", "neutral", "nostalgia", "agreement",
                  "surprise"]
GPT2_EOS = 50256
GPT2_ADDED = {"<pad>": 50257, "<movie>": 50258}
ROBERTA_SPECIALS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
ROBERTA_FILLERS = ["madeupword0000", "madeupword0001", "madeupword0002"]
ROBERTA_MASK_ID = 50264
ROBERTA_ADDED = {"<movie>": 50265}


class Init:
    """Draws tensors from one seeded generator, in the order they are asked for."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def normal(self, *shape, std=0.02, mean=0.0):
        return torch.randn(*shape, generator=self.g) * std + mean

    def matrix(self, *shape, fan_in):
        return self.normal(*shape, std=fan_in ** -0.5)

    def embedding(self, *shape):
        return self.normal(*shape, std=0.1)

    def bias(self, n):
        return self.normal(n, std=0.02)

    def norm(self, prefix, n):
        return {f"{prefix}.weight": self.normal(n, std=0.1, mean=1.0), f"{prefix}.bias": self.bias(n)}

    def linear(self, prefix, shape):
        """GPT-2's Conv1D: weight (in, out), bias (out)."""
        return {f"{prefix}.weight": self.matrix(*shape, fan_in=shape[0]), f"{prefix}.bias": self.bias(shape[1])}


# --- tokenizers -------------------------------------------------------------------------------

def read_gpt2_vocab(vocab_dir):
    with open(os.path.join(vocab_dir, "encoder.json"), encoding="utf-8") as f:
        encoder = json.load(f)
    with open(os.path.join(vocab_dir, "vocab.bpe"), encoding="utf-8", newline="") as f:
        merges = f.read()
    return encoder, merges


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


def write_gpt2_tokenizer(out, vocab_dir):
    shutil.copyfile(os.path.join(vocab_dir, "encoder.json"), os.path.join(out, "vocab.json"))
    shutil.copyfile(os.path.join(vocab_dir, "vocab.bpe"), os.path.join(out, "merges.txt"))
    write_json(os.path.join(out, "added_tokens.json"), GPT2_ADDED)
    write_json(os.path.join(out, "special_tokens_map.json"),
               {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                "pad_token": "<pad>", "additional_special_tokens": ["<movie>"]})
    return max(GPT2_ADDED.values()) + 1


def roberta_vocab(gpt2_encoder):
    """The derived RoBERTa vocabulary (see the module doc)."""
    vocab = dict(ROBERTA_SPECIALS)
    for token, i in gpt2_encoder.items():
        vocab[token] = i + len(ROBERTA_SPECIALS)
    for token in ROBERTA_FILLERS:
        vocab[token] = len(vocab)
    vocab["<mask>"] = len(vocab)
    if vocab["<mask>"] != ROBERTA_MASK_ID:
        sys.exit(f"error: GPT-2 vocabulary has {len(gpt2_encoder)} tokens; the RoBERTa id plan needs 50257")
    return dict(sorted(vocab.items(), key=lambda kv: kv[1]))


def write_roberta_tokenizer(out, vocab_dir):
    encoder, merges = read_gpt2_vocab(vocab_dir)
    write_json(os.path.join(out, "vocab.json"), roberta_vocab(encoder))
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(merges)
    write_json(os.path.join(out, "added_tokens.json"), ROBERTA_ADDED)
    write_json(os.path.join(out, "special_tokens_map.json"),
               {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>",
                "additional_special_tokens": ["<movie>"]})
    return max(ROBERTA_ADDED.values()) + 1


# --- state dicts ------------------------------------------------------------------------------

def gpt2_state_dict(init, layers, hidden, positions, vocab, classifier):
    D = hidden
    sd = {"transformer.wte.weight": init.embedding(vocab, D), "transformer.wpe.weight": init.embedding(positions, D)}
    causal = torch.tril(torch.ones(positions, positions, dtype=torch.bool)).view(1, 1, positions, positions)
    for n in range(layers):
        p = f"transformer.h.{n}"
        sd.update(init.norm(f"{p}.ln_1", D))
        sd[f"{p}.attn.bias"] = causal
        sd[f"{p}.attn.masked_bias"] = torch.tensor(-1e4)
        sd.update(init.linear(f"{p}.attn.c_attn", (D, 3 * D)))  # Conv1D: (in, out)
        sd.update(init.linear(f"{p}.attn.c_proj", (D, D)))
        sd.update(init.norm(f"{p}.ln_2", D))
        sd.update(init.linear(f"{p}.mlp.c_fc", (D, 4 * D)))
        sd.update(init.linear(f"{p}.mlp.c_proj", (4 * D, D)))
    sd.update(init.norm("transformer.ln_f", D))
    if classifier:
        sd["score.weight"] = init.matrix(classifier, D, fan_in=D)
    else:
        sd["lm_head.weight"] = sd["transformer.wte.weight"]  # tied: one storage, as in a saved model
    return sd


def gpt2_config(layers, heads, hidden, positions, vocab, classifier):
    config = {
        "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
        "bos_token_id": GPT2_EOS, "embd_pdrop": 0.1, "eos_token_id": GPT2_EOS, "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": positions, "n_embd": hidden, "n_head": heads,
        "n_inner": None, "n_layer": layers, "n_positions": positions, "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False, "scale_attn_weights": True,
        "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
        "summary_type": "cls_index", "summary_use_proj": True, "use_cache": True, "vocab_size": vocab,
    }
    if classifier:
        names = EMOTION_LABELS if classifier == len(EMOTION_LABELS) else [f"LABEL_{i}" for i in range(classifier)]
        config.update(architectures=["GPT2ForSequenceClassification"], num_labels=classifier,
                      id2label={str(i): name for i, name in enumerate(names)},
                      label2id={name: i for i, name in enumerate(names)}, pad_token_id=GPT2_ADDED["<pad>"])
    return config


def roberta_state_dict(init, layers, hidden, intermediate, positions, vocab, bare):
    D, I = hidden, intermediate
    pre = "" if bare else "roberta."
    e = f"{pre}embeddings"
    sd = {f"{e}.position_ids": torch.arange(positions + 2).unsqueeze(0),
          f"{e}.word_embeddings.weight": init.embedding(vocab, D),
          f"{e}.position_embeddings.weight": init.embedding(positions + 2, D),
          f"{e}.token_type_embeddings.weight": init.embedding(1, D)}
    sd.update(init.norm(f"{e}.LayerNorm", D))

    def linear(prefix, out_features, in_features):  # nn.Linear: (out, in)
        return {f"{prefix}.weight": init.matrix(out_features, in_features, fan_in=in_features),
                f"{prefix}.bias": init.bias(out_features)}

    for n in range(layers):
        p = f"{pre}encoder.layer.{n}"
        for part in ("query", "key", "value"):
            sd.update(linear(f"{p}.attention.self.{part}", D, D))
        sd.update(linear(f"{p}.attention.output.dense", D, D))
        sd.update(init.norm(f"{p}.attention.output.LayerNorm", D))
        sd.update(linear(f"{p}.intermediate.dense", I, D))
        sd.update(linear(f"{p}.output.dense", D, I))
        sd.update(init.norm(f"{p}.output.LayerNorm", D))
    if bare:
        sd.update(linear("pooler.dense", D, D))
    else:
        sd.update(linear("lm_head.dense", D, D))
        sd.update(init.norm("lm_head.layer_norm", D))
        sd["lm_head.bias"] = init.bias(vocab)
        sd["lm_head.decoder.weight"] = sd[f"{e}.word_embeddings.weight"]
        sd["lm_head.decoder.bias"] = sd["lm_head.bias"]
    return sd


def roberta_config(layers, heads, hidden, intermediate, positions, vocab, bare):
    return {
        "architectures": ["RobertaModel" if bare else "RobertaForMaskedLM"], "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0, "classifier_dropout": None, "eos_token_id": 2, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": hidden, "initializer_range": 0.02,
        "intermediate_size": intermediate, "layer_norm_eps": 1e-05, "max_position_embeddings": positions + 2,
        "model_type": "roberta", "num_attention_heads": heads, "num_hidden_layers": layers, "pad_token_id": 1,
        "position_embedding_type": "absolute", "type_vocab_size": 1, "use_cache": True, "vocab_size": vocab,
    }


# --- safetensors (written by hand: header length, JSON header, data) --------------------------

SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
                      torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
                      torch.uint8: "U8", torch.bool: "BOOL"}


def write_safetensors(path, state_dict, metadata=None):
    header, chunks, offset = {}, [], 0
    for name, t in state_dict.items():
        t = t.detach().cpu().contiguous()
        data = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = metadata or {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the reference writer pads
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in chunks:
            f.write(data)


def save_state_dict(out, state_dict, safetensors, tied):
    if safetensors:
        write_safetensors(os.path.join(out, "model.safetensors"),
                          {k: v for k, v in state_dict.items() if k not in tied})
    else:
        torch.save(state_dict, os.path.join(out, "pytorch_model.bin"))


# --- command line -----------------------------------------------------------------------------

def make_gpt2(a):
    os.makedirs(a.out, exist_ok=True)
    vocab = write_gpt2_tokenizer(a.out, a.vocab_dir)
    init = Init(a.seed)
    sd = gpt2_state_dict(init, a.layers, a.hidden, a.positions, vocab, a.classifier)
    write_json(os.path.join(a.out, "config.json"),
               gpt2_config(a.layers, a.heads, a.hidden, a.positions, vocab, a.classifier))
    save_state_dict(a.out, sd, a.safetensors, tied={"lm_head.weight"})


def make_roberta(a):
    os.makedirs(a.out, exist_ok=True)
    vocab = write_roberta_tokenizer(a.out, a.vocab_dir)
    init = Init(a.seed)
    sd = roberta_state_dict(init, a.layers, a.hidden, a.intermediate, a.positions, vocab, a.bare)
    write_json(os.path.join(a.out, "config.json"),
               roberta_config(a.layers, a.heads, a.hidden, a.intermediate, a.positions, vocab, a.bare))
    save_state_dict(a.out, sd, a.safetensors, tied={"lm_head.decoder.weight", "lm_head.decoder.bias"})


def main(argv=None):
    parser = argparse.ArgumentParser(description="random-weight HuggingFace checkpoints for tests")
    sub = parser.add_subparsers(dest="model", required=True)

    def common(p):
        p.add_argument("--out", required=True, help="output folder (created)")
        p.add_argument("--layers", type=int, required=True)
        p.add_argument("--heads", type=int, required=True)
        p.add_argument("--hidden", type=int, required=True)
        p.add_argument("--positions", type=int, required=True, help="maximum sequence length")
        p.add_argument("--vocab-dir", required=True, help="folder with GPT-2's encoder.json and vocab.bpe")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--safetensors", action="store_true", help="write model.safetensors, not pytorch_model.bin")

    p = sub.add_parser("gpt2", help="GPT2LMHeadModel (or GPT2ForSequenceClassification)")
    common(p)
    p.add_argument("--classifier", type=int, metavar="NUM_LABELS", help="sequence classifier with this many labels")
    p.set_defaults(run=make_gpt2)
    p = sub.add_parser("roberta", help="RobertaForMaskedLM (or RobertaModel)")
    common(p)
    p.add_argument("--intermediate", type=int, required=True)
    p.add_argument("--bare", action="store_true", help="plain RobertaModel: no 'roberta.' prefix, no lm_head")
    p.set_defaults(run=make_roberta)
    a = parser.parse_args(argv)
    if a.hidden % a.heads:
        parser.error(f"--hidden {a.hidden} is not a multiple of --heads {a.heads}")
    a.run(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
