"""Item-side recommenders trained on movie_sequences.jsonl (the movie mentions of 9,730 ReDial
training conversations), measured on the official test split with `ecr eval`'s samples and
metrics: what the entity side of the next retrain should start from (docs/recommendation-study.md).

    OMP_NUM_THREADS=1 python3 -m tools.train.item_baselines --data ../shared/data --ecr build/src/ecr

Samples (src/cli/eval.cpp): every system turn of a test dialog that names a recommendable movie
gives one sample per such movie; the context is the dialog before that turn, entities as the
engine's linker finds them (`ecr link`, as `ecr eval` links the raw test split). A model sees the
context's movies in the order they were named and the genres the seeker named. Metrics
(src/eval/metrics.cpp): Recall@1/10/50 of the gold movie's rank among all items (ties: lower id
first), AUC of the gold movie's softmax probability over positive (liked) against negative samples.
"Dedup" ranks with the context's movies removed (the `exclude_mentioned` variant): a gold movie
the dialog had already named then counts as a miss.

Models:
  popularity   mentions per movie in the sequences
  cooc         conversations in which the movie appeared with each context movie (summed),
               popularity breaking ties: the plain co-occurrence baseline
  itemknn      co-occurrence normalised by the popularity of both movies (pop_i^-a pop_j^-b), the
               context movies weighted by recency (r^age), a co-occurring movie the seeker liked
               counting w times; a, b, r and w chosen on 5% of the sequences held out from its counts
  next-item    a next-movie model trained on the sequences: the context's movie embeddings
               (recency-weighted) and the named genres' embeddings, summed, scored against an output table of the movies
               plus a bias (softmax cross entropy over all movies, every prefix of every sequence)
  +genres      itemknn's score plus g * [the movie has a genre the seeker named] (g chosen on the
               held-out sequences); the next-item model takes the genres as input instead, and
               "next-item, no genres" is the same model trained and run without them
  next-item + itemknn   both scores standardised over the items and summed, itemknn +genres
               weighted w (chosen on the held-out sequences)
"""

import argparse
import json
import math
import os
import random
import tempfile

import numpy as np

from .. import ecr_kg
from . import data

KS = (1, 10, 50)
# Genre words of movie_sequences.jsonl that the KG spells otherwise.
GENRE_NAMES = {"children": "family"}


def entity_of_redial_ids(ecr, kg, id2info):
    """ReDial movie id -> KG item, through the engine's linker (each id as a one-mention message)."""
    ids = sorted(id2info)
    record = {"conversationId": "ids", "initiatorWorkerId": 0, "respondentWorkerId": 1,
              "movieMentions": {i: id2info[i]["name"] for i in ids},
              "messages": [{"senderWorkerId": 0, "text": f"@{i}"} for i in ids]}
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write(json.dumps(record) + "\n")
    try:
        found = data.link(ecr, kg.directory, f.name)
    finally:
        os.unlink(f.name)
    out = {}
    for m, i in enumerate(ids):
        items = [e for e, source, _, _ in found.get((0, m), []) if source == "mention" and e in kg.item_set]
        if items:
            out[i] = items[0]
    return out


def read_sequences(path, redial_to_item, genre_ids):
    """[(items in order, liked flags, genre entity ids)] of the conversations with any KG movie."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            items, liked = [], []
            for movie, flag in r["movies"]:
                if movie in redial_to_item:
                    items.append(redial_to_item[movie])
                    liked.append(int(flag == 1))
            genres = sorted({genre_ids[g] for g in (GENRE_NAMES.get(w, w) for w in r["genres"]) if g in genre_ids})
            if items:
                out.append((items, liked, genres))
    return out


class Sample:
    """One prediction: context movies (oldest first), genres, the gold movie, and the feedback for
    AUC (1 liked, 0 disliked, None unknown). The seekers' liked flags are not in the context: the
    engine does not have them when it recommends."""

    def __init__(self, items, genres, gold, feedback):
        self.items, self.genres, self.gold, self.feedback = items, genres, gold, feedback


def test_samples(ecr, kg, path, genre_set):
    dialogs = data.read_dialogs([path], ecr, kg)
    out = []
    for d, t, gold, _ in data.rec_samples(dialogs):
        items, genres = [], []
        for turn in d.turns[:t]:
            for e in turn.items:
                if e in items:
                    items.remove(e)
                items.append(e)
            if turn.user:
                genres += [e for e in turn.entities if e in genre_set and e not in genres]
        turn = d.turns[t]
        feedback = data.feedback(d.record, turn.redial_ids[gold]) if gold in turn.redial_ids else None
        out.append(Sample(items, sorted(genres), gold, feedback))
    return out


def heldout_samples(sequences):
    """Every prefix of the held-out sequences: predict movie k from the movies before it."""
    out = []
    for items, liked, genres in sequences:
        for k in range(len(items)):
            out.append(Sample(items[:k], genres, items[k], liked[k]))
    return out


# --- models: each maps a sample to scores over the item list (index = position in `items`) ---------

class Counts:
    def __init__(self, sequences, n_items, index):
        self.pop = np.zeros(n_items)
        X = np.zeros((len(sequences), n_items), dtype=np.float32)
        L = np.zeros_like(X)  # the movies the seeker liked
        for s, (items, liked, _) in enumerate(sequences):
            for e, flag in zip(items, liked):
                self.pop[index[e]] += 1
                X[s, index[e]] = 1
                L[s, index[e]] = max(L[s, index[e]], flag)
        self.cooc = X.T @ X
        self.cooc_liked = X.T @ L  # [i, j]: conversations with i in which j was liked
        np.fill_diagonal(self.cooc, 0)
        np.fill_diagonal(self.cooc_liked, 0)
        self.tie = self.pop / (self.pop.max() + 1)  # below 1: only breaks ties of integer counts


def popularity(counts):
    return lambda s, idx: np.log1p(counts.pop)


def cooccurrence(counts):
    def score(s, idx):
        c = counts.cooc[[idx[e] for e in s.items]].sum(0) if s.items else 0
        return np.log1p(c + counts.tie)
    return score


def itemknn(counts, a, b, recency, liked_weight):
    norm = np.maximum(counts.pop, 1)
    S = (counts.cooc + (liked_weight - 1) * counts.cooc_liked) / (norm[:, None] ** a) / (norm[None, :] ** b)
    prior = np.log1p(counts.pop) * 1e-6

    def score(s, idx):
        out = prior.copy()
        n = len(s.items)
        for k, e in enumerate(s.items):
            out += recency ** (n - 1 - k) * S[idx[e]]
        return out
    return score


def genre_matrix(kg, items, genre_set):
    """items x genre entities: 1 where the KG says the movie has that genre."""
    genres = sorted(genre_set)
    col = {g: j for j, g in enumerate(genres)}
    row = {e: i for i, e in enumerate(items)}
    G = np.zeros((len(items), len(genres)), dtype=np.float32)
    for h, r, t in kg.triples.tolist():
        if kg.relations[r] == "genre" and h in row and t in col:
            G[row[h], col[t]] = 1
    return G, col


def with_genres(model, G, col, weight):
    def score(s, idx):
        base = model(s, idx)
        if not s.genres:
            return base
        return base + weight * G[:, [col[g] for g in s.genres]].max(1)
    return score


def combined(first, second, weight):
    z = lambda v: (v - v.mean()) / (v.std() + 1e-9)
    return lambda s, idx: z(np.asarray(first(s, idx), dtype=np.float64)) + weight * z(np.asarray(second(s, idx), dtype=np.float64))


def train_next_item(sequences, index, genre_col, dim, epochs, seed, log, genres=True):
    import torch
    torch.manual_seed(seed)
    rng = random.Random(seed)
    n, g = len(index), len(genre_col)
    examples = [(items[:k], gs if genres else [], items[k]) for items, _, gs in sequences for k in range(len(items))]

    class NextItem(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = torch.nn.Embedding(n + 1, dim, padding_idx=n)     # context movies
            self.genre = torch.nn.Embedding(g + 1, dim, padding_idx=g)
            self.decay = torch.nn.Parameter(torch.tensor(0.0))            # recency: sigmoid-weighted age
            self.out = torch.nn.Embedding(n, dim)
            self.bias = torch.nn.Parameter(torch.zeros(n))
            for e in (self.inp, self.genre, self.out):
                torch.nn.init.normal_(e.weight, std=0.05)
            with torch.no_grad():
                self.inp.weight[n].zero_()
                self.genre.weight[g].zero_()

        def forward(self, ctx, ages, genres):
            w = torch.sigmoid(self.decay + 2.0) ** ages * (ctx != n)
            h = (w.unsqueeze(-1) * self.inp(ctx)).sum(1)
            h = h + self.genre(genres).sum(1)
            return h @ self.out.weight.T + self.bias

    model = NextItem()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def tensors(batch):
        L = max(1, max(len(c) for c, _, _ in batch))
        Lg = max(1, max(len(gs) for _, gs, _ in batch))
        ctx = torch.full((len(batch), L), n, dtype=torch.long)
        ages = torch.zeros(len(batch), L)
        genres = torch.full((len(batch), Lg), g, dtype=torch.long)
        for b, (c, gs, _) in enumerate(batch):
            for k, e in enumerate(c):
                ctx[b, k], ages[b, k] = index[e], len(c) - 1 - k
            for k, gid in enumerate(gs):
                genres[b, k] = genre_col[gid]
        return ctx, ages, genres

    for epoch in range(epochs):
        rng.shuffle(examples)
        total = 0.0
        for i in range(0, len(examples), 256):
            batch = examples[i:i + 256]
            target = torch.tensor([index[y] for _, _, y in batch])
            loss = torch.nn.functional.cross_entropy(model(*tensors(batch)), target)
            # A light L2 on the tables: 44k examples for 6.5k movies overfit quickly.
            loss = loss + 1e-5 * (model.inp.weight.pow(2).sum() + model.out.weight.pow(2).sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(batch)
        log(f"  next-item epoch {epoch + 1}: loss {total / len(examples):.3f}")
    model.eval()

    def score(s, idx):
        with torch.no_grad():
            return model(*tensors([(s.items, s.genres if genres else [], None)]))[0].numpy()
    return score


# --- metrics ---------------------------------------------------------------------------------------

def evaluate(model, samples, items, index, dedup=False):
    ranks, probs, feedback = [], [], []
    order = np.arange(len(items))
    for s in samples:
        v = np.asarray(model(s, index), dtype=np.float64)
        if dedup and s.items:
            v = v.copy()
            v[[index[e] for e in s.items]] = -np.inf
        gi = index[s.gold]
        gold = v[gi]
        # ties: the lower entity id first, as the engine ranks (items are sorted by id)
        ranks.append(int(np.sum(v > gold) + np.sum((v == gold) & (order < gi)) + 1))
        finite = v[np.isfinite(v)]
        top = finite.max()
        probs.append(math.exp(gold - top) / np.exp(finite - top).sum() if np.isfinite(gold) else 0.0)
        feedback.append(s.feedback)
    ranks = np.array(ranks)
    row = {f"R@{k}": float(np.mean(ranks <= k)) for k in KS}
    pos = [p for p, f in zip(probs, feedback) if f == 1]
    neg = np.array([p for p, f in zip(probs, feedback) if f == 0])
    pairs = sum(float(np.sum(p > neg) + 0.5 * np.sum(p == neg)) for p in pos)
    row["AUC"] = pairs / (len(pos) * len(neg)) if len(pos) and len(neg) else -1.0
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--ecr", required=True, help="the ecr tool (its linker reads the test dialogs)")
    p.add_argument("--epochs", type=int, default=6, help="next-item model epochs")
    p.add_argument("--dim", type=int, default=64, help="next-item model embedding size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="only the first N test samples (a quick look)")
    a = p.parse_args(argv)
    log = lambda msg: print(msg, flush=True)
    redial = os.path.join(a.data, "redial")
    kg = ecr_kg.load_kg(redial)
    kg.directory, kg.item_set = redial, set(int(i) for i in kg.items)
    items = sorted(kg.item_set)
    index = {e: i for i, e in enumerate(items)}
    genre_ids = {kg.keys[e]: e for e in range(len(kg.keys)) if kg.types[e] == ecr_kg.ENTITY_TYPES["genre"]}
    genre_set = set(genre_ids.values())
    with open(os.path.join(redial, "id2info.json"), encoding="utf-8") as f:
        id2info = json.load(f)
    redial_to_item = entity_of_redial_ids(a.ecr, kg, id2info)
    sequences = read_sequences(os.path.join(redial, "movie_sequences.jsonl"), redial_to_item, genre_ids)
    log(f"{len(redial_to_item)} of {len(id2info)} ReDial movies are KG items; {len(sequences)} sequences, "
        f"{sum(len(s[0]) for s in sequences)} mentions")
    samples = test_samples(a.ecr, kg, os.path.join(redial, "test_dialogs.jsonl"), genre_set)[:a.limit]
    log(f"{len(samples)} test samples ({sum(s.feedback == 1 for s in samples)} liked, "
        f"{sum(s.feedback == 0 for s in samples)} disliked); {sum(s.gold in s.items for s in samples)} name a movie "
        f"the context already named")

    # Settings are chosen on 5% of the sequences held out from the counts and the training.
    train, held = data.split(sequences, 0.05, a.seed)
    held = heldout_samples(held)
    G, col = genre_matrix(kg, items, genre_set)
    tune_counts = Counts(train, len(items), index)
    best = max(((a_, b_, r, w) for a_ in (0.0, 0.5) for b_ in (0.0, 0.5, 0.8) for r in (1.0, 0.7) for w in (1.0, 2.0)),
               key=lambda cfg: evaluate(itemknn(tune_counts, *cfg), held, items, index)["R@10"])
    log(f"itemknn settings (a, b, recency, liked weight), chosen on {len(held)} held-out predictions: {best}")
    nxt_tune = train_next_item(train, index, col, a.dim, a.epochs, a.seed, log)
    knn_tune = itemknn(tune_counts, *best)
    genre_weight = max((0.0, 0.1, 0.3, 1.0, 3.0),
                       key=lambda g: evaluate(with_genres(knn_tune, G, col, g), held, items, index)["R@10"])
    knn_tune_g = with_genres(knn_tune, G, col, genre_weight)
    mix = max((0.25, 0.5, 1.0, 2.0), key=lambda w: evaluate(combined(nxt_tune, knn_tune_g, w), held, items, index)["R@10"])
    log(f"chosen on the held-out predictions: itemknn genre weight {genre_weight}, itemknn weight beside next-item {mix}")
    log("held-out sequences (R@10): " + ", ".join(
        f"{n} {evaluate(m, held, items, index)['R@10']:.3f}" for n, m in
        (("cooc", cooccurrence(tune_counts)), ("itemknn", knn_tune), ("itemknn +genres", knn_tune_g),
         ("next-item", nxt_tune), ("next-item + itemknn", combined(nxt_tune, knn_tune_g, mix)))))

    # The reported models: counts over every sequence, the next-item model trained on every sequence.
    counts = Counts(sequences, len(items), index)
    knn = itemknn(counts, *best)
    knn_g = with_genres(knn, G, col, genre_weight)
    nxt = train_next_item(sequences, index, col, a.dim, a.epochs, a.seed, log)
    nxt_plain = train_next_item(sequences, index, col, a.dim, a.epochs, a.seed, log, genres=False)
    models = [("popularity", popularity(counts)), ("cooc", cooccurrence(counts)), ("itemknn", knn),
              ("itemknn +genres", knn_g), ("next-item, no genres", nxt_plain), ("next-item", nxt),
              ("next-item + itemknn", combined(nxt, knn_g, mix))]
    log("\n| model | R@1 | R@10 | R@50 | AUC | dedup R@1 | dedup R@10 | dedup R@50 |\n|---|---|---|---|---|---|---|---|")
    for name, model in models:
        r, d = evaluate(model, samples, items, index), evaluate(model, samples, items, index, dedup=True)
        log(f"| {name} | {r['R@1']:.3f} | {r['R@10']:.3f} | {r['R@50']:.3f} | {r['AUC']:.3f} | "
            f"{d['R@1']:.3f} | {d['R@10']:.3f} | {d['R@50']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
