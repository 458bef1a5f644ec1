#!/usr/bin/env python3
"""One full ECR reply (docs/math.md sections 7 and 8) in the engine and in PyTorch, side by side, on the same
random published-size checkpoints, threads and inputs.

    bench_responder.py --bench BUILD/benchmarks/bench_responder [--size published|tiny] [--threads 2]
                       [--reps 3] [--data DIR] [--json-out FILE]

Makes (once, into --data) a random bundle with tools.make_random_bundle (backbone, text
encoder, conv prompt and generator over the shared ReDial KG, review entities from the shared
reviews; --keep-checkpoints for the torch side), runs bench_responder on it, then does the same
work in PyTorch from the ids the engine used:

    RoBERTa over the context -> UniCRS conv prompt -> template: backbone with that prefix, greedy,
    no repeated 3-grams, <= 50 new tokens -> reply: generator after the prompt ids, greedy, no
    repeated 3-grams, <= 150 new tokens

Both sides build the static R-GCN entity table at load, not per reply. The PyTorch side is the
project's references (tools.reference: GPT-2 with its KV cache, the prefix rows first in it;
RoBERTa; KGPrompt) under inference_mode and torch.set_num_threads, and runs as installed and
with oneDNN linears; its tokens are compared with the engine's. Text work (tokenizing, retrieval, prompt text) is the
engine's alone and is inside its time.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
import compare_torch as ct  # noqa: E402
from tools import module_command, module_env  # noqa: E402
from tools.reference import kgprompt as kgp  # noqa: E402
from tools.reference.gpt2 import GPT2, banned_tokens  # noqa: E402
from tools.reference.roberta import Roberta  # noqa: E402

SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")
EOS = 50256


def make_data(directory, size):
    bundle = os.path.join(directory, "responder.ecr")
    if os.path.exists(bundle):
        return bundle
    os.makedirs(directory, exist_ok=True)
    subprocess.run(module_command("tools.make_random_bundle", "--out", bundle + ".tmp", "--size", size,
                                  "--components", "backbone,text_encoder,conv_prompt,generator",
                                  "--reviews", os.path.join(SHARED, "reviews", "movie_reviews.json"),
                                  "--keep-checkpoints", os.path.join(directory, "checkpoints")),
                   check=True, env=module_env())
    os.replace(bundle + ".tmp", bundle)
    return bundle


def greedy(model, ids, prefix, max_new, no_repeat=3):
    """HuggingFace generate(): greedy, no_repeat_ngram_size over prompt + output, stop after eos."""
    tokens, out = list(ids), []
    hidden, cache = model.forward(ids, model.start(prefix), 0)
    while True:
        logits = model.logits(hidden[-1])
        for t in banned_tokens(tokens, no_repeat):
            logits[t] = float("-inf")
        nxt = int(torch.argmax(logits))
        tokens.append(nxt)
        out.append(nxt)
        if nxt == EOS or len(out) == max_new:
            return out
        hidden, cache = model.forward([nxt], cache, len(tokens) - 1)


def bench_torch(data, inputs, reps, threads, onednn):
    torch.set_num_threads(threads)
    ck = os.path.join(data, "checkpoints")
    with torch.inference_mode():
        t0 = time.perf_counter()
        roberta = Roberta(os.path.join(ck, "text_encoder"), onednn)
        edges, _, _ = kgp.build_edges(os.path.join(SHARED, "redial"))
        prompt = kgp.KGPromptReference(kgp.load_state(os.path.join(ck, "conv_prompt", "model.pt"), torch.float32), edges)
        backbone = GPT2(os.path.join(ck, "backbone"), onednn)
        generator = GPT2(os.path.join(ck, "generator"), onednn)
        load_ms = (time.perf_counter() - t0) * 1e3
        entities = torch.tensor(inputs["conv_entities"], dtype=torch.long)

        def reply():
            states = roberta.hidden(inputs["conv_prompt_ids"])
            prefix = prompt.prompt("conv", states, entities)
            template = greedy(backbone, inputs["template_input_ids"], prefix, 50)
            return template, greedy(generator, inputs["prompt_ids"], None, 150)

        template, answer = reply()
        reply_ms = ct.median_ms(reps, reply, budget_s=120.0)
    return {"reply_ms": reply_ms, "load_ms": load_ms, "same_tokens": template == inputs["template_ids"]
            and answer == inputs["reply_ids"]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bench", default=os.path.join(ROOT, "build-eng-native", "benchmarks", "bench_responder"))
    p.add_argument("--size", choices=["published", "tiny"], default="published")
    p.add_argument("--data", help="folder for the random checkpoints and bundle (made once; default beside --bench)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json-out")
    a = p.parse_args()
    data = a.data or os.path.join(os.path.dirname(os.path.abspath(a.bench)), f"responder-data-{a.size}")
    bundle = make_data(data, a.size)
    engine = json.loads(subprocess.run([a.bench, "--bundle", bundle, "--threads", str(a.threads), "--reps",
                                        str(a.reps)], check=True, capture_output=True, text=True).stdout)
    inputs = engine["inputs"]
    plain = bench_torch(data, inputs, a.reps, a.threads, onednn=False)
    onednn = bench_torch(data, inputs, a.reps, a.threads, onednn=True)
    tokens = engine["template_tokens"] + engine["reply_tokens"]
    best = min(plain["reply_ms"], onednn["reply_ms"])
    print(f"one full reply, {a.size} shapes, {a.threads} threads, torch {torch.__version__}: template "
          f"{engine['template_tokens']} tokens after {len(inputs['template_input_ids'])} of context (+ conv prefix "
          f"of {20 + len(inputs['conv_prompt_ids'])} rows), reply {engine['reply_tokens']} tokens after "
          f"{len(inputs['prompt_ids'])} prompt tokens")
    print(f"{'':26} {'ecr':>9} {'torch':>9} {'+onednn':>9} {'speed-up':>9}")
    print(f"{'full reply (ms)':26} {engine['reply_ms']:9.0f} {plain['reply_ms']:9.0f} {onednn['reply_ms']:9.0f} "
          f"{best / engine['reply_ms']:8.2f}x")
    print(f"{'per generated token (ms)':26} {engine['reply_ms'] / tokens:9.1f} {plain['reply_ms'] / tokens:9.1f} "
          f"{onednn['reply_ms'] / tokens:9.1f}")
    print(f"{'load (ms)':26} {engine['load_ms']:9.0f} {plain['load_ms']:9.0f} {onednn['load_ms']:9.0f}")
    print(f"torch decoded the engine's tokens: {'yes' if plain['same_tokens'] and onednn['same_tokens'] else 'NO'}")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"engine": {k: v for k, v in engine.items() if k != "inputs"}, "torch": plain,
                       "torch_onednn": onednn}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
