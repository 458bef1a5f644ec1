"""The dialogs of tests/test_recommender.cpp's parity cases, in the README's JSON form."""

import ecr


def entity(graph, name):
    found = graph.entity_id(name)
    assert found is not None, f"the ReDial KG has no entity {name}"
    return found


def labelled_dialog(graph):
    """Host entity ids and host emotions on every user turn."""
    return {"turns": [
        {"role": "user", "text": "Hi! I love horror movies, anything like The Shining?",
         "entities": [entity(graph, "horror"), entity(graph, "The Shining (1980)")],
         "emotions": {"like": 0.7, "curious": 0.2}},
        {"role": "system", "text": "Have you seen What Lies Beneath? It stars Harrison Ford.",
         "entities": [entity(graph, "What Lies Beneath (2000)"), entity(graph, "Harrison Ford")]},
        {"role": "user", "text": "Yes, it was too slow for me. Anything else?",
         "emotions": {"negative": 0.6, "curious": 0.3, "neutral": 0.05}},
    ]}


def plain_dialog():
    """The same text without ids or emotions: the linker and the classifier fill them in."""
    return {"turns": [
        {"role": "user", "text": "Hi! I love horror movies, anything like The Shining (1980)?"},
        {"role": "system", "text": "Have you seen @83192 ? It stars Harrison Ford."},
        {"role": "user", "text": "Yes, it was too slow for me. Anything else?"},
    ], "movieMentions": {"83192": "What Lies Beneath (2000)"}}


def no_entity_dialog():
    """The system speaks first; no entities anywhere."""
    return {"turns": [
        {"role": "system", "text": "Hello there, what are you in the mood for tonight?"},
        {"role": "user", "text": "Not sure, something fun to watch with friends.", "emotions": {"happy": 0.8}},
    ]}


def long_dialog(graph):
    """Longer than both context limits: 40 turns."""
    items = graph.items
    turns = []
    for i in range(40):
        role = "system" if i % 2 else "user"
        turn = {"role": role, "text": f"Turn number {i} talks about movies, actors and the weekend plans.",
                "entities": [int(items[i])] if i % 5 == 0 else []}
        if role == "user":
            turn["emotions"] = {"neutral": 0.5, "like": 0.3}
        turns.append(turn)
    return {"turns": turns}


def reference_case(name, rec, use_global):
    """The case tools/reference/recommender.py computes, from what the models saw."""
    ids, probs = [], []
    for e in rec.prompt_entities:
        padding = 3 - len(e.emotions)
        ids.append([ecr.EMOTION_LABELS.index(x.label) for x in e.emotions] + [9] * padding)
        probs.append([x.prob for x in e.emotions] + [0.0] * padding)
    return {"name": name, "context_ids": rec.context_ids.tolist(), "prompt_ids": rec.prompt_ids.tolist(),
            "entities": [e.id for e in rec.prompt_entities], "global": use_global,
            "emotion_ids": ids if rec.emotion_fusion else None,
            "emotion_probs": probs if rec.emotion_fusion else None}
