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
    def kind(self) -> str:
        """What the span is in agentrt's taxonomy (agent.run, agent.step, llm.call, ...):
        its agentrt.span.kind, or, for a span stored before spans had names of their own,
        its name."""
        return str(self.attributes.get(A.SPAN_KIND) or self.name)

    @property
    def label(self) -> str:
        """What happened, beside the name that says what the span is: how a segment ended,
        a model call's tokens, a tool's outcome, a policy decision, who decided. A span
        named by its kind alone (stored before) also says its step or tool."""
        a = self.attributes
        kind = self.kind
        old = self.name == kind
        if kind == A.AGENT_RUN:
            return f"{a.get(A.SEGMENT, '')} -> {a.get(A.RUN_STATUS, '?')}"
        if kind == A.AGENT_STEP:
            said = [str(a[k]) for k in (A.STEP_KIND, A.STEP_ID) if old and k in a]
            if a.get(A.RETRY_COUNT):
                said.append(f"retry {a[A.RETRY_COUNT]}")
            if a.get(A.INTERRUPTED):
                said.append("(waits for a person)")
            return " ".join(said)
        if kind == A.LLM_CALL:
            model = f"{a.get(A.GEN_AI_REQUEST_MODEL) or 'model'}: " if old else ""
            if A.GEN_AI_INPUT_TOKENS not in a:
                return model.rstrip(": ")
            tokens = f"{a[A.GEN_AI_INPUT_TOKENS]} in, {a.get(A.GEN_AI_OUTPUT_TOKENS, 0)} out"
            return f"{model}{tokens}"
        tool = a.get(A.TOOL_NAME) or a.get(A.GEN_AI_TOOL_NAME)
        named = f"{tool}: " if old and tool else ""
        if kind == A.TOOL_CALL:
            phase = a.get(A.TOOL_PHASE)
            named = f"{named}{phase}: " if phase and phase != "call" else named
            return f"{named}{a.get(A.TOOL_OUTCOME, '?')}"
        if kind == A.POLICY_CHECK:
            return f"{named}{a.get(A.POLICY_DECISION)} ({a.get(A.POLICY_RULE)})"
        if kind == A.APPROVAL_WAIT:
            return f"{named}{a.get(A.APPROVAL_STATUS)} by {a.get(A.APPROVAL_DECIDED_BY)}"
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
            "kind": self.kind,
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
    """The run's root segment, with every later segment under it (and any span whose
    parent was not stored; a run traced before it had one root has one a segment)."""

    def spans(self) -> Iterator[tuple[int, TraceSpan]]:
        """Every span, depth first, with its depth."""
        for root in self.roots:
            yield from root.walk()

    def segments(self) -> list[TraceSpan]:
        """The agent.run spans, one a segment, in start order."""
        found = [span for _, span in self.spans() if span.kind == A.AGENT_RUN]
        return sorted(found, key=lambda s: (s.start, s.end))

    def time_went(self) -> dict[str, float]:
        """Seconds per category: model, tools, policy, waiting for people, runtime overhead.

        Runtime overhead is the segments' time not spent in the model, tools or policy:
        checkpoints, the store, the graph. A segment resumed from a gate begins when the
        wait for the person did; only the time since it was driven counts.
        """
        totals = dict.fromkeys(CATEGORIES, 0.0)
        running = 0.0
        for _, span in self.spans():
            if span.kind == A.AGENT_RUN:
                began = span.attributes.get(A.DRIVEN_FROM)
                driven = began if isinstance(began, int | float) else span.start
                running += max(0.0, span.end - max(span.start, driven))
            elif span.kind in _CATEGORY_OF:
                totals[_CATEGORY_OF[span.kind]] += span.duration
        busy = totals["model"] + totals["tools"] + totals["policy"]
        totals["runtime overhead"] = max(0.0, running - busy)
        return totals

    def render(self) -> str:
        """The tree with durations, then the summary, as text."""
        segments = len(self.segments())
        lines = [f"trace {self.trace_id}  run {self.thread_id}  ({segments} segment(s))"]
        rows = [("  " * depth + span.name, span) for depth, span in self.spans()]
        width = max([24, *(len(name) for name, _ in rows)])
        for name, span in rows:
            mark = "  ERROR" if span.status == "ERROR" else ""
            line = f"{name:<{width}} {format_seconds(span.duration):>10}  {span.label}{mark}"
            lines.append(line.rstrip())
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
