"""A run's trace as a waterfall: each span a bar on one time axis, indented by depth, with
the waits for people drawn apart.

A wait for a person can last days while the work around it takes seconds; on one linear
axis every other bar would shrink to nothing. So each wait is cut to a fixed share of the
axis (a break, labelled with how long it really was), and the rest of the axis is the
run's active time, at scale. Many waits share at most ``WAITS_SHARE`` between them, so a
run approved again and again keeps its work on the axis, and every bar within 0-100%.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentrt.tracing import attributes as A
from agentrt.tracing.view import Trace, TraceSpan

__all__ = ["Bar", "Waterfall", "waterfall"]

WAIT_SHARE = 0.08
"""The part of the axis one wait for a person takes, however long it was (while the waits
together take no more than ``WAITS_SHARE``)."""

WAITS_SHARE = 0.5
"""The most of the axis all the waits together take, however many: the run's work is drawn
on the rest (past six waits, each takes this divided by their number)."""

MIN_WIDTH = 0.4
"""The narrowest a bar is drawn, in percent: a span of no time is still seen."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One span as drawn: where its bar starts and how wide it is, in percent of the axis."""

    name: str
    label: str
    depth: int
    left: float
    width: float
    seconds: float
    """How long the span really took."""
    kind: str
    """"wait" (a person), "model", "tool", "policy", "error" or "step"."""


@dataclass(frozen=True, slots=True)
class Waterfall:
    """The bars in start order, and the totals the axis is made of."""

    bars: list[Bar]
    active_seconds: float
    """Time not spent waiting for a person, from the first span's start to the last end."""
    waited_seconds: float
    """Time spent waiting for people (drawn apart, not to scale)."""
    waits: int


def waterfall(trace: Trace) -> Waterfall:
    """Draw ``trace``: every span, depth first in start order."""
    spans = [(depth, span) for root in trace.roots for depth, span in root.walk()]
    if not spans:
        return Waterfall([], 0.0, 0.0, 0)
    waits = _merged([(s.start, s.end) for _, s in spans if s.kind == A.APPROVAL_WAIT])
    start = min(s.start for _, s in spans)
    end = max(s.end for _, s in spans)
    waited = sum(b - a for a, b in waits)
    active = max(0.0, end - start - waited)
    # A fixed share a wait would leave nothing (13 waits: less than nothing, and the
    # work's scale would turn negative) for the work past a dozen waits.
    each = min(WAIT_SHARE, WAITS_SHARE / len(waits)) if waits else 0.0
    scale = (100.0 * (1 - each * len(waits)) / active) if active > 0 else 0.0
    wait_width = 100.0 * each

    def at(moment: float) -> float:
        """Where ``moment`` falls on the axis, in percent."""
        x, last = 0.0, start
        for a, b in waits:
            if moment <= a:
                break
            x += (a - last) * scale
            if moment < b:
                return x + wait_width * (moment - a) / (b - a)
            x += wait_width
            last = b
        return min(100.0, x + max(0.0, moment - last) * scale)

    bars = []
    for depth, span in spans:
        left, right = round(at(span.start), 3), round(at(span.end), 3)
        width = round(max(MIN_WIDTH, right - left), 3)
        # A span of no time at the very end is drawn ending there, not past the axis.
        left = min(left, round(100.0 - width, 3))
        bars.append(
            Bar(
                name=span.name,
                label=span.label,
                depth=depth,
                left=left,
                width=width,
                seconds=span.duration,
                kind=_kind(span),
            )
        )
    return Waterfall(bars, active, waited, len(waits))


def _merged(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping waits (two requests at one gate) as one."""
    merged: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        elif b > a:
            merged.append((a, b))
    return merged


def _kind(span: TraceSpan) -> str:
    if span.kind == A.APPROVAL_WAIT:
        return "wait"
    if span.status == "ERROR":
        return "error"
    return {A.LLM_CALL: "model", A.TOOL_CALL: "tool", A.POLICY_CHECK: "policy"}.get(
        span.kind, "step"
    )
