"""ecr.Recommender through Python: tests/test_recommender.cpp's parity cases give the C++ library's
results bit for bit (the `ecr` tool on the same bundle and dialog) and the torch composition's
within its tolerance; results are dataclasses; batches and four Python threads give the serial
results, and run faster than one where the machine has a core to spare (the GIL is released)."""

import dataclasses
import hashlib
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import ecr
from cases import labelled_dialog, long_dialog, no_entity_dialog, plain_dialog, reference_case
from conftest import cli_json, run_tool


def parity_cases(tiny, graph):
    """(name, dialog, load options, `ecr recommend` flags or None when the tool has no such option)."""
    return [
        ("entities_emotions_global", labelled_dialog(graph), {}, []),
        # Every user turn carries host emotions, so the classifier has nothing to do here.
        ("entities_emotions_local", labelled_dialog(graph), {"emotion_classifier": False, "global_entities": False},
         ["--no-global-entities"]),
        ("linked_classifier_emotions", plain_dialog(), {}, []),
        ("linked_no_emotions", plain_dialog(), {"emotion_classifier": False}, None),
        ("no_entities", no_entity_dialog(), {}, []),
        ("long_context", long_dialog(graph), {}, []),
    ]


def emotions_as_json(emotions):
    return [{"label": e.label, "prob": e.prob} for e in emotions]


def reason_as_json(r):
    out = {"kind": r.kind, "source": r.source, "source_name": r.source_name, "source_liked": r.source_liked,
           "text": r.text}
    if r.kind == "cooccurrence":
        out["weight"] = r.weight
    else:
        out.update({"relation": r.relation, "via": r.via, "via_name": r.via_name})
    return out


def item_as_json(item):
    return {"id": item.id, "name": item.name, "score": item.score, "feedback": item.feedback,
            "reasons": [reason_as_json(r) for r in item.reasons], "explanation": item.explanation}


def feedback_as_json(feedback):
    return [{"id": f.id, "name": f.name, "polarity": f.polarity, "cue": f.cue, "turn": f.turn,
             "referred_back": f.referred_back} for f in feedback]


def as_cli_json(rec):
    """A Recommendation in `ecr recommend --json`'s form (src/cli/recommend.cpp)."""
    turns = []
    for t in rec.turns:
        turn = {"role": t.role, "text": t.text,
                "entities": [{"id": e.id, "name": e.name, "begin": e.begin, "end": e.end, "source": e.source}
                             for e in t.entities]}
        if t.emotions is not None:
            turn["emotions"] = t.emotions
            turn["emotions_from"] = t.emotions_from
            turn["selected"] = emotions_as_json(t.selected)
        turns.append(turn)
    out = {"items": [item_as_json(i) for i in rec.items], "turns": turns,
           "context_entities": [{"id": i.id, "name": i.name, "score": i.score} for i in rec.context_entities],
           "feedback": feedback_as_json(rec.feedback),
           "prompt_entities": [{"id": e.id, "emotions": emotions_as_json(e.emotions)} for e in rec.prompt_entities],
           "emotion_fusion": rec.emotion_fusion, "user_emotions": emotions_as_json(rec.user_emotions),
           "context_ids": rec.context_ids.tolist(), "prompt_ids": rec.prompt_ids.tolist()}
    if rec.all_scores is not None:
        out["all_scores"] = rec.all_scores.tolist()
    return out


def top_items(scores, items, k):
    order = sorted((int(i) for i in items), key=lambda i: (-scores[i], i))
    return order[:k]


def test_parity_cases_match_the_cpp_library_and_the_torch_composition(tiny, tmp_path):
    graph = ecr.Recommender.load(tiny.bundle).graph
    assert graph.num_entities == 24631
    loaded = {}
    results = []
    for name, dialog, options, flags in parity_cases(tiny, graph):
        # The model's own ranking, as the torch composition ranks: nothing excluded, no feedback.
        options = {**options, "exclude_mentioned": False, "feedback_strength": 0.0}
        flags = None if flags is None else [*flags, "--keep-mentioned", "--feedback-strength", 0]
        key = tuple(sorted(options.items()))
        if key not in loaded:
            loaded[key] = ecr.Recommender.load(tiny.bundle, **options)
        rec = loaded[key].recommend(dialog, top_k=50, all_scores=True)
        results.append((name, rec, options.get("global_entities", True)))
        if flags is None:
            continue
        # The C++ library through the `ecr` tool: the same bits, every field.
        want = cli_json("recommend", "--bundle", tiny.bundle, "--top-k", 50, "--all-scores", *flags, dialog=dialog)
        want.pop("untrained")
        got = as_cli_json(rec)
        assert got.keys() == want.keys(), name
        for field in want:
            assert got[field] == want[field], f"{name}: {field} differs from `ecr recommend`"

    # What each case exercises (as the C++ test checks it).
    by_name = {name: rec for name, rec, _ in results}
    assert by_name["entities_emotions_global"].emotion_fusion
    assert len(by_name["entities_emotions_global"].prompt_entities) == 4
    assert by_name["linked_classifier_emotions"].turns[0].emotions_from == "classifier"
    assert not by_name["linked_no_emotions"].emotion_fusion
    assert by_name["no_entities"].prompt_entities == []
    assert len(by_name["long_context"].context_ids) == 200
    assert len(by_name["long_context"].prompt_ids) == 200

    # The torch composition (tools/reference/recommender.py) on the inputs the engine used, as the C++ test.
    cases = {"cases": [reference_case(name, rec, use_global) for name, rec, use_global in results]}
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    run_tool("reference.recommender", "--checkpoints", tiny.checkpoints, "--kg-dir", tiny.kg_dir, "--bundle", tiny.bundle,
             "--cases", tmp_path / "cases.json", "--out-dir", tmp_path / "scores")
    for name, rec, _ in results:
        want = np.load(tmp_path / "scores" / f"{name}.npy")
        assert want.shape == rec.all_scores.shape == (graph.num_entities,)
        err = float(np.max(np.abs(rec.all_scores - want)))
        assert err <= 1e-4, f"{name}: max abs error {err}"
        assert [i.id for i in rec.items] == top_items(want, graph.items, 50), name


def test_results_are_dataclasses_naming_items_entities_and_emotions(tiny_recommender):
    graph = tiny_recommender.graph
    rec = tiny_recommender.recommend(labelled_dialog(graph), top_k=7)
    assert isinstance(rec, ecr.Recommendation)
    assert len(rec.items) == 7 and all(isinstance(i, ecr.Item) for i in rec.items)
    assert [i.score for i in rec.items] == sorted((i.score for i in rec.items), reverse=True)
    for item in rec.items:
        assert graph.is_item(item.id)
        assert item.name == graph.entity_name(item.id)
        assert isinstance(item.score, float) and math.isfinite(item.score)
    assert rec.all_scores is None
    assert rec.context_ids.dtype == np.int32 and rec.prompt_ids.dtype == np.int32
    first = rec.turns[0]
    assert isinstance(first, ecr.TurnAnalysis) and first.role == "user"
    assert [e.source for e in first.entities] == ["host", "host"]
    assert first.emotions_from == "host" and first.emotions["like"] == pytest.approx(0.7)
    assert set(first.emotions) == set(ecr.EMOTION_LABELS)
    assert rec.turns[1].emotions is None and rec.turns[1].emotions_from is None
    assert [e.label for e in rec.user_emotions] == ["negative", "curious"]  # neutral 0.05 is under 0.1
    assert rec.user_emotions[0] == ecr.Emotion("negative", pytest.approx(0.6))
    assert len(rec.context_entities) == 4
    assert "Item(id=" in repr(rec.items[0])
    as_dict = dataclasses.asdict(rec)
    assert as_dict["items"][0] == {"id": rec.items[0].id, "name": rec.items[0].name, "score": rec.items[0].score,
                                   "feedback": rec.items[0].feedback,
                                   "reasons": tuple(dataclasses.asdict(r) for r in rec.items[0].reasons),
                                   "explanation": rec.items[0].explanation}

    # The linker's entities carry their offsets into the turn's text.
    linked = tiny_recommender.recommend(plain_dialog())
    mention = linked.turns[1].entities[0]
    assert (mention.source, mention.name) == ("mention", "What Lies Beneath (2000)")
    assert linked.turns[1].text[mention.begin:mention.end] == "@83192"

    # The dialog may be an ecr.Dialog, a dict or a list of turns: the same request.
    as_dialog = tiny_recommender.recommend(ecr.Dialog.from_json(labelled_dialog(graph)), top_k=7)
    as_list = tiny_recommender.recommend(labelled_dialog(graph)["turns"], top_k=7)
    assert as_dialog.items == rec.items == as_list.items


def test_exclude_mentioned_and_the_default_options(tiny):
    graph = ecr.Recommender.load(tiny.bundle).graph
    dialog = labelled_dialog(graph)
    everything = ecr.Recommender.load(tiny.bundle, exclude_mentioned=False).recommend(dialog, top_k=len(graph.items) + 10)
    rest = ecr.Recommender.load(tiny.bundle).recommend(dialog, top_k=len(graph.items) + 10)  # the default excludes
    assert len(everything.items) == len(graph.items)
    assert len(rest.items) == len(graph.items) - 2
    mentioned = {graph.entity_id("The Shining (1980)"), graph.entity_id("What Lies Beneath (2000)")}
    assert not mentioned & {i.id for i in rest.items}
    unlinked = ecr.Recommender.load(tiny.bundle, link_text=False).recommend(plain_dialog())
    assert unlinked.prompt_entities == []


def test_a_batch_gives_the_single_call_results(tiny_recommender):
    graph = tiny_recommender.graph
    dialogs = [labelled_dialog(graph), plain_dialog(), no_entity_dialog(), long_dialog(graph)]
    single = [tiny_recommender.recommend(d, top_k=20, all_scores=True) for d in dialogs]
    batch = tiny_recommender.recommend_batch(dialogs, top_k=20, all_scores=True)
    assert len(batch) == len(dialogs)
    for b, s in zip(batch, single):
        assert np.max(np.abs(b.all_scores - s.all_scores)) < 1e-5
        assert [i.id for i in b.items] == [i.id for i in s.items]
        assert np.array_equal(b.context_ids, s.context_ids)
    assert tiny_recommender.recommend_batch([]) == []


def test_four_python_threads_on_one_model_match_serial(tiny):
    recommender = ecr.Recommender.load(tiny.bundle)
    graph = recommender.graph
    dialogs = [labelled_dialog(graph), plain_dialog(), no_entity_dialog(), long_dialog(graph)] * 4
    recommend = lambda d: recommender.recommend(d, top_k=20, all_scores=True)  # noqa: E731
    serial = [recommend(d) for d in dialogs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(recommend, dialogs))
    for got, want in zip(threaded, serial):
        assert np.array_equal(got.all_scores, want.all_scores)  # the same bits
        assert got.items == want.items


def speedup(fn, args, pool):
    """Serial time over the time of the same calls on four threads."""
    t0 = time.perf_counter()
    for a in args:
        fn(a)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    list(pool.map(fn, args))
    return serial / (time.perf_counter() - t0)


def test_four_python_threads_run_faster_than_one(tiny):
    recommender = ecr.Recommender.load(tiny.bundle, threads=1)  # one core per request: threads are the parallelism
    dialogs = [long_dialog(recommender.graph)] * 32
    recommend = lambda d: recommender.recommend(d, top_k=10)  # noqa: E731
    # What this machine offers four threads now: hashing, which also runs without the GIL. The
    # two are measured in turns, best of five each, so that both see the same load.
    block = os.urandom(4 << 20)
    machine = engine = 0.0
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(recommend, dialogs[:4]))  # threads started and the model warm
        for _ in range(5):
            machine = max(machine, speedup(lambda _: hashlib.sha256(block).digest(), range(32), pool))
            engine = max(engine, speedup(recommend, dialogs, pool))
    print(f"four threads over one: hashing {machine:.2f}x, recommend {engine:.2f}x "
          f"({len(os.sched_getaffinity(0))} cores)")
    if machine < 1.3:
        pytest.skip(f"no spare core for a second thread now (hashing runs {machine:.2f}x faster on four threads)")
    assert engine > 1 + (machine - 1) / 3, "recommend gains less than a third of what the machine offers threads"


def test_bad_requests_raise_the_matching_exception_classes(tiny, tiny_recommender, tmp_path):
    graph = tiny_recommender.graph
    with pytest.raises(ecr.InputError, match="no turns"):
        tiny_recommender.recommend({"turns": []})
    unknown = labelled_dialog(graph)
    unknown["turns"][1]["entities"].append(graph.num_entities + 5)
    with pytest.raises(ecr.InputError, match=f"turn 1.*{graph.num_entities + 5}"):
        tiny_recommender.recommend(unknown)
    with pytest.raises(ValueError):  # InputError is a ValueError too
        tiny_recommender.recommend(labelled_dialog(graph), top_k=0)
    with pytest.raises(ecr.InputError, match="role"):
        tiny_recommender.recommend([{"role": "narrator", "text": "hi"}])
    with pytest.raises(ecr.InputError, match="emotion"):
        tiny_recommender.recommend([{"role": "user", "text": "hi", "emotions": {"glee": 0.5}}])
    with pytest.raises(ecr.InputError, match="UTF-8"):
        tiny_recommender.recommend([{"role": "user", "text": "caf\udce9"}])
    with pytest.raises(TypeError, match="Dialog.parse"):
        tiny_recommender.recommend("I loved The Matrix")

    with pytest.raises(ecr.IoError) as missing:
        ecr.Recommender.load(tmp_path / "absent.ecr")
    assert isinstance(missing.value, OSError) and "absent.ecr" in str(missing.value)
    truncated = tmp_path / "truncated.ecr"
    truncated.write_bytes(tiny.bundle.read_bytes()[:4096])
    with pytest.raises(ecr.FormatError, match="truncated.ecr"):
        ecr.Recommender.load(truncated)
    with pytest.raises(ecr.ConfigError, match="device 'tpu'"):
        ecr.Recommender.load(tiny.bundle, device="tpu")
    if not ecr.cuda_available():
        # A CPU-only build, or no GPU: the engine says why instead of crashing.
        with pytest.raises(ecr.DeviceError, match="cuda:0"):
            ecr.Recommender.load(tiny.bundle, device="cuda")
    with pytest.raises(ecr.ConfigError):
        ecr.Recommender.load(tiny.bundle, threads=-1)
    for cls in (ecr.FormatError, ecr.ShapeError, ecr.InputError, ecr.IoError, ecr.DeviceError, ecr.ConfigError):
        assert issubclass(cls, ecr.Error)
