"""Spans into the run's store: each finished span made the row the store keeps, written in
batches from a thread of the processor's own.

A span becomes its row as it ends, in the thread that ended it, and only the row waits for
the batch. OpenTelemetry's batch processor would keep the span object itself until the
batch goes (hundreds of them, each a dozen objects), and the garbage collector walks every
one of them at each collection while they wait: at many runs at once that cost more than
making the rows. The processor writes a batch once it has ``BATCH`` rows or ``DELAY``
seconds after the last write, and everything at a flush (each segment's end), so a
segment's spans are readable the moment it stops.

A batch the database is too busy to take is not lost: the exporter holds it and writes it
with the next batch, the next flush, or at the latest when the runtime closes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from types import MappingProxyType
from typing import Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentrt.faults import transient_cause
from agentrt.processes import in_forked_child
from agentrt.records import SpanRow
from agentrt.tracing import attributes as A

__all__ = [
    "BATCH",
    "CLOSING_PATIENCE",
    "DELAY",
    "RowExporter",
    "SpanSink",
    "SpansHeld",
    "StoreSpanExporter",
    "StoreSpanProcessor",
    "span_row",
]

BATCH = 512
"""Rows that make a batch: the processor wakes its thread to write them."""
DELAY = 1.0
"""Seconds the processor's thread waits for a full batch before it writes what it has."""
CLOSING_PATIENCE = 30.0
"""Seconds the store's exporter keeps trying, as the runtime closes, to write spans a busy
database could not take yet."""


class SpansHeld(Exception):
    """The database was busy: the spans are held, to be written with the next batch."""

    def __init__(self, count: int, cause: str) -> None:
        self.count = count
        super().__init__(f"{count} span(s) held for the next batch: {cause}")


class SpanSink(Protocol):
    """Where stored spans go: the store's span table (agentrt.store's SpanStore), handed in."""

    def write_spans(self, rows: Sequence[SpanRow]) -> None: ...


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def span_row(span: ReadableSpan) -> SpanRow:
    """``span`` as the store keeps it."""
    ctx = span.context
    assert ctx is not None
    given = span.attributes
    # The SDK's attributes are a read-only view: copy() is one dict copy, dict() of it a
    # lookup per key through the view.
    attributes = given.copy() if isinstance(given, MappingProxyType) else dict(given or {})
    thread_id = attributes.get(A.RUN_ID)
    parent = span.parent
    events = span.events  # each read of these copies the span's list
    links = span.links
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
        events=[
            {"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
            for e in events
        ]
        if events
        else [],
        links=[
            {
                "trace_id": _hex(link.context.trace_id, 32),
                "span_id": _hex(link.context.span_id, 16),
                "attributes": dict(link.attributes or {}),
            }
            for link in links
        ]
        if links
        else [],
    )


class StoreSpanExporter(SpanExporter):
    """Writes finished spans into the run's store (the `spans` table of its database);
    holds those a busy database could not take, for the next write. Takes the rows
    StoreSpanProcessor made, or spans."""

    def __init__(self, sink: SpanSink) -> None:
        self._sink: SpanSink | None = sink
        self._held: list[SpanRow] = []

    def export(self, spans: Sequence[ReadableSpan | SpanRow]) -> SpanExportResult:
        if self._sink is None:
            return SpanExportResult.FAILURE
        self._write(
            [
                s if isinstance(s, SpanRow) else span_row(s)
                for s in spans
                if isinstance(s, SpanRow) or s.context is not None
            ]
        )
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
        """Try the held spans again."""
        if self._sink is not None and self._held:
            self._write([])
        return True


class RowExporter(Protocol):
    """What StoreSpanProcessor hands its rows to: the guarded StoreSpanExporter."""

    def export(self, spans: Sequence[SpanRow | ReadableSpan]) -> SpanExportResult: ...

    def force_flush(self, timeout_millis: int = 30000) -> bool: ...

    def shutdown(self) -> None: ...


class StoreSpanProcessor(SpanProcessor):
    """Makes each sampled span its row as it ends; ``exporter`` (the guarded store exporter)
    writes them in batches, from the processor's thread or at a flush. Keeps every row until
    it is written, however many: the run's own record of what happened loses none."""

    def __init__(self, exporter: RowExporter) -> None:
        self._exporter = exporter
        self._closed = False
        self._start()
        in_forked_child(self._restart)  # a forked child starts with no thread

    def _restart(self) -> None:
        """In a forked child: a thread of its own, unless the processor was shut down."""
        if not self._closed:
            self._start()

    def _start(self) -> None:
        self._rows: deque[SpanRow] = deque()  # appended in one thread, taken in another
        self._wake = threading.Event()
        self._writing = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="agentrt-span-store", daemon=True)
        self._thread.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        if ctx is None or not ctx.trace_flags.sampled or self._closed:
            return
        try:
            row = span_row(span)
        except Exception:  # the run that ended it goes on: the exporter counts and logs it
            self._exporter.export([span])
            return
        self._rows.append(row)
        if len(self._rows) >= BATCH and not self._wake.is_set():
            self._wake.set()

    def _work(self) -> None:
        while not self._closed:
            self._wake.wait(DELAY)
            self._wake.clear()  # before writing: a batch filling meanwhile wakes it again
            self._write()

    def _write(self, flush: bool = False) -> bool:
        """Write every row there is, a batch at a time (``flush``: and the rows the exporter
        holds). One writer at a time: the exporter's held rows are not for two threads."""
        with self._writing:
            while self._rows:
                count = min(BATCH, len(self._rows))
                self._exporter.export([self._rows.popleft() for _ in range(count)])
            return self._exporter.force_flush() if flush else True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write every row now, in the caller's thread, and the held ones with them."""
        return self._write(flush=True)

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()
        self._write()
        self._exporter.shutdown()
