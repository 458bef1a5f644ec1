"""The knowledge graph and the co-occurrence matrix, from UniCRS/ECR files into a bundle.

Reads the KG layout of UniCRS and ECR (entity2id.json, kg.json or dbpedia_subkg.json,
relation2id.json, item_ids.json, optional entity2type.json), builds the R-GCN edge list of
docs/math.md section 3 as a relation-major CSR by target, and counts the emotion-aware entity
co-occurrences of docs/math.md section 9 from annotated ReDial dialogs. docs/format.md
("Knowledge graph") describes the tensors; the C++ side is ecr::KnowledgeGraph and
ecr::CooccurrenceMatrix.

    python3 -m tools.ecr_kg --kg DIR [--dialogs FILE [--uniform-emotions]] --out kg.ecr

The converter (tools.convert --kg DIR --dialogs FILE) calls add_to_bundle().
"""

import argparse
import json
import os
import re
import sys

import numpy as np

from .ecr_bundle import BundleWriter

# Type codes stored in kg/entity_types (part of the format).
ENTITY_TYPES = {"other": 0, "movie": 1, "genre": 2, "person": 3}
# docs/math.md section 0: emotion labels in id order.
EMOTIONS = ["like", "curious", "happy", "grateful", "negative", "neutral", "nostalgia", "agreement", "surprise"]
# docs/math.md sections 2 and 9: a label counts when its probability exceeds this; 3 labels at most.
EMOTION_THRESHOLD = 0.1
EMOTIONS_PER_ENTITY = 3


class KgError(Exception):
    """A KG or dialog file that is not what the loader expects (the message names it)."""


# --- names -------------------------------------------------------------------------------------

def _percent_decode(s):
    """%XX escapes decoded as UTF-8 bytes; the text unchanged when the result is not UTF-8."""
    if "%" not in s:
        return s
    out, i, raw = bytearray(), 0, s.encode("utf-8")
    hexdigits = b"0123456789abcdefABCDEF"
    while i < len(raw):
        pair = raw[i + 1:i + 3]
        if raw[i] == 0x25 and len(pair) == 2 and all(c in hexdigits for c in pair):
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        return s


def display_name(key):
    """docs/math.md section 8: `<http://dbpedia.org/resource/The_Matrix>` reads "The Matrix"; other
    keys ("The Matrix (1999)") are already names. Mirrors ecr::kg_display_name."""
    if len(key) >= 2 and key[0] == "<" and key[-1] == ">":
        s = key[1:-1]
        s = s[s.rfind("/") + 1:]
        s = _percent_decode(s).replace("_", " ")
        return " ".join(w for w in re.split(r"[ \t\n\r\f\v]+", s) if w)
    return key


# --- the graph ---------------------------------------------------------------------------------

def _read_json(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise KgError(f"{path}: cannot read: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KgError(f"{path}: not valid JSON: {e}") from None


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


class KnowledgeGraph:
    """Entities 0..N-1 (N = max id + 2; the last is the padding entity), relations, items and the
    KG triples; `edges()` gives the R-GCN edges."""

    def __init__(self, keys, types, relations, items, triples, source):
        self.keys = keys                  # original entity2id keys by id ("" where none)
        self.names = [display_name(k) for k in keys]
        self.types = types                # uint8 codes, ENTITY_TYPES
        self.relations = relations        # names by id
        self.items = items                # int32, item_ids.json order
        self.triples = triples            # int64 (T, 3): head, relation, tail
        self.source = source              # the triples' file name

    @property
    def num_entities(self):
        return len(self.keys)

    @property
    def pad_entity(self):
        return len(self.keys) - 1

    def entity_id(self, name):
        if not hasattr(self, "_ids"):
            self._ids = {}
            for i, (k, n) in enumerate(zip(self.keys, self.names)):
                if k:
                    self._ids.setdefault(k, i)
            for i, n in enumerate(self.names):
                if n:
                    self._ids.setdefault(n, i)
        return self._ids.get(name)

    def edges(self):
        """docs/math.md section 3 edges as a relation-major CSR by target: the sources j of the edges
        j -> i with relation r are sources[indptr[r*N + i] : indptr[r*N + i + 1]], ascending.
        Every triple gives h->t and t->h, duplicates removed, plus the padding self loop (rel 0)."""
        n, r = self.num_entities, len(self.relations)
        h, rel, t = self.triples[:, 0], self.triples[:, 1], self.triples[:, 2]
        pad = np.array([self.pad_entity], dtype=np.int64)
        src = np.concatenate([h, t, pad])
        dst = np.concatenate([t, h, pad])
        rr = np.concatenate([rel, rel, np.zeros(1, dtype=np.int64)])
        edges = np.unique(np.stack([rr, dst, src], axis=1), axis=0)  # sorted by (r, target, source)
        sources = edges[:, 2].astype(np.int32)
        counts = np.bincount(edges[:, 0] * n + edges[:, 1], minlength=r * n)
        indptr = np.zeros(r * n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return indptr, sources


def _triples_file(directory):
    for name in ("kg.json", "dbpedia_subkg.json"):
        if os.path.exists(os.path.join(directory, name)):
            return name
    raise KgError(f"{directory}: neither kg.json nor dbpedia_subkg.json is there")


def load_kg(directory):
    """Reads a UniCRS/ECR KG folder, validating every id; raises KgError naming file and field."""
    path = lambda name: os.path.join(directory, name)

    entity2id = _read_json(path("entity2id.json"))
    if not isinstance(entity2id, dict) or not entity2id:
        raise KgError(f"{path('entity2id.json')}: expected a non-empty object of name -> id")
    max_id = -1
    for k, v in entity2id.items():
        if not _is_int(v) or v < 0 or v >= 2**31 - 2:
            raise KgError(f"{path('entity2id.json')}: entity {k!r}: id must be an integer in [0, 2^31-2), got {v!r}")
        max_id = max(max_id, v)
    n = max_id + 2
    keys = [""] * n
    for k, v in entity2id.items():
        if keys[v]:
            raise KgError(f"{path('entity2id.json')}: id {v} is given to both {keys[v]!r} and {k!r}")
        if not k:
            raise KgError(f"{path('entity2id.json')}: id {v} has an empty name")
        keys[v] = k

    relation2id = _read_json(path("relation2id.json"))
    if not isinstance(relation2id, dict) or not relation2id:
        raise KgError(f"{path('relation2id.json')}: expected a non-empty object of name -> id")
    relations = [None] * len(relation2id)
    for k, v in relation2id.items():
        if not _is_int(v) or not 0 <= v < len(relation2id) or relations[v] is not None:
            raise KgError(f"{path('relation2id.json')}: relation {k!r}: ids must be 0..{len(relation2id) - 1}, "
                          f"each once; got {v!r}")
        relations[v] = k

    source = _triples_file(directory)
    kg = _read_json(path(source))
    if not isinstance(kg, dict):
        raise KgError(f"{path(source)}: expected an object of head id -> [[relation, tail], ...]")
    triples = []
    for head, pairs in kg.items():
        if not re.fullmatch(r"0|[1-9][0-9]{0,9}", head) or int(head) >= n - 1:
            raise KgError(f"{path(source)}: head {head!r}: not an entity id in [0, {n - 1})")
        if not isinstance(pairs, list):
            raise KgError(f"{path(source)}: head {head}: expected a list of [relation, tail] pairs")
        for k, pair in enumerate(pairs):
            if not (isinstance(pair, list) and len(pair) == 2 and all(_is_int(x) for x in pair)):
                raise KgError(f"{path(source)}: head {head}, pair {k}: expected [relation id, tail id]")
            rel, tail = pair
            if not 0 <= rel < len(relations):
                raise KgError(f"{path(source)}: head {head}, pair {k}: relation {rel} not in [0, {len(relations)})")
            if not 0 <= tail < n - 1:
                raise KgError(f"{path(source)}: head {head}, pair {k}: tail {tail} not in [0, {n - 1})")
            triples.append((int(head), rel, tail))
    triples = np.array(triples, dtype=np.int64).reshape(-1, 3)

    item_ids = _read_json(path("item_ids.json"))
    if not isinstance(item_ids, list):
        raise KgError(f"{path('item_ids.json')}: expected a list of entity ids")
    seen = set()
    for k, v in enumerate(item_ids):
        if not _is_int(v) or not 0 <= v < n - 1:
            raise KgError(f"{path('item_ids.json')}: item {k}: {v!r} is not an entity id in [0, {n - 1})")
        if v in seen:
            raise KgError(f"{path('item_ids.json')}: item {k}: id {v} is listed twice")
        seen.add(v)
    items = np.array(item_ids, dtype=np.int32)

    types = np.zeros(n, dtype=np.uint8)
    if os.path.exists(path("entity2type.json")):
        entity2type = _read_json(path("entity2type.json"))
        if not isinstance(entity2type, dict):
            raise KgError(f"{path('entity2type.json')}: expected an object of name -> type")
        for k, v in entity2type.items():
            if k in entity2id:
                types[entity2id[k]] = ENTITY_TYPES.get(v, 0) if isinstance(v, str) else 0
    for i in items:
        if types[i] == ENTITY_TYPES["other"]:
            types[i] = ENTITY_TYPES["movie"]

    return KnowledgeGraph(keys, types, relations, items, triples, source)


def _strings(prefix, values):
    """A list of strings as `prefix/offsets` (i64, len+1) and `prefix/bytes` (u8, UTF-8)."""
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return [(f"{prefix}/offsets", offsets), (f"{prefix}/bytes", data)]


def kg_parts(kg):
    """(metadata for metadata["kg"], [(tensor name, numpy array)]) as docs/format.md describes."""
    indptr, sources = kg.edges()
    meta = {
        "num_entities": kg.num_entities,
        "pad_entity": kg.pad_entity,
        "relations": kg.relations,
        "num_items": int(len(kg.items)),
        "num_edges": int(len(sources)),
        "source": kg.source,
    }
    tensors = _strings("kg/entity_keys", kg.keys)
    if kg.names != kg.keys:  # absent: the keys are the names (plain, non-URI keys)
        tensors += _strings("kg/entity_names", kg.names)
    tensors += [("kg/entity_types", kg.types), ("kg/items", kg.items),
                ("kg/edges/indptr", indptr), ("kg/edges/sources", sources)]
    return meta, tensors


# --- co-occurrence (docs/math.md section 9, ECR's co_appear.py) --------------------------------------

def read_dialogs(path):
    """ReDial dialogs, one JSON object a line."""
    dialogs = []
    try:
        with open(path, "r", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as e:
                    raise KgError(f"{path}:{number}: not valid JSON: {e}") from None
                if not isinstance(d, dict) or not isinstance(d.get("messages"), list):
                    raise KgError(f"{path}:{number}: expected a ReDial dialog with a 'messages' list")
                dialogs.append(d)
    except OSError as e:
        raise KgError(f"{path}: cannot read: {e.strerror}") from None
    return dialogs


def _message_emotions(message, where):
    """The message's {label: prob}, or None when it has none ("emotions", or ECR's "emotion")."""
    emotions = message.get("emotions", message.get("emotion"))
    if emotions is None:
        return None
    if not isinstance(emotions, dict):
        raise KgError(f"{where}: emotions must be an object of label -> probability")
    for label, p in emotions.items():
        if label not in EMOTIONS:
            raise KgError(f"{where}: unknown emotion label {label!r} (expected one of {', '.join(EMOTIONS)})")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise KgError(f"{where}: emotion {label!r}: probability must be a number in [0, 1], got {p!r}")
    return emotions


def _message_labels(emotions, is_user, has_entities):
    """Labels over the threshold, strongest first (ties by label id); a user message that
    mentions entities but has none over it keeps its strongest (section 9's fallback)."""
    ranked = sorted(emotions.items(), key=lambda kv: (-kv[1], EMOTIONS.index(kv[0])))
    labels = [label for label, p in ranked if p > EMOTION_THRESHOLD]
    if not labels and is_user and has_entities and ranked:
        labels = [ranked[0][0]]
    return labels


def dialog_entities(dialog, kg, uniform_emotions=False, where="dialog"):
    """The dialog's entities in mention order with their emotion labels, as ECR's co_appear.py
    builds them: consecutive messages of one sender form a turn (its movies, then its other
    entities; labels concatenated over its messages); a user turn's entities take its labels, a
    system turn's the next turn's. With uniform_emotions every entity gets the one label
    "neutral", so every ordered pair counts (plain co-occurrence)."""
    user = dialog.get("initiatorWorkerId")
    messages = dialog["messages"]
    turns = []  # (is_user, entity ids, labels)
    i = 0
    while i < len(messages):
        sender = messages[i].get("senderWorkerId")
        movies, others, labels = [], [], []
        j = i
        while j < len(messages) and messages[j].get("senderWorkerId") == sender:
            m = messages[j]
            ids = lambda names: [kg.entity_id(x) for x in (names or []) if kg.entity_id(x) is not None]
            message_movies = ids(m.get("item", m.get("movie")))
            message_others = ids(m.get("entity"))
            movies += message_movies
            others += message_others
            emotions = _message_emotions(m, f"{where}, message {j}")
            if emotions is not None:
                labels += _message_labels(emotions, sender == user, bool(message_movies or message_others))
            j += 1
        turns.append((sender == user, movies + others, labels))
        i = j
    out = []
    for k, (is_user, ids, labels) in enumerate(turns):
        if uniform_emotions:
            labels = ["neutral"]
        elif not is_user:
            labels = turns[k + 1][2] if k + 1 < len(turns) else []
        out += [(e, labels) for e in ids]
    return out


def cooccurrence(kg, dialogs, uniform_emotions=False):
    """Row-normalised counts of (e_i -> e_j), i < j in a dialog, whose first 3 labels share one;
    returns CSR (indptr i64 [N+1], indices i32 [nnz] ascending per row, values f32 [nnz])."""
    counts = {}
    for number, dialog in enumerate(dialogs):
        entities = dialog_entities(dialog, kg, uniform_emotions, f"dialog {number}")
        for a in range(len(entities)):
            ea, la = entities[a][0], entities[a][1][:EMOTIONS_PER_ENTITY]
            if not la:
                continue
            for b in range(a + 1, len(entities)):
                eb, lb = entities[b][0], entities[b][1][:EMOTIONS_PER_ENTITY]
                if any(x in lb for x in la):
                    counts[(ea, eb)] = counts.get((ea, eb), 0) + 1
    n = kg.num_entities
    pairs = sorted(counts.items())
    rows = np.array([p[0][0] for p in pairs], dtype=np.int64)
    indices = np.array([p[0][1] for p in pairs], dtype=np.int32)
    c = np.array([p[1] for p in pairs], dtype=np.float64)
    row_sums = np.bincount(rows, weights=c, minlength=n)
    values = (c / row_sums[rows]).astype(np.float32) if len(pairs) else np.zeros(0, dtype=np.float32)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, indices, values


def cooccurrence_parts(kg, dialogs, uniform_emotions=False, source=""):
    indptr, indices, values = cooccurrence(kg, dialogs, uniform_emotions)
    meta = {"num_entities": kg.num_entities, "nnz": int(len(values)), "dialogs": len(dialogs),
            "emotions": "uniform" if uniform_emotions else "annotated", "source": source}
    return meta, [("cooccurrence/indptr", indptr), ("cooccurrence/indices", indices),
                  ("cooccurrence/values", values)]


def has_emotions(dialogs):
    return any("emotions" in m or "emotion" in m for d in dialogs for m in d["messages"])


def add_to_bundle(meta, tensors, kg_dir, dialogs_path=None, uniform_emotions=False, log=sys.stderr):
    """What the converter calls: sets meta["kg"] (and meta["cooccurrence"]) and appends
    (name, array) pairs to `tensors`."""
    kg = load_kg(kg_dir)
    kg_meta, kg_tensors = kg_parts(kg)
    meta["kg"] = kg_meta
    tensors += kg_tensors
    if dialogs_path:
        dialogs = read_dialogs(dialogs_path)
        if not uniform_emotions and not has_emotions(dialogs):
            print(f"warning: {dialogs_path} carries no emotion annotations: every entity has no label, "
                  "so the co-occurrence matrix is empty (use --uniform-emotions for plain co-occurrence)",
                  file=log)
        co_meta, co_tensors = cooccurrence_parts(kg, dialogs, uniform_emotions, os.path.basename(dialogs_path))
        meta["cooccurrence"] = co_meta
        tensors += co_tensors
    return kg


def main(argv=None):
    parser = argparse.ArgumentParser(description="UniCRS/ECR knowledge graph (+ co-occurrence) -> ecr bundle")
    parser.add_argument("--kg", required=True, metavar="DIR", help="folder with entity2id.json, kg.json, ...")
    parser.add_argument("--dialogs", metavar="FILE", help="ReDial dialogs (JSON lines) for the co-occurrence matrix")
    parser.add_argument("--uniform-emotions", action="store_true",
                        help="give every entity the same emotion (plain co-occurrence; for data without labels)")
    parser.add_argument("--codec", choices=["raw", "zstd"], default="raw")
    parser.add_argument("--out", required=True, help="bundle file to write")
    args = parser.parse_args(argv)
    if args.uniform_emotions and not args.dialogs:
        parser.error("--uniform-emotions needs --dialogs")
    meta, tensors = {"ecr_bundle": 1}, []
    try:
        kg = add_to_bundle(meta, tensors, args.kg, args.dialogs, args.uniform_emotions)
        writer = BundleWriter(meta)
        for name, array in tensors:
            writer.add(name, array, codec=args.codec)
        writer.write(args.out)
    except KgError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.out}: {kg.num_entities} entities (pad {kg.pad_entity}), {len(kg.relations)} relations, "
          f"{len(kg.items)} items, {meta['kg']['num_edges']} edges"
          + (f", co-occurrence nnz {meta['cooccurrence']['nnz']}" if "cooccurrence" in meta else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
