"""tracing="otlp": spans leave over OTLP/HTTP, to a collector on this machine (and to a real
Arize Phoenix: tests/test_tracing_phoenix.py)."""

from __future__ import annotations

import socket
import threading
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
        self.services: set[str] = set()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"


class _Receive(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        assert isinstance(self.server, Collector)
        for resource in request.resource_spans:
            for a in resource.resource.attributes:
                if a.key == "service.name":
                    self.server.services.add(a.value.string_value)
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
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    with refund_desk.build_runtime(db, clock=clock, tracing="otlp") as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER))
    # close() flushed the batch processor.
    kinds = [attrs.get("agentrt.span.kind") for _, attrs in collector.spans]
    assert kinds.count("agent.run") == 2
    assert kinds.count("llm.call") == 4
    assert kinds.count("approval.wait") == 1
    assert {"agent.step", "tool.call", "policy.check"} <= set(kinds)
    assert {
        attrs.get("agentrt.run_id")
        for _, attrs in collector.spans
        if attrs.get("agentrt.span.kind") == "agent.run"
    } == {run.thread_id}
    assert "execute_tool issue_refund" in {name for name, _ in collector.spans}
    # The service is named, not OpenTelemetry's unknown_service.
    assert collector.services == {"agentrt"}
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
