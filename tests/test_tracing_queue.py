"""The span store's processor keeps every span while the store is slow to take them: a
burst of concurrent runs (or a long segment) outruns any fixed queue, and spans past a
full queue would be dropped without a word."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from agentrt.records import SpanRow
from agentrt.tracing.exporters import make_provider


class SlowSink:
    """A store that takes no spans until released, as one waiting on a write lock."""

    def __init__(self) -> None:
        self.rows: list[SpanRow] = []
        self.released = threading.Event()

    def write_spans(self, rows: Sequence[SpanRow]) -> None:
        self.released.wait(30)
        self.rows.extend(rows)


def test_no_span_is_dropped_while_the_store_is_slow() -> None:
    sink = SlowSink()
    setup = make_provider("sqlite", sink)
    assert setup.provider is not None
    spans = 5_000  # more than OpenTelemetry's default queue of 2,048
    for index in range(spans):
        setup.tracer.start_span(f"span {index}").end()
    sink.released.set()
    assert setup.provider.force_flush(30_000)
    setup.provider.shutdown()
    assert len(sink.rows) == spans
    assert setup.exporter is not None
    assert setup.exporter.failures == 0
