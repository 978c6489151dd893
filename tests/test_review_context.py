"""The review page's pieces as values: what an edit changed, and a trace drawn as a
waterfall whose waits for people are cut to a fixed share of the axis."""

from __future__ import annotations

from agentrt.service.ui.context import Change, diff_args
from agentrt.service.ui.waterfall import WAIT_SHARE, waterfall
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
