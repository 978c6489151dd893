"""Retake the README's screenshot of a run in Arize Phoenix (docs/phoenix-trace.png).

Starts Phoenix on 127.0.0.1 from the virtual environment `make pytest` installs, sends it
the refund desk's run (stopped at its gate, approved, finished; content captured), and
photographs the run's trace with the model call that asked for the refund selected, in
Debian's Chromium through Playwright. Run it with `make screenshots`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHOT = HERE / "phoenix-trace.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(base: str, path: str, **query: str) -> Any:
    with urllib.request.urlopen(f"{base}{path}?{urllib.parse.urlencode(query)}") as response:
        return json.load(response)


def _run(db: Path) -> None:
    from agentrt import Decision
    from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR, build_runtime

    with build_runtime(
        db, tracing="otlp", capture_content=True, prices={"refund-desk-script": (0.15, 0.6)}
    ) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        time.sleep(2)  # bob takes a moment: the wait shows in the picture
        rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER))


def main() -> None:
    python = os.environ.get("AGENTRT_PHOENIX_PYTHON")
    if not python:
        sys.exit("AGENTRT_PHOENIX_PYTHON names no Phoenix; run `make screenshots`")
    home = Path(tempfile.mkdtemp(prefix="agentrt-phoenix-"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_WORKING_DIR": str(home),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    }
    server = subprocess.Popen(
        [python, "-m", "phoenix.server.main", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{base}/v1/traces"
        _run(home / "agentrt.db")
        for _ in range(100):
            spans = _get(base, "/v1/projects/default/spans", limit="1000")["data"]
            if any(s["name"] == "finish" for s in spans):
                break
            time.sleep(0.2)
        asked = next(
            s
            for s in spans
            if s["span_kind"] == "LLM"
            and "issue_refund" in json.dumps(s["attributes"].get("gen_ai.output.messages"))
        )
        project = _get(base, "/v1/projects")["data"][0]["id"]
        trace = asked["context"]["trace_id"]
        url = f"{base}/projects/{project}/traces/{trace}?selectedSpanNodeId={asked['id']}"
        _photograph(url)
        print(f"wrote {SHOT}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def _photograph(url: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1500, "height": 1700})
        page.goto(url)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1500)  # the span tree and the message views settle
        page.screenshot(path=str(SHOT))
        browser.close()


if __name__ == "__main__":
    main()
