"""Trains the project's small ECR on ReDial and writes its bundle through the real converter.

    python3 -m tools.train --data ../shared/data --ecr build/src/ecr --out build/train \
        [--bundle models/ecr-redial-small.ecr] [--smoke] [--seed 0] [--threads N]

(run from the repository root, or with it on PYTHONPATH; tools/train.sh does the set-up). Stages, each with
its published objective, in dependency order:
  1. backbone        GPT-2 language model on the dialog text (the contexts' "User: ...<eos>" form)
  2. text_encoder    RoBERTa masked-LM (15% of tokens, 80/10/10) on the RoBERTa contexts
  3. emotion         GPT-2 classifier on the weak labels of user turns (data.weak_emotions) and the
                     written sentences of emotion_train.jsonl, rare labels weighted up
  4. rec_prompt      ECR's KGPrompt, backbone and text encoder frozen: cross entropy of z E^T
                     over all entities, feedback-weighted (liked 2.0, disliked 0.3, unsaid 1.0)
  5. conv_prompt     UniCRS's KGPrompt (from the rec prompt's shared parts), backbone frozen: LM
                     loss of the system turn's template (movies as <movie>) after "System:"
  6. generator       GPT-2 from the backbone, LM loss of the reply after the section 8 prompt
Then checkpoints in the HuggingFace / KGPrompt layouts, ReDial with linked entities and the
classifier's emotions (the co-occurrence input), and tools.convert --dtype f16 --codec zstd.
--smoke trains tiny models on a few dialogs for a few steps and fails unless every loss falls.
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import ecr_bundle, ecr_kg, ecr_reviews, module_command, module_env
from .. import make_random_checkpoints as hf
from ..reference.kgprompt import build_edges
from . import data
from .nets import Gpt2, KGPrompt, CompactVocab, Roberta, lm_loss
from .text import EOS, GPT2_VOCAB, MOVIE, R_CLS, R_MASK, R_PAD, R_SEP, ROBERTA_VOCAB, Gpt2Tokenizer, roberta_ids

SIZES = {
    # backbone/generator, text encoder, classifier; epochs per stage.
    "full": dict(d=128, layers=4, heads=4, positions=512, r_d=128, r_layers=2, r_heads=4, r_inner=512,
                 c_d=64, c_layers=2, c_heads=4, n_prefix_rec=10, n_prefix_conv=10, bases=8,
                 lm_epochs=4, mlm_epochs=3, cls_epochs=3, rec_epochs=3, conv_epochs=2, gen_epochs=4,
                 conv_examples=None, max_steps=None, dialogs=None),
    "smoke": dict(d=32, layers=1, heads=2, positions=512, r_d=32, r_layers=1, r_heads=2, r_inner=64,
                  c_d=32, c_layers=1, c_heads=2, n_prefix_rec=4, n_prefix_conv=4, bases=2,
                  lm_epochs=1, mlm_epochs=1, cls_epochs=1, rec_epochs=3, conv_epochs=1, gen_epochs=1,
                  conv_examples=None, max_steps=12, dialogs=40),
}
TEMPLATE_TOKENS = 50     # docs/math.md section 7: the template decoder's new tokens
SPACE = 220              # GPT-2's " ", the token before every <movie> of a template
GEN_PROMPT_TOKENS = 149  # docs/math.md section 8
REPLY_TOKENS = 100
KNOWLEDGE_RELATIONS = {"star": "starring", "writer": "writer", "director": "director"}


class Log:
    def __init__(self, path):
        self.path, self.entries = path, {}

    def stage(self, name, **values):
        self.entries.setdefault(name, {}).update(values)
        with open(self.path, "w", encoding="utf-8") as f:
            json.dump(self.entries, f, indent=2)


def batches(items, size, rng):
    items = list(items)
    rng.shuffle(items)
    return [items[i:i + size] for i in range(0, len(items), size)]


def fit(name, model_params, steps_of_epoch, epochs, lr, step_fn, log, max_steps=None, weight_decay=0.01):
    """AdamW with linear warm-up and cosine decay over all steps; tqdm shows loss and ETA. Returns
    the mean loss of the first and the last tenth of the steps (the smoke check compares them)."""
    groups = list(model_params)
    if groups and not isinstance(groups[0], dict):
        groups = [{"params": groups}]
    groups = [dict(g, params=[p for p in g["params"] if p.requires_grad]) for g in groups]
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    plan = [steps_of_epoch(e) for e in range(epochs)]
    total = sum(len(p) for p in plan)
    if max_steps:
        total = min(total, max_steps)
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    losses, start, step = [], time.time(), 0
    bar = tqdm(total=total, desc=name, unit="step", dynamic_ncols=True, mininterval=2.0)
    for batch_list in plan:
        for batch in batch_list:
            if step >= total:
                break
            loss = step_fn(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss))
            step += 1
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            bar.update(1)
    bar.close()
    k = max(1, len(losses) // 10)
    first, last = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
    log.stage(name, steps=len(losses), seconds=round(time.time() - start, 1), first_loss=first, last_loss=last)
    return first, last


def pad(seqs, value):
    n = max(len(s) for s in seqs)
    return torch.tensor([list(s) + [value] * (n - len(s)) for s in seqs], dtype=torch.long)


# --- the corpus ------------------------------------------------------------------------------------

class Corpus:
    def __init__(self, a, size):
        self.tok = Gpt2Tokenizer(os.path.join(a.data, "gpt2"))
        kg_dir = os.path.join(a.data, "redial")
        self.kg = ecr_kg.load_kg(kg_dir)
        self.kg.directory, self.kg.item_set = kg_dir, set(int(i) for i in self.kg.items)
        paths = [os.path.join(kg_dir, "dialogs.jsonl"), os.path.join(kg_dir, "train_dialogs.jsonl")]
        if size["dialogs"]:  # the smoke run: the first dialogs of the first file
            os.makedirs(a.out, exist_ok=True)
            small = os.path.join(a.out, "smoke_dialogs.jsonl")
            with open(paths[0], encoding="utf-8") as f, open(small, "w", encoding="utf-8") as g:
                g.writelines(line for _, line in zip(range(size["dialogs"]), f))
            paths = [small]
        self.paths = paths
        self.dialogs = data.read_dialogs(paths, a.ecr, self.kg)
        for d in self.dialogs:
            for turn in d.turns:
                head = "User: " if turn.user else "System: "
                turn.g_ids = self.tok.encode(head + turn.text) + [EOS] if turn.text else []
                turn.r_ids = roberta_ids(self.tok.encode(head + turn.text)) + [R_SEP] if turn.text else []
                if turn.user:
                    turn.weak = data.weak_emotions(turn, d.record)
        self.train, self.valid = data.split(self.dialogs, 0.05, a.seed)
        self.reviews, _ = ecr_reviews.read_reviews(os.path.join(a.data, "reviews", "movie_reviews.json"))
        self.neighbours = {}
        for h, r, t in self.kg.triples.tolist():
            rel = KNOWLEDGE_RELATIONS.get(self.kg.relations[r])
            if rel:
                self.neighbours.setdefault(h, []).append((rel, t))

    def context(self, turns):
        g = [i for t in turns for i in t.g_ids][-data.CONTEXT_TOKENS:]
        r = [i for t in turns for i in t.r_ids][-data.PROMPT_TOKENS:]
        return g, [R_CLS] + r

    def review_entities(self, item):
        return [ecr_kg.display_name(e) for e in self.reviews.get(ecr_reviews.movie_key(self.kg.names[item]), {})]

    def knowledge(self, item):
        bare = lambda s: s.split("(")[0].strip() or s.strip()
        return [f"{bare(self.kg.names[item])}'s {rel} is {bare(self.kg.names[t])}"
                for rel, t in self.neighbours.get(item, [])]

    def knowledge_texts(self):
        """Every name, review entity and KG sentence a generator prompt of the training dialogs can hold."""
        items = {i for d in self.dialogs for t in d.turns for i in t.items}
        return [text for i in sorted(items) for text in [self.kg.names[i]] + self.review_entities(i) + self.knowledge(i)]

    def generator_example(self, turn, rng):
        """(prompt ids, reply ids) of a recommending system turn, in docs/math.md section 8's format, the
        knowledge sampled as ECR's training data samples it."""
        kg = self.kg
        names = [kg.names[i] for i in turn.items]
        reviews = [e for i in turn.items for e in self.review_entities(i)]
        knowledge = [k for i in turn.items for k in self.knowledge(i)]
        rng.shuffle(reviews)
        rng.shuffle(knowledge)
        first = turn.text
        for stop in (". ", "! ", "? "):
            at = first.find(stop)
            if 0 < at < len(first) - 1:
                first = first[:at + 1]
        body = (f"Movie Name: {', '.join(names)}<|endoftext|>Related Entities: {', '.join(reviews[:4]) or 'None'}"
                f"<|endoftext|>Related Knowledge from KG: {', '.join(knowledge[:2]) or 'None'}<|endoftext|>"
                f"First Sentence: {first}")
        return self.tok.encode(body)[:GEN_PROMPT_TOKENS] + [EOS], self.tok.encode(turn.text)[:REPLY_TOKENS] + [EOS]


# --- stages ----------------------------------------------------------------------------------------

def train_backbone(c, vocab, size, a, log, rng):
    block = 256
    stream = [i for d in c.train for t in d.turns for i in t.g_ids]
    blocks = [stream[i:i + block + 1] for i in range(0, max(1, len(stream) - block), block)]
    model = Gpt2(vocab, size["d"], size["layers"], size["heads"], size["positions"])

    def step(batch):
        x = vocab.compact(pad([b[:-1] for b in batch], EOS))
        y = vocab.targets(pad([b[1:] for b in batch], EOS))
        h = model(x)
        return lm_loss(h.reshape(-1, h.shape[-1]), model.transformer.wte, y.reshape(-1), vocab.unseen)

    model.train()
    res = fit("backbone", model.parameters(), lambda e: batches(blocks, 16, rng), size["lm_epochs"], 1e-3, step, log,
              size["max_steps"])
    model.eval()
    valid = [i for d in c.valid for t in d.turns for i in t.g_ids]
    with torch.no_grad():
        vb = [valid[i:i + block + 1] for i in range(0, max(1, len(valid) - block), block)][:64]
        if vb:
            x, y = vocab.compact(pad([b[:-1] for b in vb], EOS)), vocab.targets(pad([b[1:] for b in vb], EOS))
            h = model(x)
            loss = float(lm_loss(h.reshape(-1, h.shape[-1]), model.transformer.wte, y.reshape(-1), vocab.unseen))
            log.stage("backbone", valid_loss=loss, valid_perplexity=math.exp(loss))
    return model, res


def train_text_encoder(c, vocab, size, a, log, rng):
    block = data.PROMPT_TOKENS
    stream = [i for d in c.train for t in d.turns for i in t.r_ids]
    blocks = [[R_CLS] + stream[i:i + block] for i in range(0, max(1, len(stream) - block), block)]
    model = Roberta(vocab, size["r_d"], size["r_layers"], size["r_heads"], size["r_inner"], data.PROMPT_TOKENS + 3, R_PAD)
    special = torch.tensor([int(vocab.to_compact[i]) for i in (R_CLS, R_SEP, R_PAD)])
    mask_id = int(vocab.to_compact[R_MASK])

    def step(batch):
        x = vocab.compact(pad(batch, R_PAD))
        chosen = (torch.rand(x.shape) < 0.15) & ~torch.isin(x, special)
        chosen[0, 1] = chosen[0, 1] | ~chosen.any()  # at least one target
        roll = torch.rand(x.shape)
        inputs = x.clone()
        inputs[chosen & (roll < 0.8)] = mask_id
        swap = chosen & (roll >= 0.8) & (roll < 0.9)
        inputs[swap] = torch.randint(len(vocab), (int(swap.sum()),))
        h = model(inputs)[chosen]
        return F.cross_entropy(model.mlm_logits(h), x[chosen])

    model.train()
    res = fit("text_encoder", model.parameters(), lambda e: batches(blocks, 16, rng), size["mlm_epochs"], 1e-3, step,
              log, size["max_steps"])
    model.eval()
    return model, res


# Sentences written for the classifier (tools/train/check_emotions.py says how), one-hot: ReDial's
# seekers seldom say they are sad, surprised or nostalgic (the weak labels make surprise, nostalgia
# and negative the top label of 69, 144 and 229 of 10,964 turns). Repeated so they weigh about 5%.
WRITTEN_EMOTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "emotion_train.jsonl")
WRITTEN_REPEAT = 5
# The hand-labelled sets the trained classifier is measured on (reported in train_log.json).
HAND_LABELLED = {name: os.path.join(os.path.dirname(WRITTEN_EMOTIONS), f"emotion_{name}.jsonl") for name in ("dev", "eval")}


def classifier_ids(tok, text):
    """The classifier's input as the engine builds it (ECR_SPEC 6): the turn's text, then
    <|endoftext|>, the last 256 tokens. No "User: " head, so the first word has no leading space."""
    return (tok.encode(text) + [EOS])[-256:]


def read_labelled(path):
    """[(text, label, acceptable labels)] of a JSON-lines set of check_emotions.py's format."""
    with open(path, encoding="utf-8") as f:
        cases = [json.loads(line) for line in f if line.strip()]
    return [(c["text"], c["label"], [c["label"]] + c.get("also", [])) for c in cases]


def train_emotion(c, vocab, size, a, log, rng):
    examples = [(classifier_ids(c.tok, t.text), t.weak) for d in c.train for t in d.turns if t.user and t.text]
    written = [(classifier_ids(c.tok, text), [float(e == label) for e in data.EMOTIONS])
               for text, label, _ in read_labelled(WRITTEN_EMOTIONS)]
    examples += written * WRITTEN_REPEAT
    # Each label's loss weighted by (1 / (9 * its share of the targets))^0.5: "like", "neutral" and
    # "grateful" fill most turns, and unweighted the rare labels were almost never the top one.
    share = torch.tensor([sum(w[k] for _, w in examples) for k in range(9)]) / len(examples)
    weight = (1.0 / (9 * share.clamp_min(1e-3))).sqrt()
    model = Gpt2(vocab, size["c_d"], size["c_layers"], size["c_heads"], 256, num_labels=9)

    def step(batch):
        target = torch.tensor([w for _, w in batch])
        return -(weight * target * classify(model, [s for s, _ in batch]).log_softmax(-1)).sum(-1).mean()

    model.train()
    res = fit("emotion_classifier", model.parameters(), lambda e: batches(examples, 64, rng), size["cls_epochs"], 2e-3,
              step, log, size["max_steps"])
    model.eval()
    log.stage("emotion_classifier", written_examples=len(written), label_weights=[round(float(x), 3) for x in weight])
    return model, res


def hand_labelled_top1(c, model, log):
    """Top-1 accuracy on the hand-labelled sets (the strongest label is an acceptable one)."""
    with torch.no_grad():
        for name, path in HAND_LABELLED.items():
            cases = read_labelled(path)
            probs = classify(model, [classifier_ids(c.tok, text) for text, _, _ in cases])
            right = [data.EMOTIONS[int(p.argmax())] in ok for p, (_, _, ok) in zip(probs, cases)]
            log.stage("emotion_classifier", **{f"{name}_top1": float(np.mean(right))})
            print(f"emotion classifier: top-1 accuracy {np.mean(right):.3f} on {os.path.basename(path)}", flush=True)


def classify(model, seqs):
    """docs/math.md section 6: the score head on each sequence's last hidden state."""
    h = model(model.vocab.compact(pad(seqs, EOS)))
    return h[torch.arange(len(seqs)), torch.tensor([len(s) - 1 for s in seqs])] @ model.score.T


def label_emotions(c, model, log):
    """Every user turn gets the classifier's emotions, as the engine will give them at inference."""
    with torch.no_grad():
        turns = [t for d in c.dialogs for t in d.turns if t.user and t.text]
        for i in range(0, len(turns), 256):
            chunk = turns[i:i + 256]
            probs = classify(model, [classifier_ids(c.tok, t.text) for t in chunk]).softmax(-1)
            for t, p in zip(chunk, probs.tolist()):
                t.emotions = p
        agree = [max(range(9), key=lambda k: t.emotions[k]) == max(range(9), key=lambda k: t.weak[k])
                 for d in c.valid for t in d.turns if t.user and t.text]
        if agree:
            log.stage("emotion_classifier", valid_top1_agreement_with_weak_labels=float(np.mean(agree)))


class PromptBatcher:
    """Builds the KGPrompt prefixes of a batch (docs/math.md section 4) and the backbone inputs."""

    def __init__(self, c, prompt, text_encoder, r_vocab, cooc):
        self.c, self.prompt, self.text_encoder, self.r_vocab = c, prompt, text_encoder, r_vocab
        self.cooc = cooc  # (indptr, indices, values) or None
        self.token_cache = {}

    def tokens(self, key, r_ids):
        if key not in self.token_cache:
            with torch.no_grad():
                self.token_cache[key] = self.text_encoder(self.r_vocab.compact([r_ids]))[0]
        return self.token_cache[key]

    def global_rows(self, E, entities):
        indptr, indices, values = self.cooc
        rows, cols, vals = [], [], []
        for k, e in enumerate(entities):
            s, t = indptr[e], indptr[e + 1]
            rows += [k] * (t - s)
            cols += indices[s:t].tolist()
            vals += values[s:t].tolist()
        m = torch.sparse_coo_tensor(torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1),
                                    torch.tensor(vals, dtype=torch.float32), (len(entities), E.shape[0]))
        return torch.sparse.mm(m, E)

    def prefix(self, E, M, examples, emotions):
        """examples: [(cache key, r_ids, context entities)], emotions: [bool] per example."""
        rows = []
        for (key, r_ids, ents), use_emotions in zip(examples, emotions):
            ids = torch.tensor([e for e, _, _ in ents], dtype=torch.long)
            if self.prompt.kind == "rec" and use_emotions and len(ents):
                eids = torch.tensor([x for _, x, _ in ents], dtype=torch.long)
                eps = torch.tensor([p for _, _, p in ents], dtype=torch.float32)
                glob = self.global_rows(E, ids.tolist()) if self.cooc is not None else None
                rows.append(self.prompt.rows(E, M, self.tokens(key, r_ids), ids, eids, eps, glob))
            else:
                rows.append(self.prompt.rows(E, M, self.tokens(key, r_ids), ids))
        s = max(r.shape[0] for r in rows)
        padded = torch.stack([F.pad(r, (0, 0, 0, s - r.shape[0])) for r in rows])
        mask = torch.tensor([[k < r.shape[0] for k in range(s)] for r in rows])
        return self.prompt.project(padded), mask


def rec_examples(c, dialogs):
    out = []
    for d, t, item, weight in data.rec_samples(dialogs):
        g, r = c.context(d.turns[:t])
        out.append(((d.id, t), g, r, data.context_entities(d.turns[:t]), item, weight))
    return out


def train_rec(c, vocab, r_vocab, backbone, text_encoder, cooc, size, a, log, rng):
    n = c.kg.num_entities
    prompt = KGPrompt("rec", size["d"], size["r_d"], size["layers"], n, len(c.kg.relations), size["bases"],
                      c.edges, size["n_prefix_rec"])
    batcher = PromptBatcher(c, prompt, text_encoder, r_vocab, cooc)
    train, valid = rec_examples(c, c.train), rec_examples(c, c.valid)

    def scores(batch, emotions):
        E, M = prompt.entity_table(), prompt.emotion_table()
        prefix, mask = batcher.prefix(E, M, [(k, r, ents) for k, _, r, ents, _, _ in batch], emotions)
        seqs = [g or [EOS] for _, g, _, _, _, _ in batch]
        h = backbone(vocab.compact(pad(seqs, EOS)), prefix, mask)
        z = h[torch.arange(len(seqs)), torch.tensor([len(s) - 1 for s in seqs])]
        return z @ E.T

    def step(batch):
        # A sixth of the examples run without emotions, so the prompt also serves hosts (and the
        # ablation) that turn the classifier off.
        logits = scores(batch, [rng.random() >= 1 / 6 for _ in batch])
        target = torch.tensor([item for *_, item, _ in batch])
        weight = torch.tensor([w for *_, w in batch])
        return (F.cross_entropy(logits, target, reduction="none") * weight).sum() / weight.sum()

    # ECR freezes its DialoGPT backbone here. A 4-layer backbone trained from scratch on 400k tokens
    # could not be steered by the prefix alone (the prompt's projections stayed at their initial
    # scale and the ranking ignored the dialog), so its blocks are tuned too, at a fifth of the
    # prompt's learning rate; the embeddings, and with them the LM head, stay as the LM left them.
    tuned = [p for n, p in backbone.named_parameters() if n.startswith(("transformer.h.", "transformer.ln_f."))]
    for p in tuned:
        p.requires_grad_(True)
    prompt.train()
    if a.entity_init:
        with torch.no_grad():
            prompt.node_embeds.normal_(0, a.entity_init)
    res = fit("rec_prompt", [{"params": list(prompt.parameters())}, {"params": tuned, "lr": a.rec_lr / 5}],
              lambda e: batches(train, 32, rng), size["rec_epochs"], a.rec_lr, step, log, a.rec_steps or size["max_steps"])
    prompt.eval()
    backbone.requires_grad_(False)
    items = torch.tensor(sorted(c.kg.item_set))
    with torch.no_grad():
        hits = {1: [], 10: [], 50: []}
        for i in range(0, len(valid), 64):
            batch = valid[i:i + 64]
            s = scores(batch, [True] * len(batch))[:, items]
            gold = torch.tensor([item for *_, item, _ in batch])
            gold_score = s.gather(1, torch.searchsorted(items, gold)[:, None])
            rank = (s > gold_score).sum(1) + 1
            for k in hits:
                hits[k] += (rank <= k).tolist()
        if valid:
            log.stage("rec_prompt", valid_samples=len(valid), **{f"valid_recall@{k}": float(np.mean(v)) for k, v in hits.items()})
    return prompt, res


def train_conv(c, vocab, r_vocab, backbone, text_encoder, rec_prompt, size, a, log, rng):
    prompt = KGPrompt("conv", size["d"], size["r_d"], size["layers"], c.kg.num_entities, len(c.kg.relations),
                      size["bases"], c.edges, size["n_prefix_conv"])
    shared = {k: v for k, v in rec_prompt.state_dict().items() if k in prompt.state_dict()
              and not k.startswith(("rec_", "conv_"))}
    prompt.load_state_dict(shared, strict=False)
    batcher = PromptBatcher(c, prompt, text_encoder, r_vocab, None)
    system = c.tok.encode("System:")
    examples = []
    for d in c.train:
        for t, turn in enumerate(d.turns):
            # Only the turns that name a movie: the Responder speaks after the Recommender has
            # ranked items, so its template should carry a <movie> slot for them. UniCRS trains on
            # every system turn; on this small backbone that made the greedy template a generic
            # question that never names a movie ("I have you seen that one.").
            if t == 0 or turn.user or "<movie>" not in turn.template:
                continue
            g, r = c.context(d.turns[:t])
            target = c.tok.encode("System: " + turn.template)[len(system):][:TEMPLATE_TOKENS - 1] + [EOS]
            ents = [(e, None, None) for e, _, _ in data.context_entities(d.turns[:t])]
            examples.append(((d.id, t), g[-(data.CONTEXT_TOKENS - len(system)):] + system, r, ents, target))

    if size["conv_examples"] and len(examples) > size["conv_examples"]:  # a 2-core budget: a random part
        examples = rng.sample(examples, size["conv_examples"])

    def step(batch):
        E = prompt.entity_table()
        prefix, mask = batcher.prefix(E, None, [(k, r, ents) for k, _, r, ents, _ in batch], [False] * len(batch))
        seqs = [g + t for _, g, _, _, t in batch]
        h = backbone(vocab.compact(pad(seqs, EOS)), prefix, mask)
        hs, ys = [], []
        for b, (_, g, _, _, t) in enumerate(batch):
            hs.append(h[b, len(g) - 1:len(g) - 1 + len(t)])
            ys += t
        return lm_loss(torch.cat(hs), backbone.transformer.wte, vocab.targets(ys), vocab.unseen)

    # UniCRS adds <movie> to GPT-2 as a new token. This backbone learned its LM on text with the
    # titles written out, so the tied row of <movie> kept its initial values and the greedy
    # template never chose it; nor the lone space before it (" <movie>" is " " + "<movie>", as
    # special tokens are split out first), which the collapsed ReDial text never has. The conv
    # stage learns those two rows with the prompt. The rec path never reads them (its contexts
    # carry titles, not <movie>, and no lone spaces), so the ranking is unchanged.
    wte = backbone.transformer.wte
    only_movie = torch.zeros(len(vocab), 1)
    only_movie[vocab.targets([MOVIE, SPACE])] = 1.0
    wte.requires_grad_(True)
    hook = wte.register_hook(lambda g: g * only_movie)
    prompt.train()
    res = fit("conv_prompt", [{"params": list(prompt.parameters())}, {"params": [wte], "weight_decay": 0.0}],
              lambda e: batches(examples, 16, rng), size["conv_epochs"], 1e-3, step, log, size["max_steps"])
    hook.remove()
    wte.requires_grad_(False)
    prompt.eval()
    return prompt, res


def generator_examples(c, dialogs, rng):
    return [c.generator_example(turn, rng) for d in dialogs for t, turn in enumerate(d.turns)
            if t and not turn.user and turn.items and turn.text]


def train_generator(c, vocab, lm_state, size, a, log, rng):
    """lm_state: the backbone as the language-model stage left it (before the rec stage tuned it)."""
    model = Gpt2(vocab, size["d"], size["layers"], size["heads"], size["positions"])
    model.load_state_dict(lm_state)

    def step(batch):
        seqs = [p + r for p, r in batch]
        h = model(vocab.compact(pad(seqs, EOS)))
        hs, ys = [], []
        for b, (p, r) in enumerate(batch):
            hs.append(h[b, len(p) - 1:len(p) - 1 + len(r)])
            ys += r
        return lm_loss(torch.cat(hs), model.transformer.wte, vocab.targets(ys), vocab.unseen)

    model.train()
    # Knowledge is drawn afresh each epoch, as ECR samples it.
    res = fit("generator", model.parameters(), lambda e: batches(generator_examples(c, c.train, rng), 16, rng),
              size["gen_epochs"], 5e-4, step, log, size["max_steps"])
    model.eval()
    return model, res


def load_gpt2(model, directory):
    """A checkpoint save_gpt2 wrote, back into a trainer module (the same training vocabulary)."""
    sd = torch.load(os.path.join(directory, "pytorch_model.bin"), map_location="cpu")
    own = {"transformer.wte": sd.pop("transformer.wte.weight")[model.vocab.ids],
           "transformer.wpe": sd.pop("transformer.wpe.weight")}
    sd.pop("lm_head.weight", None)
    if "score.weight" in sd:
        own["score"] = sd.pop("score.weight")
    model.load_state_dict({**sd, **own})
    return model.eval()


def load_roberta(model, directory):
    sd = torch.load(os.path.join(directory, "pytorch_model.bin"), map_location="cpu")
    e = "embeddings."
    own = {e + "word_embeddings": sd.pop(e + "word_embeddings.weight")[model.vocab.ids],
           e + "position_embeddings": sd.pop(e + "position_embeddings.weight"),
           e + "token_type_embeddings": sd.pop(e + "token_type_embeddings.weight")}
    own.update({k: v for k, v in model.state_dict().items() if k.startswith("mlm_")})  # the head is not saved
    model.load_state_dict({**sd, **own})
    return model.eval()


# --- output ----------------------------------------------------------------------------------------

def save_gpt2(model, out, vocab_dir, classifier=0):
    os.makedirs(out, exist_ok=True)
    hf.write_gpt2_tokenizer(out, vocab_dir)
    hf.write_json(os.path.join(out, "config.json"),
                  hf.gpt2_config(model.n_layer, model.n_head, model.d, model.n_positions, GPT2_VOCAB, classifier))
    torch.save(model.hf_state_dict(), os.path.join(out, "pytorch_model.bin"))


def save_roberta(model, out, vocab_dir, size):
    os.makedirs(out, exist_ok=True)
    hf.write_roberta_tokenizer(out, vocab_dir)
    hf.write_json(os.path.join(out, "config.json"),
                  hf.roberta_config(size["r_layers"], size["r_heads"], size["r_d"], size["r_inner"],
                                    data.PROMPT_TOKENS + 1, ROBERTA_VOCAB, True))
    torch.save(model.hf_state_dict(), os.path.join(out, "pytorch_model.bin"))


def write_annotated(c, path):
    """The training dialogs with the linker's entities (`item` / `entity` names) and the
    classifier's emotions on the seeker's messages: the converter's co-occurrence input."""
    with open(path, "w", encoding="utf-8") as f:
        for d in c.dialogs:
            record = json.loads(json.dumps(d.record))
            # A turn's entities go on its first message (the converter merges a turn's messages again).
            turns, turn, sender = iter(d.turns), None, None
            for m in record["messages"]:
                first = m["senderWorkerId"] != sender
                if first:
                    turn, sender = next(turns), m["senderWorkerId"]
                m.pop("movie", None)
                m["item"] = [c.kg.keys[e] for e in turn.entities if e in c.kg.item_set] if first else []
                m["entity"] = [c.kg.keys[e] for e in turn.entities if e not in c.kg.item_set] if first else []
                if turn.user and turn.emotions is not None:
                    m["emotions"] = {e: round(p, 4) for e, p in zip(data.EMOTIONS, turn.emotions)}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description="train the project's small ECR on ReDial")
    p.add_argument("--data", required=True, help="the shared data folder (gpt2/, redial/, reviews/)")
    p.add_argument("--ecr", required=True, help="the ecr tool (its linker annotates the dialogs)")
    p.add_argument("--out", required=True, help="work folder: checkpoints, log, annotated dialogs")
    p.add_argument("--bundle", help="write the bundle here (default OUT/ecr.ecr)")
    p.add_argument("--smoke", action="store_true", help="tiny models, a few dialogs and steps; fails unless losses fall")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--resume-from", metavar="CHECKPOINTS", help="take the backbone, text encoder and emotion "
                   "classifier from an earlier run's checkpoints folder and train the later stages only")
    p.add_argument("--emotion-only", action="store_true", help="train the emotion classifier only (stage 3), save "
                   "it as OUT/checkpoints/emotion_classifier and log its accuracy on the hand-labelled sets; no bundle "
                   "unless --replace-in")
    p.add_argument("--replace-in", metavar="BUNDLE", help="with --emotion-only: write --bundle as BUNDLE with its "
                   "emotion_classifier replaced by the new one (f16, zstd 19, as a full run writes it), the rest unchanged")
    p.add_argument("--rec-epochs", type=int, help="override the rec prompt's epochs")
    p.add_argument("--rec-lr", type=float, default=2e-3, help="the rec prompt's peak learning rate")
    p.add_argument("--gen-epochs", type=int, help="override the generator's epochs")
    p.add_argument("--rec-steps", type=int, help="stop the rec stage after this many steps (and end the run)")
    # KGPrompt draws node_embeds from +-sqrt(6 / (N + d)) (0.016 here): the entity table then starts
    # almost constant and the ranking stayed at popularity; N(0, 0.1) lets the KG's structure show.
    p.add_argument("--entity-init", type=float, default=0.1, help="node_embeds ~ N(0, this); 0: KGPrompt's uniform init")
    p.add_argument("--conv-examples", type=int, help="override how many templates the conv prompt trains on")
    p.add_argument("--conv-epochs", type=int, help="override the conv prompt's epochs")
    p.add_argument("--resume-rec", metavar="CHECKPOINTS", help="take every part but the conv prompt from a finished "
                   "run's checkpoints folder (the rec-tuned backbone included) and train the conv prompt only; "
                   "with --gen-epochs, the generator also trains on for that many epochs")
    p.add_argument("--keep-conv", action="store_true", help="with --resume-rec: keep its conv prompt too (then "
                   "only --gen-epochs trains)")
    a = p.parse_args(argv)
    if a.replace_in and not a.emotion_only:
        p.error("--replace-in needs --emotion-only")
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = random.Random(a.seed)
    size = SIZES["smoke" if a.smoke else "full"]
    os.makedirs(a.out, exist_ok=True)
    log = Log(os.path.join(a.out, "train_log.json"))
    start = time.time()

    c = Corpus(a, size)
    edges, _, _ = build_edges(c.kg.directory)
    c.edges = edges
    n_samples = len(data.rec_samples(c.train))
    log.stage("data", dialogs=len(c.dialogs), train_dialogs=len(c.train), valid_dialogs=len(c.valid),
              rec_samples=n_samples, gpt2_tokens=sum(len(t.g_ids) for d in c.dialogs for t in d.turns))
    # One vocabulary for the backbone, its prompts and the generator (every GPT-2 text of every stage).
    seen = {EOS, MOVIE}
    for d in c.dialogs:
        for t in d.turns:
            seen.update(t.g_ids)
            if not t.user and t.template:
                seen.update(c.tok.encode("System: " + t.template))
                seen.update(c.tok.encode(t.text))  # the generator's replies
    for prompt_ids, reply in generator_examples(c, c.dialogs, random.Random(0)):
        seen.update(prompt_ids + reply)
    for text in c.knowledge_texts():  # every knowledge text the generator may be shown
        seen.update(c.tok.encode(" " + text))
    vocab = CompactVocab(seen, GPT2_VOCAB)
    r_seen = {R_CLS, R_PAD, R_SEP, R_MASK} | {i for d in c.dialogs for t in d.turns for i in t.r_ids}
    r_vocab = CompactVocab(r_seen, ROBERTA_VOCAB)
    c_vocab = CompactVocab({i for d in c.dialogs for t in d.turns if t.user for i in classifier_ids(c.tok, t.text)} |
                           {i for text, _, _ in read_labelled(WRITTEN_EMOTIONS) for i in classifier_ids(c.tok, text)},
                           GPT2_VOCAB)
    log.stage("data", gpt2_vocab_rows=len(vocab), roberta_vocab_rows=len(r_vocab), classifier_vocab_rows=len(c_vocab))

    if a.emotion_only:
        emotion, _ = train_emotion(c, c_vocab, size, a, log, rng)
        hand_labelled_top1(c, emotion, log)
        ck = os.path.join(a.out, "checkpoints", "emotion_classifier")
        save_gpt2(emotion, ck, os.path.join(a.data, "gpt2"), classifier=9)
        if a.replace_in:
            part = os.path.join(a.out, "emotion_classifier.ecr")
            cmd = module_command("tools.convert", "--out", part, "--gpt2", f"emotion_classifier={ck}",
                                 "--dtype", "f16", "--codec", "zstd", "--zstd-level", "19")
            print("$ " + " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, env=module_env())
            bundle = a.bundle or os.path.join(a.out, "ecr.ecr")
            ecr_bundle.replace_component(a.replace_in, part, "emotion_classifier", bundle)
            print(f"wrote {bundle}: {a.replace_in} with the new emotion_classifier", flush=True)
        return 0

    results = {}
    for key in ("rec_epochs", "gen_epochs", "conv_examples", "conv_epochs"):
        if getattr(a, key):
            size = dict(size, **{key: getattr(a, key)})
    if a.resume_rec and a.resume_from:
        p.error("--resume-rec and --resume-from exclude each other")
    if a.resume_from or a.resume_rec:
        r = a.resume_from or a.resume_rec
        backbone = load_gpt2(Gpt2(vocab, size["d"], size["layers"], size["heads"], size["positions"]), f"{r}/backbone")
        text_encoder = load_roberta(Roberta(vocab=r_vocab, d=size["r_d"], n_layer=size["r_layers"], n_head=size["r_heads"],
                                            inner=size["r_inner"], max_positions=data.PROMPT_TOKENS + 3,
                                            pad_full_id=R_PAD), f"{r}/text_encoder")
        emotion = load_gpt2(Gpt2(c_vocab, size["c_d"], size["c_layers"], size["c_heads"], 256, num_labels=9),
                            f"{r}/emotion_classifier")
        log.stage("resumed", checkpoints=r)
    else:
        backbone, results["backbone"] = train_backbone(c, vocab, size, a, log, rng)
        text_encoder, results["text_encoder"] = train_text_encoder(c, r_vocab, size, a, log, rng)
        emotion, results["emotion_classifier"] = train_emotion(c, c_vocab, size, a, log, rng)
    hand_labelled_top1(c, emotion, log)
    backbone.requires_grad_(False)
    text_encoder.requires_grad_(False)
    label_emotions(c, emotion, log)

    annotated = os.path.join(a.out, "annotated_dialogs.jsonl")
    write_annotated(c, annotated)
    kg_meta = ecr_kg.load_kg(c.kg.directory)
    cooc = ecr_kg.cooccurrence(kg_meta, ecr_kg.read_dialogs(annotated))
    log.stage("data", cooccurrence_nnz=int(len(cooc[2])))
    if a.resume_rec:
        rec = KGPrompt("rec", size["d"], size["r_d"], size["layers"], c.kg.num_entities, len(c.kg.relations),
                       size["bases"], c.edges, size["n_prefix_rec"])
        rec.load_state_dict(torch.load(os.path.join(a.resume_rec, "rec", "model.pt"), map_location="cpu"))
        rec.eval()
        generator_state = load_gpt2(Gpt2(vocab, size["d"], size["layers"], size["heads"], size["positions"]),
                                    f"{a.resume_rec}/generator").state_dict()
    else:
        lm_state = {k: v.clone() for k, v in backbone.state_dict().items()}
        rec, results["rec_prompt"] = train_rec(c, vocab, r_vocab, backbone, text_encoder, cooc, size, a, log, rng)
        if a.rec_steps:
            return 0
    if a.keep_conv:
        if not a.resume_rec:
            p.error("--keep-conv needs --resume-rec")
        conv = KGPrompt("conv", size["d"], size["r_d"], size["layers"], c.kg.num_entities, len(c.kg.relations),
                        size["bases"], c.edges, size["n_prefix_conv"])
        conv.load_state_dict(torch.load(os.path.join(a.resume_rec, "conv", "model.pt"), map_location="cpu"))
        conv.eval()
    else:
        conv, results["conv_prompt"] = train_conv(c, vocab, r_vocab, backbone, text_encoder, rec, size, a, log, rng)
    if not a.resume_rec:
        generator, results["generator"] = train_generator(c, vocab, lm_state, size, a, log, rng)
    elif a.gen_epochs:
        generator, results["generator"] = train_generator(c, vocab, generator_state, size, a, log, rng)
    else:
        generator = load_gpt2(Gpt2(vocab, size["d"], size["layers"], size["heads"], size["positions"]),
                              f"{a.resume_rec}/generator")

    ck = os.path.join(a.out, "checkpoints")
    vocab_dir = os.path.join(a.data, "gpt2")
    save_gpt2(backbone, os.path.join(ck, "backbone"), vocab_dir)
    save_roberta(text_encoder, os.path.join(ck, "text_encoder"), vocab_dir, size)
    save_gpt2(emotion, os.path.join(ck, "emotion_classifier"), vocab_dir, classifier=9)
    save_gpt2(generator, os.path.join(ck, "generator"), vocab_dir)
    os.makedirs(os.path.join(ck, "rec"), exist_ok=True)
    os.makedirs(os.path.join(ck, "conv"), exist_ok=True)
    torch.save(rec.state_dict(), os.path.join(ck, "rec", "model.pt"))
    torch.save(conv.state_dict(), os.path.join(ck, "conv", "model.pt"))
    bundle = a.bundle or os.path.join(a.out, "ecr.ecr")
    cmd = module_command("tools.convert", "--out", bundle,
                         "--gpt2", f"backbone={ck}/backbone", "--roberta", f"text_encoder={ck}/text_encoder",
                         "--gpt2", f"emotion_classifier={ck}/emotion_classifier",
                         "--rec-prompt", f"rec_prompt={ck}/rec/model.pt", "--conv-prompt", f"conv_prompt={ck}/conv/model.pt",
                         "--gpt2", f"generator={ck}/generator", "--prompt-n-head", size["heads"],
                         "--kg", c.kg.directory, "--dialogs", annotated,
                         "--reviews", os.path.join(a.data, "reviews", "movie_reviews.json"),
                         "--dtype", "f16", "--codec", "zstd", "--zstd-level", "19")
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=module_env())
    log.stage("total", seconds=round(time.time() - start, 1), bundle_bytes=os.path.getsize(bundle), size=size)
    print(f"wrote {bundle} ({os.path.getsize(bundle) / 1e6:.1f} MB) in {time.time() - start:.0f} s", flush=True)
    if a.smoke:
        failed = [name for name, (first, last) in results.items() if not last < first]
        if failed:
            print(f"error: the loss did not fall in: {', '.join(failed)}", file=sys.stderr)
            return 1
        print("smoke: every stage's loss fell: " +
              ", ".join(f"{k} {f:.3f} -> {l:.3f}" for k, (f, l) in results.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
