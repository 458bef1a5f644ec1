#!/usr/bin/env bash
# The model card's quality table: `ecr eval` on the official ReDial test split (1,342 dialogs) for
# the shipped model, the same model with emotions off (ECR's ablation), and three baselines scored
# by the same code: random, popularity (item mentions in the 1,889 training dialogs) and item
# co-occurrence (conversations of movie_sequences.jsonl naming an item with the context's movies).
# A second table gives the de-duplicated variant (the items the context names left out, samples
# whose gold item it names dropped), with a row for the feedback rule as `ecr recommend` applies it.
#   [RESPONSES=N] tools/eval_model.sh [BUNDLE]     (default: the shipped model, 300 replies)
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:-models/ecr-redial-small.ecr}
responses=${RESPONSES:-300}
data=../shared/data/redial
out=build/eval
mkdir -p "$out"
ecr=build/src/ecr
test=$data/test_dialogs.jsonl
$ecr eval --bundle "$bundle" --dialogs "$test" --responses "$responses" --json "$out/model.json"
$ecr eval --bundle "$bundle" --dialogs "$test" --no-emotions --json "$out/no_emotions.json"
$ecr eval --bundle "$bundle" --dialogs "$test" --baseline random --json "$out/random.json"
$ecr eval --bundle "$bundle" --dialogs "$test" --baseline popularity \
  --popularity-from "$data/dialogs.jsonl,$data/train_dialogs.jsonl" --json "$out/popularity.json"
$ecr eval --bundle "$bundle" --dialogs "$test" --baseline cooccurrence \
  --cooccurrence-from "$data/movie_sequences.jsonl" --json "$out/cooccurrence.json"
$ecr eval --bundle "$bundle" --dialogs "$test" --feedback-strength 1 --json "$out/feedback.json"
/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = [("shipped model", "model"), ("shipped model, emotions off", "no_emotions"),
        ("item co-occurrence", "cooccurrence"), ("popularity", "popularity"), ("random", "random")]
cols = ["recall@1", "recall@10", "recall@50", "mrr@10", "mrr@50", "ndcg@10", "ndcg@50", "auc", "rt@10", "rt@50"]


def table(rows, field):
    print("| | " + " | ".join(c.replace("recall", "R").replace("mrr", "MRR").replace("ndcg", "NDCG")
                                .replace("rt", "RT").replace("auc", "AUC") for c in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, key in rows:
        m = json.load(open(os.path.join(out, key + ".json")))[field]
        print(f"| {name} | " + " | ".join(f"{m[c]:.4f}" for c in cols) + " |")


table(rows, "metrics")
dedup = json.load(open(os.path.join(out, "model.json")))["dedup_samples"]
print(f"\nde-duplicated ({dedup} samples):\n")
table(rows[:1] + [("shipped model, feedback rule (strength 1)", "feedback")] + rows[1:], "dedup_metrics")
m = json.load(open(os.path.join(out, "model.json")))
print(f"\nsamples: {m['samples']} ({m['positives']} liked, {m['negatives']} disliked) from {m['dialogs']} dialogs")
r = m.get("replies")
if r:
    print(f"replies: {r['replies']}, {r['avg_words']:.1f} words on average; " +
          ", ".join(f"Dist-{n} {r[f'dist@{n}']:.4f} ({r[f'dist@{n}_per_reply']:.2f}/reply)" for n in range(1, 5)))
PY
