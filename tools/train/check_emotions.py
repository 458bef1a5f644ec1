"""The emotion classifier of a bundle (or of a trainer checkpoint), and the weak labeler, against
hand labels.

    python3 -m tools.train.check_emotions --ecr build/src/ecr [--bundle B] [--checkpoint DIR]
        [--data ../shared/data] [--eval tools/train/emotion_eval.jsonl ...]

Hand-labelled sets:
  --data    emotion_sample.json: 40 seeker turns of the ReDial test split (ids and labels; the texts
            stay in the data folder). Reported: top-1 accuracy (the strongest label is one of the
            hand labels), and precision / recall of the labels the prompt would use (over 0.1, at
            most 3) against the hand labels.
  --eval    JSON lines {"text", "label", "also": [other acceptable labels]}: top-1 accuracy (the
            strongest label is `label` or one of `also`), overall and per label.
            emotion_eval.jsonl (108 utterances, 12 per label) and emotion_dev.jsonl (54, 6 per
            label) were written for this check as a movie-chat seeker would say them, not taken
            from ReDial or the reviews; none is training data. The weak labeler's cues were tuned
            on the dev set only; the eval set is for reporting. emotion_train.jsonl (110 more,
            written the same way, none shared with the two) is training data for the classifier.

Classifiers: the bundle's runs in the engine (`ecr recommend --json` on the text as the only user
turn; --bundle, default the shipped model); --checkpoint runs a trainer checkpoint's
emotion_classifier folder in torch with the trainer's tokenizer and the engine's input (the text,
then <|endoftext|>), e.g. what `python3 -m tools.train --emotion-only` writes. The weak labeler is
tools/train/data.py weak_emotions.
"""

import argparse
import json
import os
import subprocess
import tempfile
from collections import defaultdict

from . import data

HERE = os.path.dirname(os.path.abspath(__file__))


def scores(predicted, truth):
    top1 = predicted[0] in truth if predicted else False
    hits = len(set(predicted) & set(truth))
    return top1, hits, len(predicted), len(truth)


def engine_labels(ecr, bundle):
    """text -> the labels the bundle's classifier selects, strongest first."""
    def run(text):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as d:
            json.dump({"turns": [{"role": "user", "text": text}]}, d)
        try:
            cmd = [ecr, "recommend", "--dialog", d.name, "--json", "--top-k", "1"] + (["--bundle", bundle] if bundle else [])
            out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        finally:
            os.unlink(d.name)
        return [s["label"] for s in out["turns"][0]["selected"]]
    return run


def checkpoint_labels(directory, vocab_dir):
    """text -> the labels a trainer checkpoint's classifier selects (in torch), strongest first."""
    import torch
    from .__main__ import classify, load_gpt2
    from .nets import CompactVocab, Gpt2
    from .text import EOS, GPT2_VOCAB, Gpt2Tokenizer
    with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    model = load_gpt2(Gpt2(CompactVocab(range(GPT2_VOCAB), GPT2_VOCAB), config["n_embd"], config["n_layer"],
                           config["n_head"], config["n_positions"], num_labels=9), directory)
    tok = Gpt2Tokenizer(vocab_dir)

    def run(text):
        with torch.no_grad():
            probs = classify(model, [(tok.encode(text) + [EOS])[-256:]]).softmax(-1)[0].tolist()
        ids, _ = data.select_emotions(probs)
        return [data.EMOTIONS[i] for i in ids if i != data.PAD_EMOTION]
    return run


def weak_labels(text, record=None):
    ids, _ = data.select_emotions(data.weak_emotions(data.Turn(True, text), record or {}))
    return [data.EMOTIONS[i] for i in ids if i != data.PAD_EMOTION]


def check_redial_sample(data_dir, predictors):
    with open(os.path.join(HERE, "emotion_sample.json"), encoding="utf-8") as f:
        sample = json.load(f)["turns"]
    records = {}
    with open(os.path.join(data_dir, "redial", "test_dialogs.jsonl"), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            records[str(r["conversationId"])] = r
    totals = {name: [0, 0, 0, 0] for name in predictors}
    for case in sample:
        r = records[case["dialog"]]
        msgs, seeker = r["messages"], r["initiatorWorkerId"]
        mentions = {k: v for k, v in (r.get("movieMentions") or {}).items() if v}
        texts, j = [], case["message"]
        while j < len(msgs) and msgs[j]["senderWorkerId"] == seeker:
            texts.append(msgs[j]["text"])
            j += 1
        text = " ".join(data.redial_text(t, mentions) for t in texts)
        for name, predict in predictors.items():
            predicted = predict(text, r) if name == "weak labeler" else predict(text)
            for k, v in enumerate(scores(predicted, case["labels"])):
                totals[name][k] += v
    n = len(sample)
    print(f"emotion_sample.json ({n} hand-labelled ReDial seeker turns)")
    for name, (top1, hits, predicted, truth) in totals.items():
        print(f"  {name:<13} top-1 accuracy {top1 / n:.3f}  label precision {hits / max(predicted, 1):.3f}  "
              f"label recall {hits / max(truth, 1):.3f}")


def check_set(path, predictors):
    """Top-1 accuracy of each predictor on a JSON-lines set, overall and per label."""
    with open(path, encoding="utf-8") as f:
        cases = [json.loads(line) for line in f if line.strip()]
    for k, case in enumerate(cases):
        if case.get("label") not in data.EMOTIONS or not all(a in data.EMOTIONS for a in case.get("also", [])):
            raise SystemExit(f"{path}:{k + 1}: labels must be among {', '.join(data.EMOTIONS)}")
    print(f"{os.path.basename(path)} ({len(cases)} hand-labelled utterances)")
    results = {}
    for name, predict in predictors.items():
        right, per_label = 0, defaultdict(lambda: [0, 0])
        for case in cases:
            predicted = predict(case["text"])
            hit = bool(predicted) and predicted[0] in [case["label"]] + case.get("also", [])
            right += hit
            per_label[case["label"]][0] += hit
            per_label[case["label"]][1] += 1
        results[name] = right / len(cases)
        print(f"  {name:<13} top-1 accuracy {right / len(cases):.3f}  (" +
              ", ".join(f"{label} {per_label[label][0]}/{per_label[label][1]}" for label in data.EMOTIONS
                        if label in per_label) + ")")
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ecr", help="the ecr tool: check the bundle's classifier in the engine")
    p.add_argument("--bundle", help="with --ecr: default the shipped model")
    p.add_argument("--checkpoint", help="a trainer checkpoint's emotion_classifier folder, run in torch")
    p.add_argument("--data", help="the shared data folder: check the 40 ReDial turns of emotion_sample.json "
                   "(--checkpoint also reads its gpt2/ vocabulary)")
    p.add_argument("--eval", action="append", default=[], metavar="JSONL", help="a hand-labelled set; repeatable")
    a = p.parse_args(argv)
    if a.checkpoint and not a.data:
        p.error("--checkpoint needs --data (the GPT-2 vocabulary)")
    if not a.data and not a.eval:
        p.error("nothing to check: give --data and/or --eval")
    predictors = {}
    if a.ecr:
        predictors["classifier"] = engine_labels(a.ecr, a.bundle)
    if a.checkpoint:
        predictors["checkpoint"] = checkpoint_labels(a.checkpoint, os.path.join(a.data, "gpt2"))
    predictors["weak labeler"] = weak_labels
    if a.data:
        check_redial_sample(a.data, predictors)
    for path in a.eval:
        check_set(path, predictors)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
