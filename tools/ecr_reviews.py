"""The review-entity store of docs/math.md section 8: for each movie, the entities its reviews
mention and how often, the source of the generator prompt's "Related Entities".

    python3 -m tools.ecr_reviews --reviews FILE [--kg DIR] --out reviews.ecr

FILE is either
- a list of reviews shaped like ECR's movie_reviews_processed_*.json (and
  ../shared/data/reviews/movie_reviews.json): {"movie_name": "Platoon (1986)", "e_review":
  [DBpedia URIs or entity names], ...}. An entity counts once per review that mentions it, so a
  count is the number of the movie's reviews that name the entity, as ECR's
  imdb_review_entity_filter.py counts before it filters;
- or ECR's finished mv2e_review.json, {movie key: [[entity, count], ...]}, taken as it is.

Movies are keyed as ECR looks them up: the display name up to its first "(" ("Platoon (1986)"
-> "Platoon"); reviews of movies that share a key are merged, as in ECR. With a KG, a key that
names exactly one item gets that item's id, and an entity whose URI or name is a KG entity gets
its id; display names are kept for every entity either way (review entities are often not in
the KG). docs/format.md ("Review entities") describes the tensors; the C++ side is
ecr::ReviewStore. tools.convert --kg DIR --reviews FILE and tools.make_random_bundle
--reviews FILE call add_to_bundle().
"""

import argparse
import json
import os
import sys
from collections import Counter, defaultdict

import numpy as np

from . import ecr_kg
from .ecr_bundle import BundleWriter


# What the keys are trimmed of (ecr::review_movie_key trims the same).
ASCII_SPACE = " \t\n\r\f\v"


class ReviewError(Exception):
    """A review file that is not what the converter expects (the message names it)."""


def movie_key(name):
    """ECR's lookup key for a movie: the display name up to its first "(", stripped; the whole
    name when that leaves nothing ("(500) Days of Summer")."""
    name = ecr_kg.display_name(name)
    key = name.split("(")[0].strip(ASCII_SPACE)
    return key or name.strip(ASCII_SPACE)


def _read(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise ReviewError(f"{path}: cannot read: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReviewError(f"{path}: not valid JSON: {e}") from None


def _count_reviews(path, reviews):
    """{movie key: Counter(entity -> reviews naming it)} from a list of reviews."""
    counts = defaultdict(Counter)
    for k, review in enumerate(reviews):
        if not isinstance(review, dict):
            raise ReviewError(f"{path}: review {k}: expected an object")
        name, entities = review.get("movie_name"), review.get("e_review", [])
        if not isinstance(name, str) or not name.strip():
            raise ReviewError(f"{path}: review {k}: 'movie_name' must be a non-empty string")
        if not isinstance(entities, list) or not all(isinstance(e, str) and e for e in entities):
            raise ReviewError(f"{path}: review {k} ({name!r}): 'e_review' must be a list of non-empty strings")
        if entities:  # a movie without entities gets no row
            counts[movie_key(name)].update(set(entities))
    return counts


def _read_counts(path, table):
    """{movie key: Counter} from ECR's mv2e_review.json."""
    counts = defaultdict(Counter)
    for movie, pairs in table.items():
        if not isinstance(pairs, list):
            raise ReviewError(f"{path}: movie {movie!r}: expected a list of [entity, count] pairs")
        for k, pair in enumerate(pairs):
            ok = isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and pair[0]
            ok = ok and isinstance(pair[1], int) and not isinstance(pair[1], bool) and 0 < pair[1] < 2**31
            if not ok:
                raise ReviewError(f"{path}: movie {movie!r}, pair {k}: expected [entity, count >= 1]")
            counts[movie_key(movie)][pair[0]] += pair[1]
    return counts


def read_reviews(path):
    """(counts {movie key: Counter(entity -> count)}, number of reviews or None for mv2e_review)."""
    data = _read(path)
    if isinstance(data, list):
        return _count_reviews(path, data), len(data)
    if isinstance(data, dict):
        return _read_counts(path, data), None
    raise ReviewError(f"{path}: expected a list of reviews or an object of movie -> [[entity, count], ...]")


def _item_ids_by_key(kg):
    """movie key -> item id, for keys that name exactly one item."""
    ids = defaultdict(list)
    for i in kg.items:
        ids[movie_key(kg.keys[int(i)])].append(int(i))
    return {k: v[0] for k, v in ids.items() if len(v) == 1}


def _entity_id(kg, entity):
    """The KG id of an entity named by URI or name (a URI also by its display name), else None."""
    if kg is None:
        return None
    found = kg.entity_id(entity)
    return found if found is not None else kg.entity_id(ecr_kg.display_name(entity))


def review_parts(counts, kg=None, reviews=None, source=""):
    """(metadata for metadata["review_entities"], [(tensor name, numpy array)]), docs/format.md."""
    if any(c < 1 or c >= 2**31 for per_movie in counts.values() for c in per_movie.values()):
        raise ReviewError(f"{source}: counts must be in [1, 2^31)")
    entity_keys = sorted({e for per_movie in counts.values() for e in per_movie},
                         key=lambda e: (ecr_kg.display_name(e), e))
    entity_index = {e: k for k, e in enumerate(entity_keys)}
    names = [ecr_kg.display_name(e) for e in entity_keys]
    entity_ids = [_entity_id(kg, e) for e in entity_keys]
    items = _item_ids_by_key(kg) if kg else {}

    movies = sorted(counts)
    indptr, entries, entry_counts = [0], [], []
    for m in movies:
        row = sorted(counts[m].items(), key=lambda p: (-p[1], ecr_kg.display_name(p[0]), p[0]))
        entries += [entity_index[e] for e, _ in row]
        entry_counts += [c for _, c in row]
        indptr.append(len(entries))

    meta = {"movies": len(movies), "entities": len(entity_keys), "entries": len(entries), "source": source}
    if reviews is not None:
        meta["reviews"] = reviews
    i32 = lambda v: np.array(v, dtype=np.int32)
    tensors = ecr_kg._strings("review_entities/movie_keys", movies)
    tensors += [("review_entities/movie_kg_ids", i32([items.get(m, -1) for m in movies]))]
    tensors += ecr_kg._strings("review_entities/entity_names", names)
    tensors += [("review_entities/entity_kg_ids", i32([-1 if i is None else i for i in entity_ids])),
                ("review_entities/indptr", np.array(indptr, dtype=np.int64)),
                ("review_entities/entries", i32(entries)),
                ("review_entities/counts", i32(entry_counts))]
    return meta, tensors


def add_to_bundle(meta, tensors, reviews_path, kg=None):
    """What the bundle builders call: sets meta["review_entities"] and appends (name, array)
    pairs to `tensors`. `kg` is an ecr_kg.KnowledgeGraph, a KG folder, or None."""
    if isinstance(kg, (str, os.PathLike)):
        kg = ecr_kg.load_kg(kg)
    counts, reviews = read_reviews(reviews_path)
    part_meta, part_tensors = review_parts(counts, kg, reviews, os.path.basename(reviews_path))
    meta["review_entities"] = part_meta
    tensors += part_tensors
    return part_meta


def main(argv=None):
    parser = argparse.ArgumentParser(description="movie reviews -> the review-entity store of an ecr bundle")
    parser.add_argument("--reviews", required=True, metavar="FILE", help="reviews (list) or mv2e_review.json")
    parser.add_argument("--kg", metavar="DIR", help="map movies and entities to the ids of this KG folder")
    parser.add_argument("--out", required=True, help="bundle file to write")
    args = parser.parse_args(argv)
    meta, tensors = {"ecr_bundle": 1}, []
    try:
        part = add_to_bundle(meta, tensors, args.reviews, args.kg)
        writer = BundleWriter(meta)
        for name, array in tensors:
            writer.add(name, array)
        writer.write(args.out)
    except (ReviewError, ecr_kg.KgError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    mapped = sum(1 for n, a in tensors if n == "review_entities/movie_kg_ids" for v in a if v >= 0)
    print(f"{args.out}: {part['movies']} movies ({mapped} mapped to KG items), {part['entities']} entities, "
          f"{part['entries']} entries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
