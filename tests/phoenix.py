"""A real Arize Phoenix on 127.0.0.1 for the tests, started once a session by those that ask.

Phoenix is large, so it lives in a virtual environment of its own, which `make pytest`
installs once (under ~/.cache/agentrt, PHOENIX_VENV in the Makefile) and names to the tests
with ``AGENTRT_PHOENIX_PYTHON``. Without it the tests that need Phoenix are skipped, saying
so. The server keeps its data in a temporary directory, listens on free ports, and is told
to fetch nothing from outside (no telemetry, no web fonts).
"""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

__all__ = ["Phoenix", "phoenix"]

ENV = "AGENTRT_PHOENIX_PYTHON"


def _python() -> Path | None:
    given = os.environ.get(ENV)
    if given:
        return Path(given) if Path(given).exists() else None
    found = sorted(glob.glob(str(Path.home() / ".cache/agentrt/phoenix-*/bin/python")))
    return Path(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Phoenix:
    """A running Phoenix: where to send spans, and its REST API to read them back."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.otlp_endpoint = f"{base}/v1/traces"
        """OTLP over HTTP: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT."""

    def get(self, path: str, **query: str) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)

    def spans(
        self, trace_id: str, *, until: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        """The spans of ``trace_id`` in the default project, once ``until`` holds of them
        (Phoenix stores what it receives a moment later, on a queue of its own)."""
        spans: list[dict[str, Any]] = []
        for _ in range(150):
            spans = self.get("/v1/projects/default/spans", trace_id=trace_id, limit="1000")["data"]
            if until(spans):
                return spans
            time.sleep(0.2)  # Phoenix's own ingestion; nothing of agentrt's is timed here
        pytest.fail(f"Phoenix never showed trace {trace_id} as expected; it had {spans!r}")


def when(stamp: str) -> float:
    """Epoch seconds of one of Phoenix's ISO timestamps."""
    return datetime.fromisoformat(stamp).timestamp()


@pytest.fixture(scope="session")
def phoenix() -> Iterator[Phoenix]:
    python = _python()
    if python is None:
        pytest.skip(
            "Arize Phoenix is not installed: `make pytest` installs it in its own virtual "
            f"environment (PHOENIX_VENV) and names its Python in {ENV}"
        )
    port = _free_port()
    home = Path(tempfile.mkdtemp(prefix="agentrt-phoenix-"))
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_WORKING_DIR": str(home),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    }
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [str(python), "-m", "phoenix.server.main", "serve"], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # a minute for a cold start; it takes seconds
            if server.poll() is not None:
                pytest.fail(f"Phoenix exited with {server.returncode}; see {home / 'server.log'}")
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail(f"Phoenix did not answer on {base}; see {home / 'server.log'}")
        yield Phoenix(base)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
