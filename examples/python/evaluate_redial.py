#!/usr/bin/env python3
"""Recommendation metrics over ReDial dialogs from Python, no notebook needed: Recall, MRR and
NDCG @1/10/50 as ECR reports them (docs/math.md section 10), with the samples `ecr eval` builds.

    python3 examples/python/evaluate_redial.py [--bundle B.ecr] [--dialogs FILE.jsonl] [--limit N]
                                               [--batch-size 32] [--workers 1] [--json OUT]

Samples: every system turn that mentions a recommendable movie gives one sample per such movie,
with the dialog before that turn as the context. Entities are the records' annotations (the
shared dialogs.jsonl has them); raw records (train/test splits) are annotated by the entity
linker first, message by message. The gold movie's rank is its place among all items by score
(ties: the lower id first). Without --bundle the shipped model is used; without --dialogs the
official ReDial test split beside the checkout (../shared/data/redial/test_dialogs.jsonl).
--workers runs that many batches at once on Python threads: the engine releases the GIL.
"""

import argparse
import json
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import ecr

KS = (1, 10, 50)
DEFAULT_DIALOGS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "redial" / "test_dialogs.jsonl"


def annotated(record, recommender):
    """The record as an ecr.Dialog with entity ids: its annotations, else the linker's entities
    of each message (movies as `item`, the rest as `entity`, as the annotations have them)."""
    graph = recommender.graph
    if any("item" in m or "movie" in m or "entity" in m for m in record["messages"]):
        return ecr.Dialog.from_redial(record, graph)
    mentions = ecr.Dialog.from_redial(record).movie_mentions
    record = dict(record, messages=[dict(m) for m in record["messages"]])
    for m in record["messages"]:
        linked = recommender.link(m["text"], mentions)
        m["item"] = [graph.entity_key(e.id) for e in linked if graph.is_item(e.id)]
        m["entity"] = [graph.entity_key(e.id) for e in linked if not graph.is_item(e.id)]
    return ecr.Dialog.from_redial(record, graph)


def samples_of(record, recommender):
    """(context dialog, gold item id) for each recommended movie of each system turn."""
    graph = recommender.graph
    dialog = annotated(record, recommender)
    out = []
    for t in range(1, len(dialog)):
        turn = dialog[t]
        if turn.role != "system":
            continue
        golds = list(dict.fromkeys(e for e in turn.entities if graph.is_item(e)))
        out += [(dialog[:t], gold) for gold in golds]
    return out


def gold_rank(scores, items, gold):
    item_scores = scores[items]
    g = scores[gold]
    return 1 + int(np.sum(item_scores > g)) + int(np.sum((item_scores == g) & (items < gold)))


def metrics(ranks):
    n = max(len(ranks), 1)
    out = {}
    for k in KS:
        out[f"recall@{k}"] = sum(r <= k for r in ranks) / n
        out[f"mrr@{k}"] = sum(1.0 / r for r in ranks if r <= k) / n
        out[f"ndcg@{k}"] = sum(1.0 / math.log2(r + 1) for r in ranks if r <= k) / n
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", help="a bundle (default: the shipped model)")
    p.add_argument("--dialogs", default=str(DEFAULT_DIALOGS), help="ReDial dialogs, JSON lines")
    p.add_argument("--limit", type=int, help="read only the first N dialogs")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=1, help="batches run at once on Python threads")
    p.add_argument("--json", help="also write the metrics as JSON to this file")
    a = p.parse_args(argv)

    t0 = time.perf_counter()
    # As `ecr eval`: the turns' annotated entities, no linking of text in the context turns.
    recommender = ecr.Recommender.load(a.bundle, link_text=False)
    print(f"loaded {recommender} in {time.perf_counter() - t0:.2f} s", file=sys.stderr)

    samples, dialogs = [], 0
    with open(a.dialogs, encoding="utf-8") as f:
        for line in f:
            if a.limit is not None and dialogs >= a.limit:
                break
            if line.strip():
                samples += samples_of(json.loads(line), recommender)
                dialogs += 1

    items = recommender.graph.items.astype(np.int64)
    batches = [samples[i:i + a.batch_size] for i in range(0, len(samples), a.batch_size)]

    def rank_batch(batch):
        results = recommender.recommend_batch([context for context, _ in batch], top_k=1, all_scores=True)
        return [gold_rank(r.all_scores, items, gold) for r, (_, gold) in zip(results, batch)]

    t1 = time.perf_counter()
    with ThreadPoolExecutor(max(a.workers, 1)) as pool:
        ranks = [r for batch_ranks in pool.map(rank_batch, batches) for r in batch_ranks]
    seconds = time.perf_counter() - t1

    report = metrics(ranks)
    print(f"{dialogs} dialogs, {len(ranks)} samples, {len(items)} items; {seconds:.2f} s "
          f"({1000 * seconds / max(len(ranks), 1):.1f} ms/sample)")
    print(f"{'':<8}" + "".join(f" {'@' + str(k):>8}" for k in KS))
    for metric in ("recall", "mrr", "ndcg"):
        print(f"{metric:<8}" + "".join(f" {report[f'{metric}@{k}']:>8.4f}" for k in KS))
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"dialogs": dialogs, "samples": len(ranks), "metrics": report}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
