"""The event log's vocabulary: every kind has a type, a constructor and a description, and
every surface says an event in the same words."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, NotRequired, get_args, get_origin, get_type_hints, is_typeddict

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from agentrt import events
from agentrt.approvals import ApprovalRequest, ApprovalStatus
from agentrt.events import (
    KINDS,
    approval_event,
    as_messages,
    describe,
    finish_event,
    message_event,
    observation_event,
    plan_event,
    policy_changed_event,
    policy_event,
)
from agentrt.nodes.common import public_request
from agentrt.service.ui import views
from agentrt.state import Action, Event, Observation, PolicyVerdict

LOOKUP = Action(step_id="1.0", call_id="c1", tool="lookup_order", args={"order_id": "42"})
REFUND = Action(
    step_id="2.0", call_id="c2", tool="issue_refund", args={"order_id": "42", "amount": 89.0}
)
VERDICT = PolicyVerdict(
    step_id="2.0",
    outcome="require_approval",
    rule_id="large-refunds",
    matched=["large-refunds"],
    reason="Refunds over $50 need a refund approver.",
    required_role="refund-approver",
    required_roles=["refund-approver"],
    four_eyes=False,
    expires_in=None,
    policy="refund-desk",
    policy_version="v1",
    on_expiry="reject",
    escalate_to=None,
)
REQUEST = ApprovalRequest(
    id="apr_1",
    thread_id="t1",
    step_id="2.0",
    kind="action",
    tool="issue_refund",
    args={"order_id": "42", "amount": 89.0},
    args_digest="d1",
    rule_id="large-refunds",
    reason="Refunds over $50 need a refund approver.",
    required_role="refund-approver",
    four_eyes=False,
    requested_by="alice",
    tenant="acme",
    requested_at=1_800_000_000.0,
    expires_at=None,
)


def _decided(**changes: Any) -> dict[str, Any]:
    """REQUEST as decided, as plain data (what the approval node logs)."""
    return public_request(dataclasses.replace(REQUEST, decided_at=1_800_000_060.0, **changes))


def _observed(kind: str, content: str, retries: int = 0) -> Observation:
    obs = Observation(step_id="2.0", call_id="c2", tool="issue_refund", kind=kind, content=content)
    if retries:
        obs["retries"] = retries
    return obs


# One event (at least) of every kind, made by its constructor, with the line it reads as.
SAID: list[tuple[Event, str]] = [
    (
        plan_event(1, "Checking the order.", [LOOKUP]),
        'plan #1: Checking the order. -> lookup_order({"order_id": "42"})',
    ),
    (plan_event(2, "", [REFUND]), 'plan #2: issue_refund({"order_id": "42", "amount": 89.0})'),
    (plan_event(3, "Refunded.", []), "plan #3: answer: Refunded."),
    (
        policy_event(VERDICT),
        "policy 2.0: require_approval (large-refunds: Refunds over $50 need a refund approver.) "
        "matched: large-refunds; policy refund-desk@v1",
    ),
    (
        policy_event(
            {**VERDICT, "outcome": "deny", "rule_id": None, "matched": [], "reason": "default"}
        ),
        "policy 2.0: deny (default) matched: none; policy refund-desk@v1",
    ),
    (
        policy_changed_event(
            from_policy="refund-desk", from_version="v1", to_policy="refund-desk", to_version="v2"
        ),
        "policy changed: refund-desk@v1 -> refund-desk@v2",
    ),
    (
        approval_event(_decided(status=ApprovalStatus.APPROVED, decided_by="bob")),
        "approval 2.0: issue_refund approved by bob",
    ),
    (
        approval_event(
            _decided(status=ApprovalStatus.REJECTED, decided_by="bob", comment="duplicate claim")
        ),
        "approval 2.0: issue_refund rejected by bob: duplicate claim",
    ),
    (
        approval_event(
            _decided(
                status=ApprovalStatus.EDITED,
                decided_by="bob",
                edited_args={"order_id": "42", "amount": 40},
            )
        ),
        'approval 2.0: issue_refund edited to {"order_id": "42", "amount": 40} by bob',
    ),
    (
        approval_event(_decided(status=ApprovalStatus.EXPIRED)),
        "approval 2.0: issue_refund expired",
    ),
    (
        approval_event(
            _decided(kind="reconcile", status=ApprovalStatus.RESOLVED, decided_by="bob")
        ),
        "reconcile 2.0: issue_refund resolved by bob",
    ),
    (
        approval_event(
            _decided(
                kind="budget",
                tool="",
                args={"limit": "max_tool_calls", "allowed": 2, "used": 2, "requested": 1},
                status=ApprovalStatus.EDITED,
                edited_args={"max_tool_calls": 3},
                decided_by="fin",
            )
        ),
        "budget max_tool_calls: raised to 3 by fin",
    ),
    (
        observation_event(_observed("ok", '{"refund_id": "rf_1"}')),
        'result 2.0: issue_refund: [ok] {"refund_id": "rf_1"}',
    ),
    (
        observation_event(_observed("transient", "connection reset", retries=2)),
        "result 2.0: issue_refund: [transient] (after 2 retries) connection reset",
    ),
    (finish_event("succeeded", "Refunded.", None), "finish: succeeded"),
    (
        finish_event("failed", None, "the run went round a loop"),
        "finish: failed: the run went round a loop",
    ),
    (message_event(1, "And order 43?", "alice"), "message: #1 from alice: And order 43?"),
    (
        message_event(2, "Stop, refund 44 instead.", "bob", interrupted=1),
        "message: #2 from bob (interrupting #1): Stop, refund 44 instead.",
    ),
]


def test_every_kind_in_the_event_type_has_a_type_a_constructor_and_a_description() -> None:
    # Fails when a kind is added to Event["type"] without its entry in agentrt.events.
    declared = set(get_args(get_type_hints(Event)["type"]))
    assert declared == set(KINDS)
    for kind, known in KINDS.items():
        assert is_typeddict(known.data), kind
        assert known.make is getattr(events, f"{kind}_event"), kind
        assert callable(known.describe), kind
        assert callable(known.messages), kind
    assert {event["type"] for event, _ in SAID} == declared  # the walk below covers each


@pytest.mark.parametrize(("event", "line"), SAID, ids=[e["type"] for e, _ in SAID])
def test_each_kind_is_made_typed_and_said_in_one_line(event: Event, line: str) -> None:
    hints = get_type_hints(KINDS[event["type"]].data, include_extras=True)
    required = {k for k, hint in hints.items() if get_origin(hint) is not NotRequired}
    assert required <= set(event["data"]) <= set(hints)
    json.dumps(event)  # plain data, as the checkpoint keeps it
    assert describe(event) == line
    assert "\n" not in line
    assert "None" not in line


def test_events_keep_the_shape_earlier_versions_stored() -> None:
    assert plan_event(3, "Refunded.", []) == {
        "type": "plan",
        "data": {"revision": 3, "content": "Refunded.", "actions": []},
    }
    assert policy_event(VERDICT) == {"type": "policy", "step_id": "2.0", "data": dict(VERDICT)}
    assert policy_changed_event(
        from_policy="p", from_version="1", to_policy="p", to_version="2"
    ) == {
        "type": "policy_changed",
        "data": {"from_policy": "p", "from_version": "1", "to_policy": "p", "to_version": "2"},
    }
    request = _decided(status=ApprovalStatus.APPROVED, decided_by="bob")
    assert approval_event(request) == {"type": "approval", "step_id": "2.0", "data": request}
    obs = _observed("ok", "{}")
    assert observation_event(obs) == {"type": "observation", "step_id": "2.0", "data": dict(obs)}
    assert finish_event("cancelled", None, "stop") == {
        "type": "finish",
        "data": {"status": "cancelled", "output": None, "error": "stop"},
    }


def test_approval_data_names_every_field_of_a_request() -> None:
    fields = {f.name for f in dataclasses.fields(ApprovalRequest)} | {"waited_seconds"}
    assert set(get_type_hints(events.ApprovalData)) == fields
    assert set(_decided(status=ApprovalStatus.APPROVED)) == fields


def test_old_partial_and_unknown_events_still_read_as_words() -> None:
    old = [
        {"type": "approval", "step_id": "2.0", "data": {"tool": "t", "status": "approved"}},
        {"type": "policy", "step_id": "1.0", "data": {"outcome": "allow"}},
        {"type": "plan", "data": {"revision": 0}},
        {"type": "finish", "data": {}},
        {"type": "observation", "data": {"tool": "t", "kind": "ok"}},
        {"type": "policy_changed", "data": {"to_policy": "p", "to_version": "2"}},
    ]
    assert [describe(e) for e in old] == [
        "approval 2.0: t approved",
        "policy 1.0: allow (no rule) matched: none; policy ?@?",
        "plan #0: answer: (no text)",
        "finish: ?",
        "result: t: [ok]",
        "policy changed: ?@? -> p@2",
    ]
    assert describe({"type": "checkpointed", "data": {"n": 1}}) == 'checkpointed: {"n": 1}'
    assert describe({"type": "plan", "data": "[REDACTED]"}) == "plan #?: answer: (no text)"


def test_free_text_is_folded_to_one_line_and_cut_to_the_width() -> None:
    long = plan_event(4, "first line\n\n  second line " + "x" * 200, [])
    assert describe(long) == "plan #4: answer: first line second line " + "x" * 54 + "..."
    assert len(describe(long, width=40)) == len("plan #4: answer: ") + 40
    assert describe(long, width=None).endswith("x" * 200)
    args = {"note": "y" * 100}
    call = plan_event(5, "", [Action(step_id="5.0", call_id="c", tool="note", args=args)])
    assert describe(call) == 'plan #5: note({"note": "' + "y" * 27 + "...)"


def test_the_planner_sees_plans_observations_and_messages_and_nothing_else() -> None:
    log = [event for event, _ in SAID]
    messages = as_messages(log)
    assert [type(m) for m in messages] == [AIMessage] * 3 + [ToolMessage] * 2 + [HumanMessage] * 2
    assert [m.content for m in messages[5:]] == ["And order 43?", "Stop, refund 44 instead."]
    assert messages[0].tool_calls == [
        {"id": "c1", "name": "lookup_order", "args": {"order_id": "42"}, "type": "tool_call"}
    ]
    ok, failed = messages[3], messages[4]
    assert isinstance(ok, ToolMessage)
    assert isinstance(failed, ToolMessage)
    assert (ok.content, ok.status, ok.tool_call_id) == ('{"refund_id": "rf_1"}', "success", "c2")
    assert (failed.content, failed.status) == ("[transient] connection reset", "error")


def test_the_review_page_says_every_kind_in_the_same_words() -> None:
    for event, line in SAID:
        row = views.step(0, event)
        assert row["line"] == line
        assert row["type"] == event["type"]


def test_a_plan_keeps_its_blocks_only_when_its_text_is_not_all_of_them() -> None:
    thinking = {"type": "thinking", "thinking": "Look it up first.", "signature": "sig-1"}
    kept = plan_event(1, "", [LOOKUP], blocks=[thinking])
    assert kept["data"] == {
        "revision": 1,
        "content": "",
        "actions": [dict(LOOKUP)],
        "blocks": [thinking],
    }
    json.dumps(kept)  # plain data, as the checkpoint keeps it
    assert describe(kept) == 'plan #1: lookup_order({"order_id": "42"})'
    [turn] = as_messages([kept])
    assert (turn.content, [c["id"] for c in turn.tool_calls]) == ([thinking], ["c1"])
    # No blocks (a text answer, or a log an earlier version wrote): the turn is its text.
    [said] = as_messages([plan_event(2, "Refunded.", [])])
    assert said.content == "Refunded."
