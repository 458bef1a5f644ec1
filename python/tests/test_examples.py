"""The Python examples run: the ReDial evaluation loop gives `ecr eval`'s numbers on the same
dialogs, and the recommend-and-reply script streams a reply."""

import json
import os
import subprocess
import sys

import pytest

from conftest import SHARED, SOURCE, cli

EXAMPLES = SOURCE / "examples" / "python"


def run_example(script, *args):
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], capture_output=True, text=True,
                          env=os.environ)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_evaluation_loop_gives_the_numbers_of_ecr_eval(tiny, tmp_path):
    dialogs = SHARED / "redial" / "dialogs.jsonl"
    out = run_example("evaluate_redial.py", "--bundle", tiny.bundle, "--dialogs", dialogs, "--limit", 12,
                      "--workers", 2, "--json", tmp_path / "python.json")
    assert "recall" in out
    cli("eval", "--bundle", tiny.bundle, "--dialogs", dialogs, "--limit", 12, "--json", tmp_path / "cpp.json")
    got = json.loads((tmp_path / "python.json").read_text())
    want = json.loads((tmp_path / "cpp.json").read_text())
    assert got["samples"] == want["samples"] > 10
    for metric, value in got["metrics"].items():
        assert value == pytest.approx(want["metrics"][metric], abs=1e-12), metric

    # A raw record (no annotations) goes through the linker, as `ecr eval` does with it.
    raw = tmp_path / "raw.jsonl"
    with open(SHARED / "redial" / "test_dialogs.jsonl", encoding="utf-8") as f:
        raw.write_text("".join(next(f) for _ in range(6)))
    run_example("evaluate_redial.py", "--bundle", tiny.bundle, "--dialogs", raw, "--json", tmp_path / "raw.json")
    cli("eval", "--bundle", tiny.bundle, "--dialogs", raw, "--json", tmp_path / "raw-cpp.json")
    got = json.loads((tmp_path / "raw.json").read_text())
    want = json.loads((tmp_path / "raw-cpp.json").read_text())
    assert got["samples"] == want["samples"] > 0
    assert got["metrics"]["recall@50"] == pytest.approx(want["metrics"]["recall@50"], abs=1e-12)


def test_recommend_and_reply_streams_a_reply(tiny):
    out = run_example("recommend_and_reply.py", "--bundle", tiny.bundle, "--top-k", 3, "I love horror movies",
                      "Have you seen It Follows?", "Yes, too slow for me")
    assert "untrained" in out and "  1. " in out and "reply: " in out
