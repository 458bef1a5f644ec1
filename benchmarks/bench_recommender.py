#!/usr/bin/env python3
"""ecr::Recommender beside PyTorch at the published shapes: bundle load (with the static tables)
and one recommendation.

    bench_recommender.py --bench BUILD/benchmarks/bench_recommender [--threads N] [--reps 10] [--data DIR]

Makes once, into --data, a random bundle with tools.make_random_bundle --size published
(GPT-2 backbone 12 x 768, RoBERTa 12 x 768, ECR rec KGPrompt with 8 R-GCN bases and 10 prefix
rows) over a synthetic KG of 31,162 entities (with a co-occurrence matrix counted from random
labelled dialogs), and a dialog of 200+ context tokens with 32 entities and host emotions.
Then it runs bench_recommender on it and times the same work in PyTorch:

  load       ecr: Recommender::load (bundle, models, entity table E = proj2(proj1(g) + g) with
             g = RGCN(node_embeds) + node_embeds, emotion table, G = C E, prefix rows, linker).
             torch: torch.load of the three checkpoints, weights prepared as the forward pass
             wants them, and the same static tables (edges and C from .npy files made once).
  load, tables stored
             ecr only: the same bundle written with tools.convert --static-tables (the tables
             computed at convert time), whose load maps them instead of computing them; its
             top 10 must equal the other bundle's.
  recommend  one dialog: RoBERTa over the prompt ids, the rec prompt, GPT-2 with the prefix over
             the context ids, scores z E^T over all entities, the top 10 items. The torch side
             gets exactly the ids, entities and emotions the engine used.
  --dtypes   ecr only: the same weights stored bf16 (or the types named; tools.convert --dtype),
             tables stored: load, recommend against the f32 engine, and top-10 recall against it.

The PyTorch side is the project's references (tools.reference: GPT-2, RoBERTa, the R-GCN) with
the KGPrompt written for speed (weights prepared once, inference_mode) and runs twice, as
installed ("torch") and with linears through oneDNN ("+onednn"); the speed-up is over the faster
of the two.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.mkldnn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")
sys.path.insert(0, ROOT)
import compare_torch as ct  # noqa: E402
from tools import module_command, module_env  # noqa: E402
from tools.ecr_bundle import read_bundle  # noqa: E402
from tools.reference import kgprompt as kgp  # noqa: E402
from tools.reference.gpt2 import GPT2  # noqa: E402
from tools.reference.rgcn import rgcn_edges  # noqa: E402
from tools.reference.roberta import Roberta  # noqa: E402

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

ENTITIES = 31162
CONTEXT_ENTITIES = 32


# --- data, made once --------------------------------------------------------------------------

MAKE_BUNDLE = ["--size", "published", "--synthetic-entities", str(ENTITIES), "--components",
               "backbone,text_encoder,rec_prompt"]


def make_static(directory, dtype="f32"):
    """The same random weights and KG (same seed) with the static tables stored, weights in `dtype`."""
    bundle = os.path.join(directory, "bench-static.ecr" if dtype == "f32" else f"bench-static-{dtype}.ecr")
    if not ct.is_current(bundle):
        subprocess.run(module_command("tools.make_random_bundle", "--out", bundle + ".tmp", "--static-tables",
                                      "--dtype", dtype, *MAKE_BUNDLE), check=True, env=module_env())
        os.replace(bundle + ".tmp", bundle)
    return bundle


def make_data(directory):
    bundle = os.path.join(directory, "bench.ecr")
    if ct.is_current(bundle):
        return bundle
    os.makedirs(directory, exist_ok=True)
    checkpoints = os.path.join(directory, "checkpoints")
    subprocess.run(module_command("tools.make_random_bundle", "--out", bundle + ".tmp", "--keep-checkpoints",
                                  checkpoints, *MAKE_BUNDLE), check=True, env=module_env())
    edges, _, _ = kgp.build_edges(os.path.join(checkpoints, "kg"))
    np.save(os.path.join(directory, "edges.npy"), edges)
    _, tensors = read_bundle(bundle + ".tmp")
    for part in ("indptr", "indices", "values"):
        np.save(os.path.join(directory, f"cooc_{part}.npy"), np.array(tensors[f"cooccurrence/{part}"]))
    make_dialog(os.path.join(directory, "dialog.json"), os.path.join(checkpoints, "kg"))
    os.replace(bundle + ".tmp", bundle)
    return bundle


def make_dialog(path, kg_dir):
    """Ten turns of real ReDial text (well over 200 GPT-2 tokens), 32 KG entities spread over
    them, host emotions on the user turns."""
    texts = []
    with open(os.path.join(SHARED, "redial", "dialogs.jsonl"), encoding="utf-8") as f:
        for line in f:
            texts += [m["text"] for m in json.loads(line)["messages"] if len(m["text"]) > 40]
            if len(texts) >= 40:
                break
    with open(os.path.join(kg_dir, "entity2id.json"), encoding="utf-8") as f:
        n = len(json.load(f))
    rng = np.random.default_rng(5)
    ids = [int(i) for i in rng.choice(n, size=CONTEXT_ENTITIES, replace=False)]
    turns = []
    for t in range(10):
        turn = {"role": "user" if t % 2 == 0 else "system", "text": " ".join(texts[4 * t:4 * t + 4]),
                "entities": ids[t * CONTEXT_ENTITIES // 10:(t + 1) * CONTEXT_ENTITIES // 10]}
        if t % 2 == 0:
            turn["emotions"] = {"like": 0.6, "curious": 0.25, "happy": 0.1}
        turns.append(turn)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"turns": turns}, f)


# --- the torch side ---------------------------------------------------------------------------

class Linear:
    """y = x W^T + b, W (out, in); with onednn, inputs of several rows go through oneDNN."""

    def __init__(self, weight, bias, onednn):
        self.weight, self.bias, self.onednn = weight.contiguous(), bias, None
        if onednn:
            m = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            m.weight.data = self.weight
            if bias is not None:
                m.bias.data = bias
            self.onednn = torch.utils.mkldnn.to_mkldnn(m)

    def __call__(self, x):
        if self.onednn is not None and x.shape[0] > 1:
            return self.onednn(x)
        return F.linear(x, self.weight, self.bias)


class TorchRecommender:
    def __init__(self, data, onednn):
        checkpoints = os.path.join(data, "checkpoints")
        self.backbone = GPT2(os.path.join(checkpoints, "backbone"), onednn)
        self.text_encoder = Roberta(os.path.join(checkpoints, "text_encoder"), onednn)
        sd = torch.load(os.path.join(checkpoints, "rec_prompt", "model.pt"), map_location="cpu")
        lin = lambda k: Linear(sd[f"{k}.weight"], sd.get(f"{k}.bias"), onednn)
        mlp = lambda k: (lin(f"{k}.0"), lin(f"{k}.2"))
        self.hidden = sd["cross_attn.weight"].shape[0]
        self.token_proj1, self.token_proj2 = mlp("token_proj1"), lin("token_proj2")
        self.cross_attn = lin("cross_attn")
        self.fuse1, self.fuse2 = mlp("emo_fuse_proj1"), lin("emo_fuse_proj2")
        self.prompt_proj1, self.prompt_proj2 = mlp("prompt_proj1"), lin("prompt_proj2")

        # Static tables, as the engine builds them at load.
        node = sd["node_embeds"]
        g = rgcn_edges(node, np.load(os.path.join(data, "edges.npy")), sd["kg_encoder.weight"], sd["kg_encoder.comp"],
                       sd["kg_encoder.root"], sd["kg_encoder.bias"]) + node
        self.entities = lin("entity_proj2")(self.mlp(mlp("entity_proj1"), g) + g)
        m = sd["emo_embeds"]
        self.emotions = lin("emo_proj2")(self.mlp(mlp("emo_proj1"), m) + m)
        indptr, indices, values = (np.load(os.path.join(data, f"cooc_{p}.npy")) for p in ("indptr", "indices", "values"))
        c = torch.sparse_csr_tensor(torch.from_numpy(indptr.astype(np.int64)), torch.from_numpy(indices.astype(np.int64)),
                                    torch.from_numpy(values), (node.shape[0], node.shape[0]))
        self.global_entities = c @ self.entities
        q = sd["rec_prefix_embeds"]
        q = self.mlp(mlp("rec_prefix_proj"), q) + q
        self.prefix_rows = self.prompt_proj2(self.mlp(self.prompt_proj1, q) + q)

    @staticmethod
    def mlp(layers, x):
        return layers[1](F.relu(layers[0](x)))

    def recommend(self, inputs, items, k=10):
        tokens = self.text_encoder.hidden(inputs["prompt_ids"])
        tk = self.token_proj2(self.mlp(self.token_proj1, tokens) + tokens)
        ek = self.entities[inputs["entities"]]
        attention = self.cross_attn(tk) @ ek.T / self.hidden
        p = torch.softmax(attention, 0).T @ tk + ek
        p = torch.cat([p, self.global_entities[inputs["entities"]]])
        mu = torch.einsum("lkh,lk->lh", self.emotions[inputs["emotion_ids"]], inputs["emotion_probs"])
        p = self.fuse2(self.mlp(self.fuse1, torch.cat([p, torch.cat([mu, mu])], 1)))
        p = self.prompt_proj2(self.mlp(self.prompt_proj1, p) + p)
        prefix = torch.cat([self.prefix_rows, p])
        z = self.backbone.hidden(inputs["context_ids"], prefix)[-1]
        scores = self.entities @ z
        top = scores[items].topk(k)
        return items[top.indices], top.values


def bench_torch(data, inputs, items, threads, reps, onednn):
    torch.set_num_threads(threads)
    with torch.inference_mode():
        load = []
        while len(load) < 3 and sum(load) < 60e3:  # best of three, fewer when one takes long
            t0 = time.perf_counter()
            model = TorchRecommender(data, onednn)
            load.append((time.perf_counter() - t0) * 1e3)
        ids, values = model.recommend(inputs, items)
        recommend = ct.median_ms(reps, lambda: model.recommend(inputs, items), budget_s=60.0)
    return {"load_ms": min(load), "recommend_ms": recommend, "top": list(zip(ids.tolist(), values.tolist()))}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bench", default=os.path.join(ROOT, "build-rec-native", "benchmarks", "bench_recommender"))
    p.add_argument("--data", default=os.path.join(ROOT, "build-rec-native", "bench-recommender-data"))
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--dtypes", default="bf16",
                   help="also time the engine on the bundle stored in these weight types (tools.convert --dtype), "
                        "comma-separated; '' for none")
    p.add_argument("--json-out", help="also write both sides' raw numbers here")
    a = p.parse_args()

    bundle = make_data(a.data)

    def engine_run(path):
        return json.loads(subprocess.run([a.bench, "--bundle", path, "--dialog", os.path.join(a.data, "dialog.json"),
                                          "--threads", str(a.threads), "--reps", str(a.reps)],
                                         check=True, capture_output=True, text=True).stdout)

    engine = engine_run(bundle)
    stored = engine_run(make_static(a.data))
    typed = {dtype: engine_run(make_static(a.data, dtype)) for dtype in filter(None, a.dtypes.split(","))}
    x = engine["inputs"]
    inputs = {"prompt_ids": torch.tensor(x["prompt_ids"]), "context_ids": torch.tensor(x["context_ids"]),
              "entities": torch.tensor(x["entities"]), "emotion_ids": torch.tensor(x["emotion_ids"]),
              "emotion_probs": torch.tensor(x["emotion_probs"])}
    with open(os.path.join(a.data, "checkpoints", "kg", "item_ids.json"), encoding="utf-8") as f:
        items = torch.tensor(json.load(f))
    plain = bench_torch(a.data, inputs, items, a.threads, a.reps, onednn=False)
    onednn = bench_torch(a.data, inputs, items, a.threads, a.reps, onednn=True)

    agree = ([i for i, _ in engine["top"]] == [i for i, _ in plain["top"]] == [i for i, _ in onednn["top"]]
             == [i for i, _ in stored["top"]])
    diff = max(abs(e[1] - t[1]) for e, t in zip(engine["top"], plain["top"]))
    print(f"threads {a.threads}; GPT-2 12x768 + RoBERTa 12x768, {ENTITIES} entities, 8 bases, 10 prefix rows, "
          f"{len(x['context_ids'])}-token context, {len(x['entities'])} entities (+{len(x['entities'])} global); "
          f"torch {torch.__version__}")
    print(f"{'':40} {'ecr':>9} {'torch':>9} {'+onednn':>9} {'speed-up':>9}")
    rows = [("load + static tables (ms)", engine["load_ms"], "load_ms"),
            ("  ecr with every CRC-32 checked (ms)", engine["load_verified_ms"], "load_ms"),
            ("  ecr, static tables stored (ms)", stored["load_ms"], "load_ms"),
            ("recommend, one dialog (ms)", engine["recommend_ms"], "recommend_ms")]
    for name, ours, key in rows:
        best = min(plain[key], onednn[key])
        print(f"{name:40} {ours:9.1f} {plain[key]:9.1f} {onednn[key]:9.1f} {best / ours:8.2f}x")
    print(f"top-10 items {'identical' if agree else 'DIFFER'}; max |score difference| over them {diff:.2e}")
    if typed:
        # The same weights stored in another type (tables stored too): against the engine in f32.
        print(f"\n{'weights':8} {'load ms':>9} {'recommend ms':>13} {'vs f32':>8} {'top-10 recall vs f32':>21}")
        f32_top = [i for i, _ in stored["top"]]
        print(f"{'f32':8} {stored['load_ms']:9.1f} {stored['recommend_ms']:13.1f} {1:7.2f}x {1:21.2f}")
        for dtype, run in typed.items():
            recall = len(set(f32_top) & {i for i, _ in run["top"]}) / len(f32_top)
            print(f"{dtype:8} {run['load_ms']:9.1f} {run['recommend_ms']:13.1f} "
                  f"{stored['recommend_ms'] / run['recommend_ms']:7.2f}x {recall:21.2f}")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"engine": engine, "engine_tables_stored": stored, "engine_dtypes": typed, "torch": plain,
                       "torch_onednn": onednn}, f, indent=2)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
