"""Where spans go: the run's store (default), the console, OTLP/HTTP, or the caller's.

Every exporter agentrt builds is wrapped in GuardedExporter: an exporter that raises or
reports failure is logged and counted, and the run goes on. The store takes spans in
batches, from a background thread, and is flushed as each segment ends (so `agentrt trace`
sees a run the moment a segment stops, in any process); OTLP goes through a batch processor
too, so a slow or unreachable collector never holds a run up.

A batch the store cannot take because the database is busy (many runs' checkpoints hold
its write lock in turn) is not lost: the store's exporter holds it and writes it with the
next batch, the next flush, or at the latest when the runtime closes. Only a failure that
will not pass (a broken table) loses spans, each counted and logged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from agentrt.errors import ConfigError
from agentrt.faults import transient_cause
from agentrt.logs import get_logger
from agentrt.records import SpanRow
from agentrt.tracing import attributes as A

__all__ = [
    "TRACER_NAME",
    "GuardedExporter",
    "SpanSink",
    "SpansHeld",
    "StoreSpanExporter",
    "TracingSetup",
    "make_provider",
]

logger = get_logger()

TRACER_NAME = "agentrt"
SERVICE = "agentrt"
"""service.name of the spans agentrt's own provider makes, unless OTEL_SERVICE_NAME or
OTEL_RESOURCE_ATTRIBUTES names the service."""
MODES = ("sqlite", "console", "otlp")
SPAN_QUEUE_SIZE = 1_000_000
"""Spans the store's processor holds before it writes them: no run outgrows it."""
CLOSING_PATIENCE = 30.0
"""Seconds the store's exporter keeps trying, as the runtime closes, to write spans a busy
database could not take yet."""


class SpansHeld(Exception):
    """The database was busy: the spans are held, to be written with the next batch."""

    def __init__(self, count: int, cause: str) -> None:
        self.count = count
        super().__init__(f"{count} span(s) held for the next batch: {cause}")


class GuardedExporter(SpanExporter):
    """Wraps an exporter so that its failures are logged and counted, never raised."""

    def __init__(self, inner: SpanExporter, name: str) -> None:
        self.inner = inner
        self.name = name
        self.failures = 0
        """Batches this exporter failed to export."""
        self.exported = 0
        """Spans exported."""
        self.held = 0
        """Batches held back by a busy database (written later, not lost)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except SpansHeld as held:
            self.held += 1
            logger.info("the %s span exporter: %s", self.name, held)
            return SpanExportResult.FAILURE
        except Exception:
            self.failures += 1
            logger.warning(
                "the %s span exporter failed on %d span(s); the run goes on without them "
                "(%d failed batches so far)",
                self.name,
                len(spans),
                self.failures,
                exc_info=True,
            )
            return SpanExportResult.FAILURE
        if result is SpanExportResult.FAILURE:
            self.failures += 1
            logger.warning(
                "the %s span exporter reported failure on %d span(s) (%d failed batches so far)",
                self.name,
                len(spans),
                self.failures,
            )
        else:
            self.exported += len(spans)
        return result

    def shutdown(self) -> None:
        try:
            self.inner.shutdown()
        except SpansHeld as held:
            self.failures += 1
            logger.warning(
                "the %s span exporter failed on %d span(s): the database stayed busy as the "
                "runtime closed (%d failed batches so far)",
                self.name,
                held.count,
                self.failures,
            )
        except Exception:
            logger.warning("the %s span exporter failed to shut down", self.name, exc_info=True)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return self.inner.force_flush(timeout_millis)
        except SpansHeld as held:
            self.held += 1
            logger.info("the %s span exporter: %s", self.name, held)
            return False
        except Exception:
            logger.warning("the %s span exporter failed to flush", self.name, exc_info=True)
            return False


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


class SpanSink(Protocol):
    """Where stored spans go: the store's span table (agentrt.store's SpanStore), handed in."""

    def write_spans(self, rows: Sequence[SpanRow]) -> None: ...


class StoreSpanExporter(SpanExporter):
    """Writes finished spans into the run's store (the `spans` table of its database);
    holds those a busy database could not take, for the next write."""

    def __init__(self, sink: SpanSink) -> None:
        self._sink: SpanSink | None = sink
        self._held: list[SpanRow] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._sink is None:
            return SpanExportResult.FAILURE
        self._write([_row(span) for span in spans if span.context is not None])
        return SpanExportResult.SUCCESS

    def _write(self, rows: list[SpanRow]) -> None:
        """Write the held rows and ``rows``; SpansHeld if the database was too busy."""
        assert self._sink is not None
        rows, self._held = self._held + rows, []
        if not rows:
            return
        try:
            self._sink.write_spans(rows)
        except Exception as exc:
            cause = transient_cause(exc)
            if cause is None:
                raise  # will not pass: GuardedExporter counts these spans as lost
            self._held = rows
            raise SpansHeld(len(rows), cause) from exc

    def shutdown(self) -> None:
        if self._sink is not None and self._held:
            deadline = time.monotonic() + CLOSING_PATIENCE
            while self._held:
                try:
                    self._write([])
                except SpansHeld:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)
        self._sink = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Try the held spans again (the batch processor flushes only what it queued)."""
        if self._sink is not None and self._held:
            self._write([])
        return True


class _StoreSpanProcessor(BatchSpanProcessor):
    """The batch processor, whose flush also tries the spans its exporter holds."""

    def __init__(self, exporter: GuardedExporter) -> None:
        super().__init__(exporter, schedule_delay_millis=1000, max_queue_size=SPAN_QUEUE_SIZE)
        self._guarded = exporter

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        flushed = super().force_flush(timeout_millis)
        return self._guarded.force_flush() and flushed


def _row(span: ReadableSpan) -> SpanRow:
    ctx = span.context
    assert ctx is not None
    attributes = dict(span.attributes or {})
    thread_id = attributes.get(A.RUN_ID)
    parent = span.parent
    return SpanRow(
        span_id=f"{ctx.span_id:016x}",
        trace_id=f"{ctx.trace_id:032x}",
        parent_id=f"{parent.span_id:016x}" if parent is not None else None,
        thread_id=thread_id if isinstance(thread_id, str) else None,
        name=span.name,
        start_ns=span.start_time or 0,
        end_ns=span.end_time,
        status=span.status.status_code.name,
        attributes=attributes,
        # Most spans have neither: skip building the empty lists' comprehensions.
        events=[
            {"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
            for e in span.events
        ]
        if span.events
        else [],
        links=[
            {
                "trace_id": _hex(link.context.trace_id, 32),
                "span_id": _hex(link.context.span_id, 16),
                "attributes": dict(link.attributes or {}),
            }
            for link in span.links
        ]
        if span.links
        else [],
    )


def otlp_exporter() -> SpanExporter:
    """OTLP over HTTP, configured by the standard OTEL_EXPORTER_OTLP_* environment variables."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ConfigError(
            "tracing='otlp' needs the OTLP exporter, which is the optional extra 'otlp': "
            "pip install 'agentrt[otlp]'"
        ) from None
    return OTLPSpanExporter()


def resource() -> Resource:
    """What the process's spans say about it: the OTEL_* environment's resource, with
    service.name "agentrt" where the environment names no service (OpenTelemetry's own
    default, unknown_service, is a row nobody can place)."""
    found = Resource.create()
    if OTELResourceDetector().detect().attributes.get(SERVICE_NAME):
        return found
    return found.merge(Resource({SERVICE_NAME: SERVICE}))


@dataclass(frozen=True, slots=True)
class TracingSetup:
    """What a `tracing=` argument turned into."""

    tracer: trace.Tracer
    """Where the runtime's spans go."""
    provider: TracerProvider | None
    """The provider agentrt built (and shuts down on close); None for the caller's own."""
    exporter: GuardedExporter | None
    """The guarded exporter agentrt built, whose failures are counted."""


def make_provider(tracing: Any, sink: SpanSink) -> TracingSetup:
    """Turn ``tracing=`` into a tracer: "sqlite", "console", "otlp", None or a TracerProvider.

    "sqlite" (the default's name, kept for what it always meant: spans in the run's own
    database) writes to ``sink``, the store."""
    if tracing is None:
        return TracingSetup(trace.NoOpTracer(), None, None)
    if isinstance(tracing, trace.TracerProvider):
        return TracingSetup(tracing.get_tracer(TRACER_NAME), None, None)
    if tracing not in MODES:
        raise ConfigError(
            f"tracing={tracing!r} is not a tracing mode; use 'sqlite' (spans in the run's "
            "database, read by `agentrt trace`), 'console', 'otlp', None, or an "
            "opentelemetry TracerProvider"
        )
    provider = TracerProvider(resource=resource())
    if tracing == "sqlite":
        # Batched: one transaction for many spans, on a thread of the processor's own,
        # instead of one per span in the run's thread. The runtime flushes at the end of
        # each segment, so a segment's spans are stored when it stops.
        # The queue is as long as memory allows: the processor drops spans past it (2,048
        # by default, a few hundred steps without a flush, or a burst of concurrent runs),
        # and the run's own record of what happened must not lose any.
        exporter = GuardedExporter(StoreSpanExporter(sink), "sqlite")
        provider.add_span_processor(_StoreSpanProcessor(exporter))
    elif tracing == "console":
        exporter = GuardedExporter(ConsoleSpanExporter(), "console")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        exporter = GuardedExporter(otlp_exporter(), "otlp")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return TracingSetup(provider.get_tracer(TRACER_NAME), provider, exporter)
