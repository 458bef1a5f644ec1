"""The GPT-2 and RoBERTa references (tools.reference.gpt2, tools.reference.roberta) from the
command line: the oracle the C++ engine is tested against.

    python3 -m tools.reference gpt2 --checkpoint DIR --ids 1,2,3 [--ids 4,5 ...] [--prefix P.npy]
        [--positions-from 0] --out OUT.npy [--hidden-out H.npy]
      OUT: logits (T, V) of every position through the tied LM head; for a
      GPT2ForSequenceClassification checkpoint, the (num_labels,) score of the last token.
      H: final hidden states after ln_f (T, D).
    python3 -m tools.reference gpt2-generate --checkpoint DIR --ids ... [--prefix P.npy]
        --max-new-tokens N [--no-repeat-ngram K] [--eos 50256] --out tokens.json
      Greedy decoding; tokens.json = {"prompt": [...], "generated": [...], "stopped_at_eos": bool};
      "generated" ends with the eos token when decoding stopped there (as HuggingFace returns it).
    python3 -m tools.reference gpt2-nll --checkpoint DIR --ids ... [--ids ...] --out nll.json
      The language-model loss of each sequence on its own: nll.json = {"nll": [...], "tokens": [...]},
      per sequence the sum over its tokens after the first of -ln p(token | tokens before it)
      (log-softmax of the f32 logits, in float64) and how many tokens that is.
    python3 -m tools.reference roberta --checkpoint DIR --ids 0,5,6,2 [--ids ...] --out H.npy
      Last hidden states (T, D).

--prefix: f32 .npy of shape (S, n_layer*2*n_embd), the KGPrompt output (docs/math.md section 4, step 7),
read as (S, layer, key|value, head, head_dim). Every query attends to all S prefix rows and
causally to the sequence; the sequence's positions start at --positions-from (default 0).

Several --ids give a batch: each sequence runs on its own and the outputs are stacked with a
leading batch dimension, zero-padded to the longest (classifier scores: (B, num_labels)).
"""

import argparse
import json
import sys

import numpy as np
import torch

from .gpt2 import GPT2, generate
from .roberta import Roberta


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


def run_nll(a):
    model = GPT2(a.checkpoint)
    if model.classifier:
        sys.exit("error: gpt2-nll needs a language model, not a classifier")
    check_ids(a.ids, model.config["vocab_size"], model.config["n_positions"], "positions")
    nll = []
    with torch.no_grad():
        for ids in a.ids:
            logp = torch.log_softmax(model.logits(model.hidden(ids)).double(), dim=-1)
            nll.append(-float(logp[torch.arange(len(ids) - 1), torch.as_tensor(ids[1:])].sum()))
    with open(a.out, "w") as f:
        json.dump({"nll": nll, "tokens": [len(ids) - 1 for ids in a.ids]}, f)
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
    p = sub.add_parser("gpt2-nll", help="language-model loss of each sequence (nats, summed)")
    common(p)
    p.set_defaults(run=run_nll)
    p = sub.add_parser("roberta", help="last hidden states")
    common(p)
    p.set_defaults(run=run_roberta)
    a = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    a.run(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
