"""tracing="otlp": spans leave over OTLP/HTTP, to a collector on this machine (and to a real
Arize Phoenix: tests/test_tracing_phoenix.py)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentrt import AgentRuntime, Budget, Decision, Policy, Principal, tool
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tracing import exporters
from tests.conftest import FakeClock


class Collector(ThreadingHTTPServer):
    """A minimal OTLP/HTTP receiver: keeps each request's spans, and the sums of metrics."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receive)
        self.spans: list[tuple[str, dict[str, object]]] = []
        self.services: set[str] = set()
        self.sums: list[tuple[str, int, bool, list[float]]] = []
        """Each sum metric as exported: name, temporality, monotonic, its points' values."""

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"

    @property
    def metrics_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/metrics"


class _Receive(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert isinstance(self.server, Collector)
        if self.path == "/v1/metrics":
            self._metrics(self.server, body)
        else:
            self._spans(self.server, body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    @staticmethod
    def _spans(server: Collector, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for a in resource.resource.attributes:
                if a.key == "service.name":
                    server.services.add(a.value.string_value)
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attrs = {a.key: a.value.string_value for a in span.attributes}
                    server.spans.append((span.name, attrs))

    @staticmethod
    def _metrics(server: Collector, body: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(body)
        for resource in request.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.HasField("sum"):
                        server.sums.append(
                            (
                                metric.name,
                                metric.sum.aggregation_temporality,
                                metric.sum.is_monotonic,
                                [p.as_int or p.as_double for p in metric.sum.data_points],
                            )
                        )

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
    # The metrics too, or closing waits out retries to a collector that is not there.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", collector.metrics_endpoint)
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
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"http://127.0.0.1:{port}/v1/metrics")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "1")
    with refund_desk.build_runtime(db, clock=clock, tracing="otlp") as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.status == "awaiting_approval"
    assert rt.export_failures >= 1


@pytest.mark.parametrize(
    "case",
    [
        ("cumulative", AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE),
        ("delta", AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA),
        # Counters as deltas: agentrt counts with Counters there (MetricsSetup.summed), where
        # its observable counters would go out as totals.
        ("lowmemory", AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA),
    ],
)
def test_the_metrics_go_over_otlp_as_the_temporality_preference_says(
    db: Path,
    clock: FakeClock,
    collector: Collector,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[str, int],
) -> None:
    preference, temporality = case
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", collector.metrics_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", preference)
    with refund_desk.build_runtime(db, clock=clock, tracing="otlp") as rt:
        rt.start(GOAL, principal=OPERATOR)
        rt.start(GOAL, principal=OPERATOR)
    # close() exported them once.
    sums = {name: (kind, monotonic, values) for name, kind, monotonic, values in collector.sums}
    assert sums["agentrt.runs.started"] == (temporality, True, [2])
    assert sums["agentrt.model.calls"] == (temporality, True, [6])
    assert {kind for kind, _, _ in sums.values()} == {temporality}


class HeldExporter(SpanExporter):
    """A collector's exporter that does not answer until ``release`` is set (a hung proxy, a
    collector busy with a batch); records which thread each export came from."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.spans: list[ReadableSpan] = []
        self.from_the_run: list[int] = []
        """Spans the run's own thread tried to send: it would have waited on the collector."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if threading.current_thread() is threading.main_thread():
            self.from_the_run.append(len(spans))
        else:
            self.release.wait()
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldExporter]:
    exporter = HeldExporter()
    monkeypatch.setattr(exporters, "otlp_exporter", lambda: exporter)
    yield exporter
    exporter.release.set()


def test_a_collector_that_never_answers_holds_no_run_up(db: Path, held: HeldExporter) -> None:
    """A segment's end flushes only the spans stored in the run's database, which `agentrt
    trace` reads back by the run's row: OTLP's spans leave from the processor's thread, so
    rt.start never waits on the collector (which, here, answers only once it has ended)."""
    rt = AgentRuntime(
        ScriptedChatModel(["done"]), policy=Policy.allow_all(), db=db, tracing="otlp", metrics=False
    )
    with rt:
        run = rt.start("say done", principal=Principal("alice"))
        assert run.status == "succeeded"
        assert held.from_the_run == []
        held.release.set()
    # close() sent what was left, from the processor's thread.
    assert [s.name for s in held.spans][-1] == "invoke_agent agentrt"
    assert held.from_the_run == []
    assert rt.export_failures == 0


def test_spans_a_busy_collector_leaves_no_room_for_are_counted(
    db: Path, held: HeldExporter, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The collector answers its first batch only once the run's last tool is called: the
    queue (OTEL_BSP_MAX_QUEUE_SIZE) fills, and the oldest spans are dropped. Each is
    counted (export_failures: a lost batch each batch's worth) and logged; none waits."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "64")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16")
    calls = 30

    @tool(effect="read")
    def tick(n: int) -> int:
        """Count.

        Args:
            n: The count.
        """
        if n == calls - 1:
            held.release.set()  # the collector answers from now on
        return n

    def planner(messages: list[BaseMessage]) -> AIMessage | str:
        done = sum(1 for m in messages if getattr(m, "type", "") == "tool")
        return "counted" if done >= calls else ai("", tool_call("tick", {"n": done}))

    made = InMemorySpanExporter()
    rt = AgentRuntime(
        ScriptedChatModel([planner] * (calls + 1)),
        tools=[tick],
        policy=Policy.allow_all(),
        db=db,
        tracing="otlp",
        metrics=False,
        budget=Budget(max_steps=calls + 10),
    )
    setup = rt._tracing_setup
    assert setup.provider is not None
    assert setup.exporter is not None
    setup.provider.add_span_processor(SimpleSpanProcessor(made))  # every span made
    with caplog.at_level(logging.WARNING, logger="agentrt"), rt:
        run = rt.start("count to 30", principal=Principal("alice"))
        assert run.status == "succeeded", run.error
    produced = len(made.get_finished_spans())
    lost = produced - len(held.spans)
    assert lost > 16
    assert produced > 64 + 16
    assert rt.export_failures == -(-lost // 16)  # one lost batch each 16 spans, the first too
    assert setup.exporter.dropped == lost
    assert "the otlp span exporter is behind" in caplog.text
    # The oldest went: the run's own span, which ends last, reached the collector.
    assert "invoke_agent agentrt" in {s.name for s in held.spans}
    assert held.from_the_run == []
