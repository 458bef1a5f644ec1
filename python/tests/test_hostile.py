"""Hostile input through the Python module, as tests/test_hostile.cpp gives it to the library and
the `ecr` tool: values that nest for ever or hold themselves, threads that share one stream, a
small file that decodes to gigabytes, and arguments of the wrong kind or size. Each case that
once crashed or hung the interpreter runs in a child Python under a time limit (and an
address-space limit), so that a regression fails its test instead of killing the suite."""

import importlib.util
import os
import resource
import subprocess
import sys
import textwrap

import pytest

import ecr
from conftest import SOURCE, TMP


def run_child(code, timeout=120, address_space=None):
    """Runs `code` in a child Python that has imported ecr; returns its CompletedProcess. A
    timeout or a signal fails the test with what the child printed."""
    def limit():
        if address_space:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    try:
        done = subprocess.run([sys.executable, "-c", "import ecr\n" + textwrap.dedent(code)], capture_output=True,
                              text=True, timeout=timeout, preexec_fn=limit)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the child hung for {timeout} s: {e.stdout!r} {e.stderr!r}")
    assert done.returncode >= 0, f"the child died of signal {-done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def expect_error(code, error, *needles, **limits):
    """`code` in a child raises `error` (a name, e.g. "ecr.InputError") whose message has every needle."""
    body = textwrap.indent(textwrap.dedent(code).strip("\n"), "    ")
    done = run_child(f"try:\n{body}\nexcept {error} as e:\n    print('raised:', e)\nelse:\n    print('accepted')\n",
                     **limits)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("raised:"), done.stdout + done.stderr
    for needle in needles:
        assert needle in done.stdout, done.stdout


DEEP = """
deep = []
for _ in range(100000):
    deep = [deep]
"""


# --- values that nest too deep or hold themselves ----------------------------------------------

def test_a_dialog_that_holds_itself_is_an_input_error():
    expect_error("""
        d = {"turns": []}
        d["turns"].append(d)
        ecr.Dialog.from_json(d)
    """, "ecr.InputError", "dialog.turns[0]", "contains itself")


def test_a_list_nested_100000_deep_in_a_turn_is_an_input_error():
    expect_error(DEEP + """
ecr.Dialog.from_json({"turns": [{"role": "user", "text": "hi", "entities": deep}]})
""", "ecr.InputError", "deeper than 64 levels")


def test_64_levels_pass_and_65_do_not():
    done = run_child("""
        def nest(levels):
            value = 1
            for _ in range(levels):
                value = [value]
            return value
        # The dialog dict and its turns list are two levels, the turn a third.
        turn = {"role": "user", "text": "hi", "emotions": None}
        try:
            ecr.Dialog.from_json({"turns": [dict(turn, entities=nest(61))]})
        except ecr.InputError as e:
            assert "deeper" not in str(e), e  # refused for what the ids are, not for the depth
        try:
            ecr.Dialog.from_json({"turns": [dict(turn, entities=nest(62))]})
        except ecr.InputError as e:
            assert "deeper than 64 levels" in str(e), e
        else:
            raise AssertionError("65 levels accepted")
        print("ok")
    """)
    assert done.stdout.strip() == "ok", done.stderr


def test_a_tokenizer_spec_nested_100000_deep_is_an_input_error():
    expect_error(DEEP + """
ecr.Tokenizer.from_json({"vocab": deep, "merges": []})
""", "ecr.InputError", "tokenizer.vocab", "deeper than 64 levels")


def test_the_linkers_movie_mentions_nested_100000_deep_are_an_input_error(tiny):
    expect_error(DEEP + f"""
r = ecr.Recommender.load({str(tiny.bundle)!r})
r.link("I liked @111776", movie_mentions={{"111776": deep}})
""", "ecr.InputError", "movie_mentions", "deeper than 64 levels")


def test_an_object_whose_tolist_returns_itself_is_an_input_error():
    expect_error("""
        class Endless:
            def tolist(self):
                return self
        ecr.Dialog.from_json({"turns": [{"role": "user", "text": "hi", "entities": Endless()}]})
    """, "ecr.InputError", "contains itself")


# --- text after the JSON document -------------------------------------------------------------

def test_dialog_text_with_bytes_after_a_nul_is_refused_naming_the_offset():
    text = '{"turns": [{"role": "user", "text": "hi"}]}'
    assert len(ecr.Dialog.parse(text).turns) == 1
    with pytest.raises(ecr.InputError, match=f"NUL byte at byte offset {len(text)}"):
        ecr.Dialog.parse(text + "\0\0garbage")
    with pytest.raises(ecr.InputError, match="not valid JSON"):
        ecr.Dialog.parse(text + " xyz")


# --- threads ----------------------------------------------------------------------------------

def test_eight_threads_iterating_one_reply_stream_end_without_deadlock(tiny):
    done = run_child(f"""
        import threading
        responder = ecr.Responder.load({str(tiny.bundle)!r}, max_new_tokens=40, generator="gpt2")
        dialog = {{"turns": [{{"role": "user", "text": "I loved The Matrix, anything like it?"}}]}}
        expected = responder.respond(dialog).text
        stream = responder.stream(dialog)
        pieces = [[] for _ in range(8)]

        def drain(i):
            for piece in stream:
                pieces[i].append(piece)

        threads = [threading.Thread(target=drain, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Every piece went to exactly one thread; all of them make the reply.
        got = sorted(p for ps in pieces for p in ps)
        assert got == sorted(p for p in responder.stream(dialog)), (got, expected)
        assert stream.response.text == expected
        print("ok", sum(map(len, pieces)))
    """, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stdout + done.stderr


# --- a small file that decodes to gigabytes ---------------------------------------------------

def hostile_bundles():
    """tests/hostile_bundles.py, whose writers make the bundles below."""
    pytest.importorskip("numpy")
    sys.path.insert(0, str(SOURCE))  # its tools.ecr_bundle
    spec = importlib.util.spec_from_file_location("hostile_bundles", SOURCE / "tests" / "hostile_bundles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def zeros_4gib():
    """A valid bundle of 128 KiB holding a 4 GiB f32 tensor of zeros in one zstd frame."""
    hostile = hostile_bundles()
    path = TMP / "zeros_4gib.ecr"
    path.parent.mkdir(parents=True, exist_ok=True)
    hostile.write(str(path), {"ecr_bundle": 1}, {}, patch=lambda e: hostile.add_zeros_f32(e, "extra/zeros", 1 << 30))
    return path


def test_bundle_tensor_past_max_bytes_is_an_input_error_and_verify_streams(zeros_4gib):
    assert os.path.getsize(zeros_4gib) < 1 << 20
    # Under a 3 GiB address space: decoding the 4 GiB tensor whole would fail there.
    done = run_child(f"""
        import resource
        b = ecr.Bundle.open({str(zeros_4gib)!r})
        try:
            b.tensor("extra/zeros")
        except ecr.InputError as e:
            assert "4294967296 bytes" in str(e) and "max_bytes" in str(e), e
        else:
            raise AssertionError("4 GiB decoded without max_bytes")
        try:
            b.tensor("extra/zeros", max_bytes=1 << 31)
        except ecr.InputError as e:
            assert "max_bytes=2147483648" in str(e), e
        else:
            raise AssertionError("4 GiB decoded past max_bytes")
        b.verify()  # streams through the decoder: every byte is checked, none is kept
        print("ok", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """, address_space=3 << 30)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stdout + done.stderr
    assert int(done.stdout.split()[1]) < 512 * 1024, done.stdout  # KiB of peak resident memory


def test_bundle_tensor_under_max_bytes_and_with_no_limit():
    import numpy as np
    hostile = hostile_bundles()
    path = TMP / "zstd_small.ecr"
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.arange(1000, dtype=np.float32)
    hostile.write(str(path), {"ecr_bundle": 1}, {"x": values}, codecs={"x": "zstd"})
    b = ecr.Bundle.open(path)
    assert (b.tensor("x", max_bytes=None) == values).all()
    assert (b.tensor("x", max_bytes=4000) == values).all()
    with pytest.raises(ecr.InputError, match="max_bytes=3999"):
        b.tensor("x", max_bytes=3999)


# --- arguments of the wrong kind or size ------------------------------------------------------

def test_a_million_threads_is_a_config_error_naming_the_number():
    with pytest.raises(ecr.ConfigError, match="got 1000000"):
        ecr.Recommender.load("/nonexistent.ecr", threads=10**6)
    with pytest.raises(ecr.ConfigError, match="got 1000000"):
        ecr.Responder.load("/nonexistent.ecr", threads=10**6)


def test_a_recommender_that_is_not_one_is_a_type_error_naming_the_argument():
    with pytest.raises(TypeError, match="recommender: expected an ecr.Recommender or None, got int"):
        ecr.Responder.load("/nonexistent.ecr", recommender=42)
