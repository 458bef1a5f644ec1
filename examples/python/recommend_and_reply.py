#!/usr/bin/env python3
"""One conversational turn from Python: rank movies for a dialog, show what the model made of it
(entities and emotions per turn), then stream the reply as it decodes.

    python3 examples/python/recommend_and_reply.py [--bundle B.ecr] [--top-k 5] ["user text" ...]

Without --bundle the shipped model is used (ecr.default_bundle_path()); the texts alternate
user, system, user, ... (default: a horror fan's request).
"""

import argparse
import sys

import ecr


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", help="a bundle (default: the shipped model)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("texts", nargs="*", default=["Hi! I love horror movies like The Shining, anything similar?"])
    a = p.parse_args(argv)

    try:
        recommender = ecr.Recommender.load(a.bundle)  # once; share it across threads
    except ecr.Error as e:
        sys.exit(f"cannot load the model: {e}")
    responder = ecr.Responder.load(recommender=recommender, top_k=a.top_k)
    if recommender.bundle.untrained:
        print("note: random, untrained weights: the items and the reply are noise\n")

    dialog = ecr.Dialog()
    for i, text in enumerate(a.texts):
        dialog.add_turn("user" if i % 2 == 0 else "system", text)

    rec = recommender.recommend(dialog, top_k=a.top_k)
    for rank, item in enumerate(rec.items, 1):
        print(f"{rank:>3}. {item.name}  ({item.score:.3f})")
    for turn in rec.turns:
        emotions = ", ".join(f"{e.label} {e.prob:.2f}" for e in turn.selected) or "-"
        entities = "; ".join(e.name for e in turn.entities) or "-"
        print(f"  {turn.role:<6} emotions: {emotions}   entities: {entities}")

    print("\nreply: ", end="", flush=True)
    stream = responder.stream(dialog, rec)
    for piece in stream:
        print(piece, end="", flush=True)
    print()
    for k in stream.response.knowledge:
        print(f"  knowledge: {k.text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
