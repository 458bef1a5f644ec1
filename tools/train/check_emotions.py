"""The emotion classifier of a bundle, and the weak labeler it was trained on, against the hand
labels of emotion_sample.json (40 seeker turns of the ReDial test split).

    python3 -m tools.train.check_emotions --data ../shared/data --ecr build/src/ecr [--bundle B]

The classifier runs in the engine (`ecr recommend --json` on the turn alone). Reported: top-1
accuracy (the strongest label is one of the hand labels), and precision / recall of the labels the
prompt would use (over 0.1, at most 3) against the hand labels.
"""

import argparse
import json
import os
import subprocess
import tempfile

from . import data

HERE = os.path.dirname(os.path.abspath(__file__))


def scores(predicted, truth):
    top1 = predicted[0] in truth if predicted else False
    hits = len(set(predicted) & set(truth))
    return top1, hits, len(predicted), len(truth)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--ecr", required=True)
    p.add_argument("--bundle", help="default: the shipped model")
    a = p.parse_args(argv)
    with open(os.path.join(HERE, "emotion_sample.json"), encoding="utf-8") as f:
        sample = json.load(f)["turns"]
    records = {}
    with open(os.path.join(a.data, "redial", "test_dialogs.jsonl"), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            records[str(r["conversationId"])] = r
    totals = {"classifier": [0, 0, 0, 0], "weak labeler": [0, 0, 0, 0]}
    for case in sample:
        r = records[case["dialog"]]
        msgs, seeker = r["messages"], r["initiatorWorkerId"]
        mentions = {k: v for k, v in (r.get("movieMentions") or {}).items() if v}
        texts, j = [], case["message"]
        while j < len(msgs) and msgs[j]["senderWorkerId"] == seeker:
            texts.append(msgs[j]["text"])
            j += 1
        text = " ".join(data.redial_text(t, mentions) for t in texts)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as d:
            json.dump({"turns": [{"role": "user", "text": text}]}, d)
        cmd = [a.ecr, "recommend", "--dialog", d.name, "--json", "--top-k", "1"] + (["--bundle", a.bundle] if a.bundle else [])
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        os.unlink(d.name)
        classifier = [s["label"] for s in out["turns"][0]["selected"]]
        ids, _ = data.select_emotions(data.weak_emotions(data.Turn(True, text), r))
        weak = [data.EMOTIONS[i] for i in ids if i != data.PAD_EMOTION]
        for name, predicted in (("classifier", classifier), ("weak labeler", weak)):
            for k, v in enumerate(scores(predicted, case["labels"])):
                totals[name][k] += v
    n = len(sample)
    for name, (top1, hits, predicted, truth) in totals.items():
        print(f"{name:<13} top-1 accuracy {top1 / n:.3f}  label precision {hits / max(predicted, 1):.3f}  "
              f"label recall {hits / max(truth, 1):.3f}  ({n} hand-labelled turns)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
