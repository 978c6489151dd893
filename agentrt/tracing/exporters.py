"""Where spans go: the run's store (default), the console, OTLP/HTTP, or the caller's.

Every exporter agentrt builds is wrapped in GuardedExporter: an exporter that raises or
reports failure is logged and counted, and the run goes on. The store takes spans in
batches, from a background thread, and is flushed as each segment ends (so `agentrt trace`
sees a run the moment a segment stops, in any process: agentrt.tracing.store_spans); OTLP
goes through a batch processor too, never flushed by a run, so a slow or unreachable
collector never holds a run up; the spans its full queue drops are counted
(agentrt.tracing.sent_spans).

A batch the store cannot take because the database is busy (many runs' checkpoints hold
its write lock in turn) is not lost: the store's exporter holds it and writes it with the
next batch, the next flush, or at the latest when the runtime closes. Only a failure that
will not pass (a broken table) loses spans, each counted and logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from agentrt.errors import ConfigError
from agentrt.logs import get_logger
from agentrt.tracing.sent_spans import SentSpanProcessor
from agentrt.tracing.store_spans import (
    SpansHeld,
    SpanSink,
    StoreSpanExporter,
    StoreSpanProcessor,
)

__all__ = [
    "TRACER_NAME",
    "GuardedExporter",
    "TracingSetup",
    "make_provider",
]

logger = get_logger()

TRACER_NAME = "agentrt"
SERVICE = "agentrt"
"""service.name of the spans agentrt's own provider makes, unless OTEL_SERVICE_NAME or
OTEL_RESOURCE_ATTRIBUTES names the service."""
MODES = ("sqlite", "console", "otlp")


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
        self.dropped = 0
        """Spans dropped before they reached this exporter: its processor's queue was full."""

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        """Export ``spans``: finished spans, or for the store's exporter the rows its
        processor made of them (agentrt.tracing.store_spans)."""
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

    def drop(self, batch: int) -> None:
        """Count one span its processor dropped (queue full); the first and each ``batch``
        after count as one lost batch in ``failures``, and are logged."""
        if self.dropped % batch == 0:
            self.failures += 1
            logger.warning(
                "the %s span exporter is behind: the spans waiting for it fill the queue, and "
                "the oldest are dropped (%d so far; %d failed batches so far); "
                "OTEL_BSP_MAX_QUEUE_SIZE sets how many may wait",
                self.name,
                self.dropped + 1,
                self.failures,
            )
        self.dropped += 1

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
        # each segment, so a segment's spans are stored when it stops. Nothing is
        # dropped, however many wait (OpenTelemetry's batch processor drops past 2,048).
        exporter = GuardedExporter(StoreSpanExporter(sink), "sqlite")
        provider.add_span_processor(StoreSpanProcessor(exporter))
    elif tracing == "console":
        exporter = GuardedExporter(ConsoleSpanExporter(), "console")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        exporter = GuardedExporter(otlp_exporter(), "otlp")
        provider.add_span_processor(SentSpanProcessor(exporter))
    return TracingSetup(provider.get_tracer(TRACER_NAME), provider, exporter)
