"""A fuzz run of schemathesis (PyPI, in the build tree's venv: tools/setup_venv.sh) against
`ecr serve`'s GET /openapi.json: requests generated from the document, valid and not, on every
operation, each answer checked to be no 5xx (not_a_server_error) and to match the document's
schema for its status (response_schema_conformance). A fixed seed and a bounded number of
examples per operation keep it reproducible and within about two minutes on two cores (about
30 s here). The document states the server's limits and the bundle's entity ids. Skips with a
message when the venv has no schemathesis.
"""

import os
import subprocess
from pathlib import Path

import pytest

from test_serve import Server

VENV = Path(os.environ.get("ECR_VENV", Path(__file__).resolve().parents[1] / "build" / "venv"))
SCHEMATHESIS = VENV / "bin" / "schemathesis"
TMP = Path(os.environ.get("ECR_TEST_TMP", "/tmp/ecr-serve-tests"))
KEY = "fuzz-key-0123456789"


def server_errors(server):
    """The 5xx answers the server counted: {metrics line: count}."""
    status, _, data = server.request("GET", "/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert status == 200
    return {l: v for l, _, v in (line.rpartition(" ") for line in data.decode().splitlines())
            if l.startswith("ecr_http_requests_total{") and 'status="5' in l and float(v) > 0}


def test_no_5xx_and_answers_match_the_document():
    if not SCHEMATHESIS.exists():
        pytest.skip(f"needs schemathesis in {VENV} (tools/setup_venv.sh)")
    # Short replies keep the respond-like operations quick; one worker, no one else in the queue.
    s = Server("--api-key", KEY, "--max-new-tokens", "8", "--max-sessions", "50")
    try:
        TMP.mkdir(parents=True, exist_ok=True)
        run = subprocess.run(
            [str(SCHEMATHESIS), "run", f"http://127.0.0.1:{s.port}/openapi.json",
             "--checks", "not_a_server_error,response_schema_conformance",
             "--phases", "examples,coverage,fuzzing", "--max-examples", "100", "--seed", "2025",
             "--workers", "1", "--generation-database", "none", "--request-timeout", "60",
             "--header", f"Authorization: Bearer {KEY}", "--no-color",
             "--report", "junit", "--report-dir", str(TMP / "schemathesis")],
            capture_output=True, text=True, timeout=600, env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
        print(run.stdout[-6000:])
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert server_errors(s) == {}
        assert s.proc.poll() is None, "the server died"
    finally:
        s.stop()
    assert s.proc.returncode == 0
