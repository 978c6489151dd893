"""tracing="otlp": spans leave over OTLP/HTTP, to a collector on this machine, and to Arize
Phoenix when it is installed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentrt import Decision
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from tests.conftest import FakeClock


class Collector(ThreadingHTTPServer):
    """A minimal OTLP/HTTP trace receiver: keeps each request's spans."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receive)
        self.spans: list[tuple[str, dict[str, object]]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"


class _Receive(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        assert isinstance(self.server, Collector)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attrs = {a.key: a.value.string_value for a in span.attributes}
                    self.server.spans.append((span.name, attrs))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_spans_go_over_otlp_http(
    db: Path, clock: FakeClock, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.endpoint)
    with refund_desk.build_runtime(db, clock=clock, tracing="otlp") as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER))
    # close() flushed the batch processor.
    names = [name for name, _ in collector.spans]
    assert names.count("agent.run") == 2
    assert names.count("llm.call") == 4
    assert names.count("approval.wait") == 1
    assert {"agent.step", "tool.call", "policy.check"} <= set(names)
    assert {
        attrs.get("agentrt.run_id") for name, attrs in collector.spans if name == "agent.run"
    } == {run.thread_id}
    assert rt.export_failures == 0


def test_an_unreachable_collector_is_counted_not_raised(
    db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{port}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")
    with refund_desk.build_runtime(db, clock=clock, tracing="otlp") as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.status == "awaiting_approval"
    assert rt.export_failures >= 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.subprocess
def test_a_run_lands_in_arize_phoenix(
    db: Path, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip(
        "phoenix", reason="Arize Phoenix is not installed (pip install arize-phoenix)"
    )
    port = _free_port()
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_WORKING_DIR": str(tmp_path / "phoenix"),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "phoenix.server.main", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Waiting for a separate server to come up; nothing about agentrt is timed here.
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("Phoenix did not start on 127.0.0.1")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{base}/v1/traces")
        with refund_desk.build_runtime(db, clock=clock, tracing="otlp") as rt:
            run = rt.start(GOAL, principal=OPERATOR)
        assert rt.export_failures == 0
        for _ in range(100):
            with urllib.request.urlopen(
                f"{base}/v1/projects/default/spans?limit=1000", timeout=5
            ) as response:
                spans = json.load(response)["data"]
            names = {s["name"] for s in spans}
            if "agent.run" in names:
                break
            time.sleep(0.2)
        assert {"agent.run", "agent.step", "llm.call", "tool.call", "policy.check"} <= names
        assert run.thread_id in json.dumps(spans)
    finally:
        server.terminate()
        server.wait(timeout=30)
