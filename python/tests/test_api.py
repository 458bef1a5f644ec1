"""The parts of the package around the models: the exception classes, ecr.Dialog, ecr.Bundle,
ecr.Tokenizer (against the shared reference tokenization), ecr.KnowledgeGraph, and the
converter entry point `python3 -m ecr.convert` (which the runtime never imports: no torch)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import ecr
from conftest import SHARED, SOURCE, TOOLS_PYTHON, require_shared_data, require_torch, run_tool


def test_the_error_classes_form_one_hierarchy():
    kinds = [ecr.FormatError, ecr.ShapeError, ecr.InputError, ecr.IoError, ecr.DeviceError, ecr.ConfigError]
    assert all(issubclass(k, ecr.Error) and issubclass(k, Exception) for k in kinds)
    assert issubclass(ecr.InputError, ValueError) and issubclass(ecr.IoError, OSError)
    assert len(set(kinds)) == 6


def test_import_never_loads_torch():
    code = ("import sys, ecr, ecr.results, ecr.errors; "
            "assert 'torch' not in sys.modules, 'ecr imported torch'; print(ecr.__version__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().count(".") == 2


def test_dialogs_are_built_merged_sliced_and_checked():
    d = ecr.Dialog()
    assert len(d) == 0
    d.add_turn("user", "I like")
    d.add_turn("user", "The Shining (1980)", entities=[5], emotions={"like": 0.5})
    d.add_turn("system", "Try @83192", entities=np.array([7, 8]))
    assert len(d) == 2  # consecutive user turns are one
    assert d[0] == ecr.Turn("user", "I like The Shining (1980)", (5,), {"like": 0.5})
    assert d[-1].entities == (7, 8)
    assert [t.role for t in d.turns] == ["user", "system"]
    with pytest.raises(IndexError):
        d[2]

    j = {"turns": [{"role": "user", "text": "hi", "emotions": {"curious": 0.25}},
                   {"role": "system", "text": "Seen @83192 ?"}],
         "movieMentions": {"83192": "What Lies Beneath (2000)"}}
    parsed = ecr.Dialog.parse(json.dumps(j))
    assert parsed == ecr.Dialog.from_json(j) == ecr.Dialog(j["turns"], movie_mentions={83192: "What Lies Beneath (2000)"})
    assert parsed.to_json() == j
    assert parsed.movie_mentions == {"83192": "What Lies Beneath (2000)"}
    head = parsed[:1]
    assert isinstance(head, ecr.Dialog) and len(head) == 1 and head.movie_mentions == parsed.movie_mentions
    assert ecr.Dialog(parsed.turns, parsed.movie_mentions) == parsed  # ecr.Turn goes back in as it came out
    assert parsed != "not a dialog"

    with pytest.raises(ecr.InputError, match="turn 0.*role"):
        ecr.Dialog([{"role": "bot", "text": "x"}])
    with pytest.raises(ecr.InputError, match="outside"):
        ecr.Dialog([{"role": "user", "text": "x", "emotions": {"like": 2}}])
    with pytest.raises(ecr.InputError, match="not valid JSON"):
        ecr.Dialog.parse("{")
    with pytest.raises(ecr.InputError, match="entities"):
        d.add_turn("user", "x", entities=[-1])
    with pytest.raises(TypeError):
        ecr.Dialog.from_json(object())


def test_redial_records_become_dialogs_with_kg_ids(tiny_recommender):
    graph = tiny_recommender.graph
    with open(SHARED / "redial" / "dialogs.jsonl", encoding="utf-8") as f:
        line = f.readline()
    record = json.loads(line)
    plain = ecr.Dialog.from_redial(line)
    annotated = ecr.Dialog.from_redial(record, graph)
    assert len(plain) == len(annotated) > 2
    assert annotated[0].role == "system"  # the recommender opens this one
    assert "@" not in annotated[1].text and "The Babadook" in annotated[1].text
    assert graph.entity_id("The Babadook (2014)") in annotated[1].entities
    annotated.validate(graph)
    with pytest.raises(ecr.InputError, match="messages"):
        ecr.Dialog.from_redial({"initiatorWorkerId": 1})


def test_the_knowledge_graph_and_the_linker(tiny_recommender):
    graph = tiny_recommender.graph
    assert len(graph) == graph.num_entities == 24631 and graph.pad_entity == 24630
    assert graph.items.dtype == np.int32 and len(graph.items) > 6000
    shining = graph.entity_id("The Shining (1980)")
    assert graph.is_item(shining) and graph.entity_type(shining) == "movie"
    assert graph.entity_name(shining) == "The Shining (1980)" and shining in graph
    assert graph.entity_id("no such entity at all") is None
    genre = graph.relation_id("genre")
    assert graph.entity_id("horror") in graph.neighbours(shining, genre)
    found = tiny_recommender.link("I loved @202190 and Harrison Ford", {"202190": "The Shining  (1980)"})
    assert [(e.name, e.source) for e in found] == [("The Shining (1980)", "mention"), ("Harrison Ford", "text")]
    assert "24631 entities" in repr(graph)


def test_bundles_are_inspected_without_loading_models(tiny, tmp_path):
    bundle = ecr.Bundle.open(tiny.bundle)
    assert bundle.untrained and bundle.label.endswith("tiny.ecr")
    assert {"backbone", "text_encoder", "rec_prompt", "conv_prompt", "generator"} <= set(bundle.components)
    meta = bundle.metadata
    assert meta["components"] == bundle.components and "tokenizers" in meta
    assert len(bundle) == len(bundle.tensors) > 10 and bundle.file_size == tiny.bundle.stat().st_size
    info = bundle.tensors[0]
    assert isinstance(info, ecr.TensorInfo) and info.name in bundle and bundle.info(info.name) == info
    wte = next(t for t in bundle.tensors if t.name.startswith("backbone/") and t.name.endswith("wte.weight"))
    array = bundle.tensor(wte.name)
    assert array.shape == wte.shape and array.dtype == np.float32 and not array.flags.writeable
    # The Python reader of the format (tools/ecr_bundle.py) sees the same numbers.
    sys.path.insert(0, str(SOURCE))
    try:
        from tools.ecr_bundle import read_bundle
    finally:
        sys.path.pop(0)
    _, tensors = read_bundle(str(tiny.bundle))
    assert np.array_equal(np.asarray(tensors[wte.name]), array)
    bundle.verify()
    assert ecr.Recommender.load(bundle).bundle.label == bundle.label  # models load from an open bundle

    with pytest.raises(ecr.FormatError, match="no tensor"):
        bundle.tensor("no/such/tensor")
    broken = tmp_path / "broken.ecr"
    data = bytearray(tiny.bundle.read_bytes())
    data[-100] ^= 0xFF  # a byte of the last tensor: its checksum no longer matches
    broken.write_bytes(bytes(data))
    with pytest.raises(ecr.FormatError, match="broken.ecr"):
        ecr.Bundle.open(broken)
    ecr.Bundle.open(broken, verify_checksums=False)  # the table is still fine
    with pytest.raises(ecr.IoError):
        ecr.Bundle.open(tmp_path / "absent.ecr")


def test_the_tokenizer_reproduces_the_reference_tokenization(tiny):
    require_shared_data()
    gpt2 = ecr.Tokenizer.from_bundle(tiny.bundle, "gpt2")
    assert ecr.Tokenizer.from_bundle(ecr.Bundle.open(tiny.bundle), "backbone").vocab_size == gpt2.vocab_size
    files = ecr.Tokenizer.from_files(SHARED / "gpt2" / "encoder.json", SHARED / "gpt2" / "vocab.bpe")
    with open(SHARED / "gpt2" / "reference_tokens.jsonl", encoding="utf-8") as f:
        lines = [json.loads(line) for _, line in zip(range(300), f)]
    for case in lines:
        ids = files.encode(case["text"])
        assert ids.dtype == np.int32 and ids.tolist() == case["ids"], case["text"]
        assert files.decode(ids) == case["text"]
        assert files.decode(case["ids"]) == case["text"]  # any sequence of ints
    assert gpt2.encode("Hi<|endoftext|>").tolist()[-1] == gpt2.token_to_id("<|endoftext|>") == 50256
    assert gpt2.id_to_token(gpt2.token_to_id("Ġthe")) == "Ġthe" and gpt2.token_to_id("no-such-token-x") is None
    assert gpt2.decode([gpt2.token_to_id("Ã")]) == "\ufffd"  # a split character
    with pytest.raises(ecr.InputError):
        gpt2.decode([gpt2.vocab_size + 10])
    with pytest.raises(ecr.InputError):
        gpt2.decode([2 ** 40])
    with pytest.raises(ecr.ConfigError, match="gpt2"):
        ecr.Tokenizer.from_bundle(tiny.bundle, "klingon")


def test_the_tokenizer_reads_control_tokens_only_when_asked(tiny):
    gpt2 = ecr.Tokenizer.from_bundle(tiny.bundle, "gpt2")
    special = gpt2.special_tokens
    assert special["eos"] == special["bos"] == gpt2.token_to_id("<|endoftext|>")
    assert special["pad"] == gpt2.token_to_id("<pad>") and special["unk"] is None
    assert special["eos"] in special["control"] and gpt2.token_to_id("<movie>") in special["control"]
    text = "a user typing <|endoftext|> or <movie>"
    as_tokens = gpt2.encode(text).tolist()
    assert special["eos"] in as_tokens and gpt2.token_to_id("<movie>") in as_tokens
    as_text = gpt2.encode(text, control_tokens=False).tolist()
    assert not set(as_text) & set(special["control"])
    assert gpt2.decode(as_text) == gpt2.decode(as_tokens) == text


def test_the_converter_runs_from_the_package(tmp_path):
    require_shared_data()
    require_torch()
    done = subprocess.run([TOOLS_PYTHON, "-m", "ecr.convert", "--help"], capture_output=True, text=True,
                          env=os.environ)
    assert done.returncode == 0 and "--gpt2" in done.stdout, done.stderr
    run_tool("make_random_checkpoints", "gpt2", "--out", tmp_path / "lm", "--layers", 1, "--heads", 2, "--hidden", 32,
             "--positions", 64, "--vocab-dir", SHARED / "gpt2", "--seed", 4)
    args = ["--gpt2", f"lm={tmp_path / 'lm'}", "--dtype", "f16"]
    done = subprocess.run([TOOLS_PYTHON, "-m", "ecr.convert", "--out", str(tmp_path / "package.ecr"), *args],
                          capture_output=True, text=True, env=os.environ)
    assert done.returncode == 0, done.stderr
    run_tool("convert", "--out", tmp_path / "tools.ecr", *args)
    assert (tmp_path / "package.ecr").read_bytes() == (tmp_path / "tools.ecr").read_bytes()
    bundle = ecr.Bundle.open(tmp_path / "package.ecr")
    assert bundle.tensor("lm/transformer.wte.weight").dtype == np.float16
