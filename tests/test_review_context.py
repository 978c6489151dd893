"""The review page's pieces as values: what an edit changed, and a trace drawn as a
waterfall whose waits for people are cut to a fixed share of the axis."""

from __future__ import annotations

from agentrt.service.ui.context import Change, diff_args
from agentrt.service.ui.waterfall import MIN_WIDTH, WAIT_SHARE, WAITS_SHARE, waterfall
from agentrt.tracing import attributes as A
from agentrt.tracing.view import Trace, TraceSpan


def span(name: str, start: float, end: float, kind: str, *children: TraceSpan) -> TraceSpan:
    return TraceSpan(
        name=name,
        span_id=name,
        parent_id=None,
        start=start,
        end=end,
        status="OK",
        attributes={A.SPAN_KIND: kind},
        links=[],
        events=[],
        children=list(children),
    )


def test_an_edit_is_shown_as_what_it_changed() -> None:
    before = {"order_id": "42", "amount": 89.0, "note": "broken"}
    after = {"order_id": "42", "amount": 60.0, "reason": "partial"}
    assert diff_args(before, after) == [
        Change("amount", 89.0, 60.0, "changed"),
        Change("note", "broken", None, "removed"),
        Change("reason", None, "partial", "added"),
    ]
    assert diff_args(before, dict(before)) == []


def test_an_edit_is_compared_on_the_real_values_and_shown_masked() -> None:
    # Only the hidden account changed: masked alike in both views, it is a change all the same.
    before = {"iban": "DE89370400440532013000", "cents": 100, "pin": "4711"}
    after = {"iban": "GB33BUKB20201555555555", "cents": 100}
    seen_before = {"iban": "[REDACTED:field]", "cents": 100, "pin": "[REDACTED:field]"}
    seen_after = {"iban": "[REDACTED:field]", "cents": 100}
    assert diff_args(before, after, seen_before, seen_after) == [
        Change("iban", "[REDACTED:field]", "[REDACTED:field]", "changed"),
        Change("pin", "[REDACTED:field]", None, "removed"),
    ]
    # A view that drops a field (Redactor mode "drop") still lists its change, values hidden.
    assert diff_args(before, after, {"cents": 100}, {"cents": 100})[0] == (
        Change("iban", "(hidden)", "(hidden)", "changed")
    )


def test_a_day_long_wait_takes_a_fixed_share_and_the_work_keeps_its_scale() -> None:
    day = 86_400.0
    first = span("start", 0.0, 10.0, A.AGENT_RUN, span("chat", 0.0, 4.0, A.LLM_CALL))
    wait = span("await_approval", 10.0, 10.0 + day, A.APPROVAL_WAIT)
    second = span(
        "resume", 10.0 + day, 20.0 + day, A.AGENT_RUN, wait,
        span("tool", 10.0 + day, 15.0 + day, A.TOOL_CALL),
    )  # fmt: skip
    drawn = waterfall(Trace(thread_id="t", trace_id="x", roots=[first, second]))
    bars = {b.name: b for b in drawn.bars}
    assert (drawn.active_seconds, drawn.waited_seconds, drawn.waits) == (20.0, day, 1)
    work = 100 * (1 - WAIT_SHARE)  # 20 s of work share what the wait leaves
    assert bars["chat"].left == 0
    assert bars["chat"].width == round(work * 4 / 20, 3)
    assert bars["await_approval"].kind == "wait"
    assert bars["await_approval"].left == round(work * 10 / 20, 3)
    assert bars["await_approval"].width == round(100 * WAIT_SHARE, 3)
    assert bars["await_approval"].seconds == day
    assert bars["tool"].left == round(work * 10 / 20 + 100 * WAIT_SHARE, 3)
    assert bars["tool"].kind == "tool"
    assert bars["resume"].left + bars["resume"].width == 100
    assert [b.depth for b in drawn.bars] == [0, 1, 0, 1, 1]


def gated_trace(waits: int, hours: float = 1.0) -> Trace:
    """A run stopped at ``waits`` gates, each waited out ``hours``, with 10 s of work before
    each gate and after the last, and a span of no time at its very end."""
    roots, now = [], 0.0
    for i in range(waits + 1):
        children = [span(f"chat {i}", now, now + 4.0, A.LLM_CALL)]
        if i:  # the wait this segment resumed from
            children.insert(0, span(f"wait {i}", now - hours * 3600, now, A.APPROVAL_WAIT))
        if i == waits:
            children.append(span("last", now + 10.0, now + 10.0, A.POLICY_CHECK))
        roots.append(span(f"segment {i}", now, now + 10.0, A.AGENT_RUN, *children))
        now += 10.0 + hours * 3600
    return Trace(thread_id="t", trace_id="x", roots=roots)


def test_many_waits_share_half_the_axis_and_every_bar_stays_on_it() -> None:
    for waits in (1, 6, 7, 13, 200):
        drawn = waterfall(gated_trace(waits))
        assert drawn.waits == waits
        off = [b for b in drawn.bars if b.left < 0 or b.left + b.width > 100]
        assert off == [], (waits, off)
        shares = [b.width for b in drawn.bars if b.kind == "wait"]
        # Up to six waits each keeps its fixed share; past that, half the axis is theirs.
        each = max(MIN_WIDTH, 100 * min(WAIT_SHARE, WAITS_SHARE / waits))
        assert all(abs(share - each) < 0.002 for share in shares), (waits, each, shares)
        # The work keeps its order and its scale: every segment as wide as the others.
        segments = [b for b in drawn.bars if b.name.startswith("segment")]
        assert [b.left for b in segments] == sorted(b.left for b in segments)
        work = 100 - waits * 100 * min(WAIT_SHARE, WAITS_SHARE / waits)
        for b in segments:
            assert abs(b.width - max(MIN_WIDTH, work / (waits + 1))) < 0.002, (waits, b)
    # The span of no time at the very end is drawn at its narrowest, ending at the axis's end.
    last = next(b for b in waterfall(gated_trace(13)).bars if b.name == "last")
    assert (last.left, last.width) == (100 - MIN_WIDTH, MIN_WIDTH)


def test_a_trace_of_waits_alone_or_of_no_time_stays_on_the_axis() -> None:
    only_waits = Trace(
        thread_id="t",
        trace_id="x",
        roots=[span(f"wait {i}", i * 10.0, i * 10.0 + 5.0, A.APPROVAL_WAIT) for i in range(20)],
    )
    no_time = Trace(thread_id="t", trace_id="x", roots=[span("start", 5.0, 5.0, A.AGENT_RUN)])
    for trace in (only_waits, no_time, Trace(thread_id="t", trace_id="x", roots=[])):
        for b in waterfall(trace).bars:
            assert b.left >= 0, b
            assert b.left + b.width <= 100, b
