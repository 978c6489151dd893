"""A run's trace read back from the span store: a tree with durations and where time went."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agentrt.records import SpanRow
from agentrt.tracing import attributes as A

__all__ = ["CATEGORIES", "Trace", "TraceSpan", "build_trace", "format_seconds"]

CATEGORIES = ("model", "tools", "policy", "waiting for people", "runtime overhead")
"""The summary's lines, in the order they print."""

_CATEGORY_OF = {
    A.LLM_CALL: "model",
    A.TOOL_CALL: "tools",
    A.POLICY_CHECK: "policy",
    A.APPROVAL_WAIT: "waiting for people",
}


@dataclass(slots=True)
class TraceSpan:
    """One span of a run's trace, with its children in start order."""

    name: str
    span_id: str
    parent_id: str | None
    start: float
    """Epoch seconds."""
    end: float
    """Epoch seconds."""
    status: str
    attributes: dict[str, Any]
    links: list[dict[str, Any]]
    events: list[dict[str, Any]]
    children: list[TraceSpan] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return max(0.0, self.end - self.start)

    @property
    def label(self) -> str:
        """A short description: the step kind, the model, the tool and what happened."""
        a = self.attributes
        if self.name == A.AGENT_RUN:
            return f"{a.get(A.SEGMENT, '')} -> {a.get(A.RUN_STATUS, '?')}"
        if self.name == A.AGENT_STEP:
            step = f" {a[A.STEP_ID]}" if A.STEP_ID in a else ""
            gate = " (waits for a person)" if a.get(A.INTERRUPTED) else ""
            return f"{a.get(A.STEP_KIND, '?')}{step}{gate}"
        if self.name == A.LLM_CALL:
            return str(a.get(A.GEN_AI_REQUEST_MODEL) or "model")
        if self.name == A.TOOL_CALL:
            phase = a.get(A.TOOL_PHASE)
            extra = f" {phase}" if phase and phase != "call" else ""
            return f"{a.get(A.GEN_AI_TOOL_NAME)}{extra}: {a.get(A.TOOL_OUTCOME, '?')}"
        if self.name == A.POLICY_CHECK:
            return (
                f"{a.get(A.GEN_AI_TOOL_NAME)}: {a.get(A.POLICY_DECISION)} ({a.get(A.POLICY_RULE)})"
            )
        if self.name == A.APPROVAL_WAIT:
            return (
                f"{a.get(A.GEN_AI_TOOL_NAME)}: {a.get(A.APPROVAL_STATUS)} "
                f"by {a.get(A.APPROVAL_DECIDED_BY)}"
            )
        return ""

    def walk(self) -> Iterator[tuple[int, TraceSpan]]:
        """This span and its descendants, depth first, with their depth."""
        stack: list[tuple[int, TraceSpan]] = [(0, self)]
        while stack:
            depth, span = stack.pop()
            yield depth, span
            stack.extend((depth + 1, c) for c in reversed(span.children))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "start": self.start,
            "end": self.end,
            "duration": self.duration,
            "status": self.status,
            "attributes": self.attributes,
            "links": self.links,
            "events": self.events,
            "children": [c.to_dict() for c in self.children],
        }


@dataclass(slots=True)
class Trace:
    """A run's spans as a tree (one root per segment) and a summary of where time went."""

    thread_id: str
    trace_id: str
    roots: list[TraceSpan]
    """agent.run segments in start order (and any span whose parent was not stored)."""

    def spans(self) -> Iterator[tuple[int, TraceSpan]]:
        """Every span, depth first, with its depth."""
        for root in self.roots:
            yield from root.walk()

    def time_went(self) -> dict[str, float]:
        """Seconds per category: model, tools, policy, waiting for people, runtime overhead.

        Runtime overhead is the segments' time not spent in the model, tools or policy:
        checkpoints, the store, the graph. Waiting happens between segments.
        """
        totals = dict.fromkeys(CATEGORIES, 0.0)
        running = 0.0
        for _, span in self.spans():
            if span.name == A.AGENT_RUN:
                running += span.duration
            elif span.name in _CATEGORY_OF:
                totals[_CATEGORY_OF[span.name]] += span.duration
        busy = totals["model"] + totals["tools"] + totals["policy"]
        totals["runtime overhead"] = max(0.0, running - busy)
        return totals

    def render(self) -> str:
        """The tree with durations, then the summary, as text."""
        lines = [f"trace {self.trace_id}  run {self.thread_id}  ({len(self.roots)} segment(s))"]
        for depth, span in self.spans():
            name = "  " * depth + span.name
            mark = "  ERROR" if span.status == "ERROR" else ""
            lines.append(f"{name:<24} {format_seconds(span.duration):>10}  {span.label}{mark}")
        went = self.time_went()
        total = sum(went.values())
        lines.append("")
        lines.append("where time went:")
        for category in CATEGORIES:
            share = went[category] / total * 100 if total else 0.0
            lines.append(f"  {category:<20} {format_seconds(went[category]):>10}  {share:5.1f}%")
        lines.append(f"  {'total':<20} {format_seconds(total):>10}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        went = self.time_went()
        return {
            "thread_id": self.thread_id,
            "trace_id": self.trace_id,
            "spans": [r.to_dict() for r in self.roots],
            "time_went": went,
            "total_seconds": sum(went.values()),
        }


def format_seconds(seconds: float) -> str:
    """A duration as a person reads it: 1.5h, 2.0m, 3.20s, 45.1ms."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.1f}m"
    if seconds >= 1:
        return f"{seconds:.2f}s"
    return f"{seconds * 1000:.1f}ms"


def build_trace(thread_id: str, trace_id: str, rows: Iterable[SpanRow]) -> Trace:
    """Assemble stored spans into a tree; a span whose parent is missing becomes a root."""
    spans = {
        r.span_id: TraceSpan(
            name=r.name,
            span_id=r.span_id,
            parent_id=r.parent_id,
            start=r.start_ns / 1e9,
            end=(r.end_ns if r.end_ns is not None else r.start_ns) / 1e9,
            status=r.status,
            attributes=r.attributes,
            links=r.links,
            events=r.events,
        )
        for r in rows
    }
    roots: list[TraceSpan] = []
    for span in spans.values():
        parent = spans.get(span.parent_id) if span.parent_id else None
        (parent.children if parent is not None else roots).append(span)
    for span in spans.values():
        span.children.sort(key=lambda s: (s.start, s.end))
    roots.sort(key=lambda s: (s.start, s.end))
    return Trace(thread_id=thread_id, trace_id=trace_id, roots=roots)
