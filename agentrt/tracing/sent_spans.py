"""Spans sent to a collector (OTLP): queued as they end, sent in batches from a thread of the
processor's own, and every span the queue could not hold counted.

OpenTelemetry's BatchSpanProcessor keeps at most OTEL_BSP_MAX_QUEUE_SIZE spans waiting and
drops the rest without telling the exporter, so `rt.export_failures` never heard of them.
This processor keeps the same bound (a collector down for an hour must not hold a
process's memory), and the same OTEL_BSP_* settings, but hands each span it drops to the
exporter's count (GuardedExporter.drop), so lost spans are counted and logged. The run's
thread only appends: it never sends, nor waits on a collector.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Protocol

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from agentrt.processes import in_forked_child

__all__ = ["CountingExporter", "SentSpanProcessor"]


class CountingExporter(Protocol):
    """What SentSpanProcessor hands its spans to: the guarded exporter, which counts."""

    def export(self, spans: list[ReadableSpan]) -> object: ...

    def drop(self, batch: int) -> None: ...

    def shutdown(self) -> None: ...


def _setting(name: str, default: int) -> int:
    """A positive whole number from the environment's OTEL_BSP_* ``name``, else ``default``."""
    try:
        value = int(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


class SentSpanProcessor(SpanProcessor):
    """Queues each sampled span as it ends, at most ``queue`` of them (OTEL_BSP_MAX_QUEUE_SIZE,
    2,048: OpenTelemetry's default); sends them ``batch`` at a time (OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    512) once a batch is full or ``delay`` seconds (OTEL_BSP_SCHEDULE_DELAY, 5 s) after the
    last send. A span that finds the queue full pushes out the oldest, which is counted."""

    def __init__(
        self,
        exporter: CountingExporter | SpanExporter,
        *,
        queue: int | None = None,
        batch: int | None = None,
        delay: float | None = None,
    ) -> None:
        self._exporter = exporter
        self.queue = queue or _setting("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self.batch = min(batch or _setting("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), self.queue)
        self.delay = delay if delay is not None else _setting("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1e3
        self._closed = False
        self._start()
        in_forked_child(self._restart)  # a forked child starts with no thread, nor its spans

    def _restart(self) -> None:
        if not self._closed:
            self._start()

    def _start(self) -> None:
        self._spans: deque[ReadableSpan] = deque()
        self._queued = threading.Lock()  # a full queue's check and its append, as one
        self._wake = threading.Event()
        self._sending = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="agentrt-span-send", daemon=True)
        self._thread.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        if ctx is None or not ctx.trace_flags.sampled or self._closed:
            return
        with self._queued:
            if len(self._spans) >= self.queue:
                self._spans.popleft()  # the oldest: the segment's own span ends last
                dropped = True
            else:
                dropped = False
            self._spans.append(span)
            waiting = len(self._spans)
        if dropped and hasattr(self._exporter, "drop"):
            self._exporter.drop(self.batch)
        if waiting >= self.batch and not self._wake.is_set():
            self._wake.set()

    def _work(self) -> None:
        while not self._closed:
            self._wake.wait(self.delay)
            self._wake.clear()  # before sending: a batch filling meanwhile wakes it again
            self._send()

    def _send(self) -> None:
        """Send every span there is, a batch at a time; one sender at a time."""
        with self._sending:
            while self._spans:
                with self._queued:
                    count = min(self.batch, len(self._spans))
                    spans = [self._spans.popleft() for _ in range(count)]
                # The exporter's own HTTP calls are not to be traced by an instrumented client.
                token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
                try:
                    self._exporter.export(spans)
                finally:
                    detach(token)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Send every span now, in the caller's thread (the runtime never asks: only a
        caller holding the provider does)."""
        self._send()
        return True

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()
        self._send()
        self._exporter.shutdown()
