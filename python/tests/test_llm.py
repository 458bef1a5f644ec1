"""ecr.LLM against the `ecr generate --gguf` tool: on random-weight Llama GGUF files written by
tools/make_llama_fixture.py (a ChatML chat model with a byte-level tokenizer, --chat) and on
SmolLM2-135M-Instruct Q4_1 where the build tree has it, the Python API's tokens and text equal the
CLI's for the same prompt and options, greedy and sampled, plain and in the chat template, with
and without a LoRA adapter.

The fixtures need the PyPI package gguf in the build tree's venv (tools/setup_venv.sh; ctest passes
its folder as ECR_VENV); the tests skip with a message without it.
"""

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

import ecr
from conftest import SOURCE, TMP, cached_fixture, cli

VENV = Path(os.environ.get("ECR_VENV", SOURCE / "build" / "venv"))
VENV_PYTHON = VENV / "bin" / "python3"
SMOLLM2 = VENV.parent / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
THREADS = 2


def require_gguf_package():
    if not VENV_PYTHON.exists() or subprocess.run([VENV_PYTHON, "-c", "import gguf"], capture_output=True).returncode:
        pytest.skip(f"needs a python with the gguf package at {VENV_PYTHON} (run tools/setup_venv.sh)")


def make_tool_file(module, out, *args):
    done = subprocess.run([VENV_PYTHON, "-m", f"tools.{module}", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(SOURCE)))
    assert done.returncode == 0, f"tools.{module} failed:\n{done.stdout}\n{done.stderr}"
    return out


def llama_fixture(name, *options):
    require_gguf_package()
    recipe = f"llama fixture {name} {' '.join(map(str, options))}"
    tools = [SOURCE / "tools" / "make_llama_fixture.py", SOURCE / "tools" / "make_lora_fixture.py"]

    def build(out):
        make_tool_file("make_llama_fixture", out, "--out", out / f"{name}.gguf", *options)

    return cached_fixture(recipe, tools, build) / f"{name}.gguf"


@pytest.fixture(scope="module")
def chat_path():
    return llama_fixture("chat", "--chat", "--full-vocab", "--untied", "--context", 512, "--seed", 5)


@pytest.fixture(scope="module")
def chat_llm(chat_path):
    return ecr.LLM.load(chat_path, threads=THREADS)


def cli_generate(path, *args):
    """`ecr generate --gguf PATH ... --json`, parsed: {"prompt", "generated", "text", "stop"}."""
    _, out, _ = cli("generate", "--gguf", path, "--threads", THREADS, "--json", *args)
    return json.loads(out)


PROMPTS = ["Hello there, I liked", "The movie was", "\u00e9t\u00e9 \u2014 caf\u00e9 \U0001F600"]


def test_attributes(chat_llm, chat_path):
    assert chat_llm.architecture == "llama"
    assert chat_llm.vocab_size == 300  # token_embd's rows
    assert len(chat_llm.tokenizer) <= chat_llm.vocab_size
    assert chat_llm.context_length == 512
    assert chat_llm.chat_template == "chatml"
    assert chat_llm.stop_tokens == sorted(set(chat_llm.stop_tokens)) and chat_llm.stop_tokens
    assert str(chat_path.name) in repr(chat_llm)


def test_tokenize_round_trip(chat_llm):
    for text in PROMPTS:
        ids = chat_llm.tokenize(text)
        assert ids and all(0 <= i < chat_llm.vocab_size for i in ids)
        assert chat_llm.detokenize(ids) == text
    # Control tokens' spellings are tokens in a prompt, as the CLI's --prompt reads them.
    im_end = chat_llm.tokenizer.token_to_id("<|im_end|>")
    assert im_end is not None and im_end in chat_llm.tokenize("a<|im_end|>b")


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_equals_cli(chat_llm, chat_path, prompt):
    expected = cli_generate(chat_path, "--prompt", prompt, "--temperature", 0, "--max-tokens", 24)
    assert chat_llm.tokenize(prompt) == expected["prompt"]
    assert chat_llm.generate_ids(prompt, max_tokens=24) == expected["generated"]
    assert chat_llm.generate(prompt, max_tokens=24) == expected["text"]
    # A prompt given as ids decodes the same.
    assert chat_llm.generate_ids(expected["prompt"], max_tokens=24) == expected["generated"]


@pytest.mark.parametrize("exact", [False, True])
def test_activations_equal_cli(exact):
    # Q4_1 weights: llama.cpp's 8-bit activations by default, f32 ones with exact=True (--exact).
    path = llama_fixture("chat_q4_1", "--chat", "--full-vocab", "--untied", "--type", "q4_1", "--seed", 6)
    expected = cli_generate(path, "--prompt", PROMPTS[0], "--temperature", 0, "--max-tokens", 24,
                            *(["--exact"] if exact else []))
    llm = ecr.LLM.load(path, threads=THREADS, exact=exact)
    assert llm.generate_ids(PROMPTS[0], max_tokens=24) == expected["generated"]


@pytest.mark.parametrize("system", [None, "You are a film critic."])
def test_chat_equals_cli(chat_llm, chat_path, system):
    args = ["--chat", "--prompt", "Recommend me a movie", "--max-tokens", 32]
    if system:
        args += ["--system", system]
    expected = cli_generate(chat_path, *args)
    got = chat_llm.generate_ids("Recommend me a movie", chat=True, system=system, max_tokens=32)
    assert got == expected["generated"]
    assert chat_llm.generate("Recommend me a movie", chat=True, system=system, max_tokens=32) == expected["text"]
    # The chat prompt is not the plain one: the template's turns are around it.
    assert expected["prompt"] != chat_llm.tokenize("Recommend me a movie")


def test_stream_adds_up_to_text(chat_llm):
    for prompt, chat in [(PROMPTS[0], False), (PROMPTS[2], False), ("Hi!", True)]:
        for options in [dict(max_tokens=40), dict(max_tokens=40, temperature=1.0, seed=11)]:
            text = chat_llm.generate(prompt, chat=chat, **options)
            pieces = list(chat_llm.generate_stream(prompt, chat=chat, **options))
            assert "".join(pieces) == text
            # Whole characters only: each piece is valid UTF-8 by itself (str has no lone halves).
            assert all(isinstance(p, str) and p for p in pieces)


def test_stream_closes_early(chat_llm):
    text = chat_llm.generate(PROMPTS[1], max_tokens=40, stop=[])
    with chat_llm.generate_stream(PROMPTS[1], max_tokens=40, stop=[]) as stream:
        first = next(stream)
    # What was decoded before close() still comes out; then it ends, a prefix of the text.
    rest = "".join(stream)
    assert first and text.startswith(first + rest)


def test_seeded_sampling(chat_llm, chat_path):
    options = dict(temperature=0.9, top_k=40, top_p=0.95, max_tokens=24)
    a = chat_llm.generate_ids(PROMPTS[0], seed=7, **options)
    assert a == chat_llm.generate_ids(PROMPTS[0], seed=7, **options)
    expected = cli_generate(chat_path, "--prompt", PROMPTS[0], "--temperature", 0.9, "--top-k", 40, "--top-p", 0.95,
                            "--max-tokens", 24, "--seed", 7)
    assert a == expected["generated"]
    others = [chat_llm.generate_ids(PROMPTS[0], seed=s, **options) for s in (1, 2, 3)]
    assert any(o != a for o in others), "different seeds gave the same sample every time"


def test_penalties_and_stop_equal_cli(chat_llm, chat_path):
    expected = cli_generate(chat_path, "--prompt", PROMPTS[1], "--repetition-penalty", 1.3, "--no-repeat-ngram", 2,
                            "--max-tokens", 30)
    assert chat_llm.generate_ids(PROMPTS[1], repetition_penalty=1.3, no_repeat_ngram=2,
                                 max_tokens=30) == expected["generated"]
    greedy = chat_llm.generate_ids(PROMPTS[1], max_tokens=30, stop=[])
    stop = greedy[5]
    cut = chat_llm.generate_ids(PROMPTS[1], max_tokens=30, stop=[stop])
    assert cut == greedy[:greedy.index(stop) + 1]
    assert chat_llm.generate(PROMPTS[1], max_tokens=30, stop=[stop]) == chat_llm.detokenize(cut[:-1])


def test_threads_share_one_model(chat_llm):
    expected = [chat_llm.generate(p, max_tokens=20) for p in PROMPTS]
    got = [None] * len(PROMPTS)

    def work(i):
        got[i] = chat_llm.generate(PROMPTS[i], max_tokens=20)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


def test_lora_equals_cli(chat_path):
    require_gguf_package()
    adapter = cached_fixture("lora gguf seed 3 over the chat fixture", [SOURCE / "tools" / "make_lora_fixture.py"],
                             lambda out: make_tool_file("make_lora_fixture", out, "--gguf", out / "lora.gguf",
                                                        "--seed", 3)) / "lora.gguf"
    base = ecr.LLM.load(chat_path, threads=THREADS)
    for lora, arg in [([f"{adapter}:0.5"], f"{adapter}:0.5"), ([(adapter, 2.0)], f"{adapter}:2")]:
        llm = ecr.LLM.load(chat_path, lora=lora, threads=THREADS)
        expected = cli_generate(chat_path, "--lora", arg, "--prompt", PROMPTS[0], "--max-tokens", 24)
        assert llm.generate_ids(PROMPTS[0], max_tokens=24) == expected["generated"]
    assert llm.generate_ids(PROMPTS[0], max_tokens=24) != base.generate_ids(PROMPTS[0], max_tokens=24)


def test_chat_template_override(chat_path):
    llm = ecr.LLM.load(chat_path, chat_template="zephyr", threads=THREADS)
    assert llm.chat_template == "zephyr"
    expected = cli_generate(chat_path, "--chat", "--chat-template", "zephyr", "--prompt", "Hi", "--max-tokens", 16)
    assert llm.generate_ids("Hi", chat=True, max_tokens=16) == expected["generated"]
    with pytest.raises(ecr.ConfigError, match="nosuch"):
        ecr.LLM.load(chat_path, chat_template="nosuch")


def test_bad_arguments(chat_llm):
    with pytest.raises(ecr.InputError, match="top_p"):
        chat_llm.generate("Hi", top_p=0.0)
    with pytest.raises(ecr.InputError, match="outside the vocabulary"):
        chat_llm.generate_ids([5, chat_llm.vocab_size])
    with pytest.raises(ecr.InputError, match="no tokens"):
        chat_llm.generate_ids([])
    with pytest.raises(ecr.InputError, match="system"):
        chat_llm.generate("Hi", system="be brief")
    with pytest.raises(TypeError):
        chat_llm.generate([1, 2], chat=True)
    with pytest.raises(TypeError):
        chat_llm.generate(3.5)
    with pytest.raises(ecr.ConfigError, match="threads"):
        ecr.LLM.load("x.gguf", threads=-1)


def test_bad_files_raise_typed_errors(chat_path, tmp_path):
    missing = tmp_path / "missing.gguf"
    with pytest.raises(ecr.IoError, match="missing.gguf"):
        ecr.LLM.load(missing)
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    with pytest.raises(ecr.FormatError, match="garbage.gguf"):
        ecr.LLM.load(garbage)
    truncated = tmp_path / "truncated.gguf"
    require_gguf_package()
    truncated.write_bytes(chat_path.read_bytes()[:5000])
    with pytest.raises(ecr.FormatError, match="truncated.gguf"):
        ecr.LLM.load(truncated)
    with pytest.raises(ecr.ConfigError, match="blk.0.ffn_up"):
        ecr.LLM.load(llama_fixture("bad_type", "--break", "type"))
    with pytest.raises(ecr.ConfigError, match="gpt2"):
        ecr.LLM.load(llama_fixture("bad_arch", "--break", "arch"))


def test_file_without_tokenizer_takes_ids():
    path = llama_fixture("bare", "--seed", 2)
    llm = ecr.LLM.load(path, threads=THREADS)
    assert llm.tokenizer is None and llm.chat_template is None
    expected = cli_generate(path, "--prompt-ids", "1 2 3", "--max-tokens", 16)
    assert llm.generate_ids([1, 2, 3], max_tokens=16) == expected["generated"]
    with pytest.raises(ecr.ConfigError, match="no tokenizer"):
        llm.generate("text")
    with pytest.raises(ecr.ConfigError, match="no tokenizer"):
        llm.tokenize("text")


def test_smollm2_equals_cli():
    if not SMOLLM2.exists():
        pytest.skip(f"needs SmolLM2-135M-Instruct Q4_1 at {SMOLLM2}")
    llm = ecr.LLM.load(SMOLLM2, threads=THREADS)
    assert (llm.architecture, llm.vocab_size, llm.chat_template) == ("llama", 49152, "chatml")
    for prompt, chat in [("The best movie I have seen is", False), ("Recommend me a sad movie.", True)]:
        args = ["--prompt", prompt, "--max-tokens", 8] + (["--chat"] if chat else [])
        expected = cli_generate(SMOLLM2, *args)
        assert llm.generate_ids(prompt, chat=chat, max_tokens=8) == expected["generated"]
        assert llm.generate(prompt, chat=chat, max_tokens=8) == expected["text"]
        assert "".join(llm.generate_stream(prompt, chat=chat, max_tokens=8)) == expected["text"]
