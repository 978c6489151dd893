"""Where a segment's agent.run span sits in its run's one trace, and what it says of the run.

A run is one trace whose id its row keeps. The row also keeps the span id of the last
segment that ended (written once its span is handed to the exporter, never at its start):
a segment that finds none is the run's root, and every later one hangs under that root and
links to the segment before. So a first segment killed mid-way, whose span never left the
process, leaves no dangling root: the next one takes its place.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from langgraph.types import Command
from opentelemetry.trace import Span

from agentrt.records import RunRecord
from agentrt.tracing import RunTracing, new_trace_id

__all__ = ["SegmentTrace", "segment_span", "segment_trace"]


@dataclass(slots=True, kw_only=True)
class SegmentTrace:
    """What one segment's agent.run span is made of."""

    thread_id: str
    trace_id: str
    """The run's trace."""
    previous: str | None
    """The span id of the run's last segment that ended; None: this segment is the root."""
    since: float | None
    """When the wait this segment resumes from began (the first request of its gate)."""
    goal: str
    user: str | None
    """The id of the principal the run acts for."""
    tenant: str | None
    message: int | None = None
    """For a segment that takes a follow-up message: its index (its text is ``goal``)."""
    span_id: str | None = None
    """This segment's own span id, once its span is open."""


def segment_trace(graph: Any, record: RunRecord, graph_input: Any, config: Any) -> SegmentTrace:
    """The trace of the segment about to drive ``record``'s run with ``graph_input``
    (``record``: the row as its driver read it, holding the lease: the trace on it is the
    one the last segment that ended left)."""
    since = None
    goal, message = record.goal, None
    if isinstance(graph_input, dict) and graph_input.get("message"):  # a follow-up taken
        message = int(graph_input["message"])
        said = [e for e in graph_input.get("events", ()) if e["type"] == "message"]
        goal = said[-1]["data"]["text"] if said else goal
    if isinstance(graph_input, Command):  # resuming from a gate: the wait began at its requests
        requests = [
            r
            for i in graph.get_state(config).interrupts
            if isinstance(i.value, dict)
            for r in i.value.get("approvals", ())
        ]
        since = min((float(r["requested_at"]) for r in requests), default=None)
    return SegmentTrace(
        thread_id=record.thread_id,
        trace_id=record.trace_id or new_trace_id(),
        previous=record.trace_span_id,
        since=since,
        goal=goal,
        user=(graph_input.get("principal") if message else record.principal or {}).get("id"),
        tenant=record.tenant,
        message=message,
    )


@contextmanager
def segment_span(tracing: RunTracing, known: SegmentTrace) -> Iterator[Span]:
    """The segment's agent.run span; its id is kept in ``known`` for the row."""
    with tracing.run(
        known.thread_id,
        trace_id=known.trace_id,
        root=known.previous is None,
        previous_span_id=known.previous,
        since=known.since,
        goal=known.goal,
        user=known.user,
        tenant=known.tenant,
        message=known.message,
    ) as span:
        ctx = span.get_span_context()
        known.span_id = format(ctx.span_id, "016x") if ctx.is_valid else None
        yield span
