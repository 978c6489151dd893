"""Where spans go: the SQLite span store (default), the console, OTLP/HTTP, or the caller's.

Every exporter agentrt builds is wrapped in GuardedExporter: an exporter that raises or
reports failure is logged and counted, and the run goes on. The SQLite store exports each
span as it ends (one small insert, so `agentrt trace` sees a run the moment a segment
stops, in any process); OTLP goes through a batch processor on a background thread, so a
slow or unreachable collector never holds a run up.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from agentrt.errors import ConfigError
from agentrt.logs import get_logger
from agentrt.tracing import attributes as A

__all__ = [
    "TRACER_NAME",
    "GuardedExporter",
    "SqliteSpanExporter",
    "TracingSetup",
    "make_provider",
]

logger = get_logger()

TRACER_NAME = "agentrt"
MODES = ("sqlite", "console", "otlp")
LOCK_WAIT_MS = 250


class GuardedExporter(SpanExporter):
    """Wraps an exporter so that its failures are logged and counted, never raised."""

    def __init__(self, inner: SpanExporter, name: str) -> None:
        self.inner = inner
        self.name = name
        self.failures = 0
        """Batches this exporter failed to export."""
        self.exported = 0
        """Spans exported."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
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
        except Exception:
            logger.warning("the %s span exporter failed to shut down", self.name, exc_info=True)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return self.inner.force_flush(timeout_millis)
        except Exception:
            logger.warning("the %s span exporter failed to flush", self.name, exc_info=True)
            return False


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


class SqliteSpanExporter(SpanExporter):
    """Writes finished spans into the `spans` table of the run's database."""

    def __init__(self, path: str | Path) -> None:
        from agentrt.store.sqlite import connect

        self.path = str(path)
        self._conn: sqlite3.Connection | None = connect(self.path)
        # A span waits at most this long for the file's write lock, then is dropped and
        # counted: a busy database never holds a run up for the sake of its spans.
        self._conn.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS}")
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        rows = [_row(span) for span in spans if span.context is not None]
        with self._lock:
            if self._conn is None:
                return SpanExportResult.FAILURE
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO spans (span_id, trace_id, parent_id, thread_id, "
                    "name, start_ns, end_ns, status, attributes, events, links) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    rows,
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _row(span: ReadableSpan) -> tuple[Any, ...]:
    ctx = span.context
    assert ctx is not None
    attributes = dict(span.attributes or {})
    return (
        _hex(ctx.span_id, 16),
        _hex(ctx.trace_id, 32),
        _hex(span.parent.span_id, 16) if span.parent is not None else None,
        attributes.get(A.RUN_ID),
        span.name,
        span.start_time,
        span.end_time,
        span.status.status_code.name,
        json.dumps(attributes, default=list),
        json.dumps(
            [
                {"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
                for e in span.events
            ],
            default=list,
        ),
        json.dumps(
            [
                {
                    "trace_id": _hex(link.context.trace_id, 32),
                    "span_id": _hex(link.context.span_id, 16),
                    "attributes": dict(link.attributes or {}),
                }
                for link in span.links
            ],
            default=list,
        ),
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


@dataclass(frozen=True, slots=True)
class TracingSetup:
    """What a `tracing=` argument turned into."""

    tracer: trace.Tracer
    """Where the runtime's spans go."""
    provider: TracerProvider | None
    """The provider agentrt built (and shuts down on close); None for the caller's own."""
    exporter: GuardedExporter | None
    """The guarded exporter agentrt built, whose failures are counted."""


def make_provider(tracing: Any, db: str | Path) -> TracingSetup:
    """Turn ``tracing=`` into a tracer: "sqlite", "console", "otlp", None or a TracerProvider."""
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
    provider = TracerProvider()
    if tracing == "sqlite":
        exporter = GuardedExporter(SqliteSpanExporter(db), "sqlite")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif tracing == "console":
        exporter = GuardedExporter(ConsoleSpanExporter(), "console")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        exporter = GuardedExporter(otlp_exporter(), "otlp")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return TracingSetup(provider.get_tracer(TRACER_NAME), provider, exporter)
