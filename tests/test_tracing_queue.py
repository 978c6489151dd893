"""The span store's processor (agentrt.tracing.store_spans) keeps every span while the store
is slow to take them: a burst of concurrent runs (or a long segment) outruns any fixed
queue, and spans past a full queue would be dropped without a word. It writes them as the
rows the store keeps, in batches, from a thread of its own."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from opentelemetry import trace

from agentrt.records import SpanRow
from agentrt.tracing import attributes as A
from agentrt.tracing import store_spans
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


class RecordingSink:
    """A store that takes every batch at once and says when one arrives."""

    def __init__(self) -> None:
        self.batches: list[list[SpanRow]] = []
        self.arrived = threading.Event()

    def write_spans(self, rows: Sequence[SpanRow]) -> None:
        self.batches.append(list(rows))
        self.arrived.set()


def test_a_full_batch_is_written_by_the_processors_thread_without_a_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_spans, "DELAY", 60.0)  # only a full batch wakes the thread
    sink = RecordingSink()
    setup = make_provider("sqlite", sink)
    assert setup.provider is not None
    parent = setup.tracer.start_span("parent", attributes={A.RUN_ID: "t-1"})
    with trace.use_span(parent, end_on_exit=False):
        for index in range(store_spans.BATCH):
            setup.tracer.start_span(f"span {index}", attributes={"n": index}).end()
    assert sink.arrived.wait(30)
    (batch,) = sink.batches
    assert [row.name for row in batch] == [f"span {i}" for i in range(store_spans.BATCH)]
    first = batch[0]
    assert isinstance(first, SpanRow)
    assert first.parent_id == f"{parent.get_span_context().span_id:016x}"
    assert first.trace_id == f"{parent.get_span_context().trace_id:032x}"
    assert first.attributes == {"n": 0}
    assert first.end_ns is not None
    assert first.end_ns >= first.start_ns
    parent.end()
    setup.provider.shutdown()  # what is left goes as the processor closes
    assert [row.name for row in sink.batches[-1]] == ["parent"]
    assert sink.batches[-1][0].thread_id == "t-1"


def test_rows_are_written_a_delay_after_they_end_without_a_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_spans, "DELAY", 0.05)
    sink = RecordingSink()
    setup = make_provider("sqlite", sink)
    assert setup.provider is not None
    setup.tracer.start_span("lonely").end()
    assert sink.arrived.wait(30)
    assert [[row.name for row in batch] for batch in sink.batches] == [["lonely"]]
    setup.provider.shutdown()


def test_a_forked_child_writes_its_spans_from_a_thread_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_spans, "DELAY", 0.05)
    sink = RecordingSink()
    setup = make_provider("sqlite", sink)
    assert setup.provider is not None

    def written() -> bool:  # a thread that is not there would never write this span
        setup.tracer.start_span("in the child").end()
        return sink.arrived.wait(30) and sink.batches[0][0].name == "in the child"

    assert _in_a_child(written)
    setup.provider.shutdown()
    assert sink.batches == []  # the child's rows were the child's


def test_a_span_that_cannot_be_made_a_row_is_counted_lost_and_its_run_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    made = store_spans.span_row

    def row_of(span: Any) -> SpanRow:
        if span.name == "odd":
            raise ValueError("an attribute the store cannot keep")
        return made(span)

    monkeypatch.setattr(store_spans, "span_row", row_of)
    sink = RecordingSink()
    setup = make_provider("sqlite", sink)
    assert setup.provider is not None
    assert setup.exporter is not None
    with caplog.at_level(logging.WARNING, logger="agentrt"):
        setup.tracer.start_span("odd").end()  # ends without raising into the run
    setup.tracer.start_span("fine").end()
    assert setup.provider.force_flush(30_000)
    assert [row.name for batch in sink.batches for row in batch] == ["fine"]
    assert setup.exporter.failures == 1
    assert "the sqlite span exporter failed on 1 span(s)" in caplog.text
    setup.provider.shutdown()


def test_a_processor_shut_down_before_a_fork_stays_shut_down_in_the_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_spans, "DELAY", 0.05)
    sink = RecordingSink()
    setup = make_provider("sqlite", sink)
    assert setup.provider is not None
    setup.provider.shutdown()
    assert setup.exporter is not None

    def not_taken() -> bool:  # taken, this span would go to an exporter with no store
        assert setup.provider is not None
        assert setup.exporter is not None
        setup.tracer.start_span("after the close").end()
        setup.provider.force_flush()
        return setup.exporter.failures == 0 and not sink.batches

    assert _in_a_child(not_taken)


def _in_a_child(check: Callable[[], bool]) -> bool:
    """``check`` run in a forked child of this process: whether it held there."""
    pid = os.fork()
    if pid == 0:  # the child never returns: its answer is its exit status
        held = False
        try:
            held = check()
        finally:
            os._exit(0 if held else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0
