"""`ecr serve`'s /v1/chat/completions through the `openai` Python client (PyPI, in the build tree's
venv: tools/setup_venv.sh), pointed at a server this test starts: base_url
http://127.0.0.1:PORT/v1 and the server's --api-key. Non-streamed and stream=True completions give
the reply of /v1/respond for the same dialog as the assistant's message, a finish reason, and
ECR's results in the extra `ecr` field. Skips with a message when the venv has no openai.
"""

import os
import sys
from pathlib import Path

import pytest

from test_serve import DIALOG, LIMITS, Server

VENV = Path(os.environ.get("ECR_VENV", Path(__file__).resolve().parents[1] / "build" / "venv"))
sys.path[:0] = [str(p) for p in VENV.glob("lib/python3*/site-packages")]
try:
    import openai
except ImportError:
    pytest.skip(f"needs openai in {VENV} (tools/setup_venv.sh)", allow_module_level=True)

KEY = "test-key-0123456789"
MESSAGES = [{"role": "system", "content": "You recommend movies."},
            {"role": "user", "content": DIALOG["turns"][0]["text"]}]


@pytest.fixture(scope="module")
def server():
    s = Server("--api-key", KEY, *LIMITS)
    yield s
    s.stop()
    assert s.proc.returncode == 0


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def expected(server):
    """What /v1/respond answers for the same dialog (greedy: the same reply)."""
    status, turn = server.json("POST", "/v1/respond", DIALOG, {"Authorization": f"Bearer {KEY}"})
    assert status == 200
    return turn


def check_ecr(ecr, expected):
    assert ecr["reply"] == expected["reply"]
    assert [i["id"] for i in ecr["items"]] == [i["id"] for i in expected["items"]]
    assert all({"score", "reasons", "explanation"} <= set(i) for i in ecr["items"])
    assert ecr["user_emotions"] == expected["user_emotions"]
    assert ecr["finish_reason"] in ("stop", "length")


def test_completion(client, expected):
    completion = client.chat.completions.create(model="ecr", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.model == "ecr"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == expected["reply"] and choice.message.content.strip()
    # --max-new-tokens 24: the shipped model's reply takes all of them, or ends before.
    assert choice.finish_reason == expected["finish_reason"]
    assert completion.usage.completion_tokens == len(expected["reply_ids"])
    check_ecr(completion.model_extra["ecr"], expected)


def test_streamed_completion(client, expected):
    chunks = list(client.chat.completions.create(model="ecr", messages=MESSAGES, stream=True))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content or "" for c in chunks]
    assert sum(1 for p in pieces if p) > 2, "the reply did not stream in pieces"
    assert "".join(pieces) == expected["reply"]
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices[0].finish_reason == expected["finish_reason"]
    check_ecr(last.model_extra["ecr"], expected)


def test_wrong_key_is_an_authentication_error(server):
    other = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        other.chat.completions.create(model="ecr", messages=MESSAGES)


def test_bad_request_is_a_bad_request_error(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="ecr", messages=[{"role": "tool", "content": "x"}])
    assert e.value.body["field"] == "messages[0].role"
