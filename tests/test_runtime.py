"""The runtime end to end, in one process: the demo's gate, decisions, refusals, failures."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from pydantic import PrivateAttr

from agentrt import (
    AgentRuntime,
    AlreadyDecided,
    ApprovalExpired,
    Budget,
    ConfigError,
    Decision,
    InvalidDecision,
    NotAuthorized,
    Policy,
    Principal,
    RunBusy,
    RunStatus,
    ToolContext,
    UnknownRun,
    tool,
)
from agentrt.approvals.model import Decided
from agentrt.budget import empty_usage
from agentrt.errors import ThreadTaken
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR, payments_path
from agentrt.records import LeaseRecord, NewRun
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import FakeClock, Ids

SECOND_APPROVER = Principal("cara", roles=["refund-approver"], tenant="acme")


def summary(rt: AgentRuntime, thread_id: str) -> list[tuple[str, ...]]:
    """The event log in one line per event, for asserting a whole run at once."""
    rows: list[tuple[str, ...]] = []
    for e in rt.events(thread_id):
        d = e["data"]
        if e["type"] == "plan":
            rows.append(
                ("plan", *(a["tool"] for a in d["actions"]))
                if d["actions"]
                else ("answer", d["content"])
            )
        elif e["type"] == "policy":
            rows.append(("policy", e["step_id"], d["outcome"], str(d["rule_id"])))
        elif e["type"] == "approval":
            rows.append(("approval", e["step_id"], d["status"], str(d["decided_by"])))
        elif e["type"] == "observation":
            rows.append(("observed", e["step_id"], d["tool"], d["kind"]))
        elif e["type"] == "policy_changed":
            rows.append(("policy_changed", d["to_version"]))
        else:
            rows.append(("finish", d["status"]))
    return rows


def refunds(db: Path) -> list[tuple[str, float]]:
    path = payments_path(db)
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT order_id, amount FROM refunds ORDER BY rowid").fetchall()


def table(db: Path, name: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT * FROM {name} ORDER BY 1").fetchall()


UP_TO_GATE = [
    ("plan", "lookup_order"),
    ("policy", "0.0", "allow", "reads"),
    ("observed", "0.0", "lookup_order", "ok"),
    ("plan", "lookup_customer", "add_order_note"),
    ("policy", "1.0", "allow", "reads"),
    ("observed", "1.0", "lookup_customer", "ok"),
    ("policy", "1.1", "allow", "notes"),
    ("observed", "1.1", "add_order_note", "ok"),
    ("plan", "issue_refund"),
    ("policy", "2.0", "require_approval", "large-refunds"),
]


def test_demo_stops_at_the_gate_and_finishes_when_approved(desk: AgentRuntime, db: Path) -> None:
    run = desk.start(GOAL, principal=OPERATOR)

    assert run.status is RunStatus.AWAITING_APPROVAL
    req = run.pending_approval
    assert req is not None
    assert (
        req.tool,
        req.args,
        req.rule_id,
        req.required_role,
        req.four_eyes,
        req.requested_by,
    ) == (
        "issue_refund",
        {"order_id": "42", "amount": 89.0},
        "large-refunds",
        "refund-approver",
        True,
        "alice",
    )
    assert summary(desk, run.thread_id) == UP_TO_GATE
    assert desk.approvals(tenant="acme") == [req]
    assert desk.runs(status="awaiting_approval") == [run]
    assert refunds(db) == []  # nothing irreversible happened before the decision

    done = desk.decide(Decision.approve(req.id, by=APPROVER))

    assert done.status is RunStatus.SUCCEEDED
    assert done.output == "Refunded $89.00 to Dana Reyes for order 42 and noted the broken blender."
    assert done.pending_approval is None
    assert summary(desk, run.thread_id) == [
        *UP_TO_GATE,
        ("approval", "2.0", "approved", "bob"),
        ("observed", "2.0", "issue_refund", "ok"),
        ("answer", done.output),
        ("finish", "succeeded"),
    ]
    assert refunds(db) == [("42", 89.0)]
    assert done.usage["steps"] == 4
    assert done.usage["tool_calls"] == 4
    assert done.usage["input_tokens"] > 0
    assert desk.approvals() == []
    assert desk.get(run.thread_id) == done


def test_rejection_is_observed_by_the_planner(desk: AgentRuntime, db: Path) -> None:
    run = desk.start(GOAL, principal=OPERATOR)
    assert run.pending_approval is not None

    done = desk.decide(
        Decision.reject(run.pending_approval.id, by=APPROVER, reason="outside the return window")
    )

    assert done.status is RunStatus.SUCCEEDED
    assert done.output is not None
    assert done.output.startswith("I did not refund order 42: [rejected] 'bob' rejected")
    assert "outside the return window" in done.output
    assert summary(desk, run.thread_id)[-4:] == [
        ("approval", "2.0", "rejected", "bob"),
        ("observed", "2.0", "issue_refund", "rejected"),
        ("answer", done.output),
        ("finish", "succeeded"),
    ]
    assert refunds(db) == []


def test_an_edit_goes_back_through_policy(desk: AgentRuntime, db: Path) -> None:
    run = desk.start(GOAL, principal=OPERATOR)
    assert run.pending_approval is not None

    done = desk.decide(
        Decision.edit(
            run.pending_approval.id,
            args={"order_id": "42", "amount": 40},
            by=APPROVER,
            reason="partial refund",
        )
    )

    assert done.status is RunStatus.SUCCEEDED
    assert summary(desk, run.thread_id)[-6:] == [
        ("policy", "2.0", "require_approval", "large-refunds"),
        ("approval", "2.0", "edited", "bob"),
        ("policy", "2.0", "allow", "small-refunds"),  # the edit was checked like a new action
        ("observed", "2.0", "issue_refund", "ok"),
        ("answer", done.output or ""),
        ("finish", "succeeded"),
    ]
    assert refunds(db) == [("42", 40.0)]
    [record] = desk.approvals(status="edited")
    assert (record.args, record.edited_args) == (
        {"order_id": "42", "amount": 89.0},
        {"order_id": "42", "amount": 40.0},
    )


def test_an_edit_that_still_needs_approval_asks_again(desk: AgentRuntime) -> None:
    run = desk.start(GOAL, principal=OPERATOR)
    assert run.pending_approval is not None
    first = run.pending_approval.id

    again = desk.decide(Decision.edit(first, args={"order_id": "42", "amount": 60.0}, by=APPROVER))

    assert again.status is RunStatus.AWAITING_APPROVAL
    assert again.pending_approval is not None
    assert again.pending_approval.id != first
    assert again.pending_approval.args == {"order_id": "42", "amount": 60.0}
    # Under four-eyes the editor asked for the new amount: another approver decides it.
    assert again.pending_approval.edited_by == APPROVER.id
    with pytest.raises(NotAuthorized, match="'bob' edited the action into"):
        desk.decide(Decision.approve(again.pending_approval.id, by=APPROVER))
    done = desk.decide(Decision.approve(again.pending_approval.id, by=SECOND_APPROVER))
    assert done.status is RunStatus.SUCCEEDED


def _snapshot(db: Path) -> list[list[tuple[Any, ...]]]:
    return [table(db, t) for t in ("runs", "approvals", "effects", "checkpoints", "writes")]


def nested(depth: int) -> Any:
    """An empty list inside ``depth - 1`` more, built without recursion."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda rid: Decision.approve("apr_nope", by=APPROVER),
            InvalidDecision,
            "no approval request has id 'apr_nope'",
        ),
        (
            lambda rid: Decision.approve(rid, by=APPROVER, args_digest="0" * 64),
            InvalidDecision,
            "was made for arguments with digest '000",
        ),
        (
            lambda rid: Decision.approve(rid, by=Principal("carol", roles=["operator"])),
            NotAuthorized,
            "it requires role 'refund-approver', and 'carol' holds ['operator']",
        ),
        (
            lambda rid: Decision.approve(rid, by=Principal("alice", roles=["refund-approver"])),
            NotAuthorized,
            "'alice' requested",
        ),
        (
            lambda rid: Decision.approve(
                rid, by=Principal("eve", roles=["refund-approver"], tenant="globex")
            ),
            NotAuthorized,
            "of tenant 'globex' cannot decide",
        ),
        (
            lambda rid: Decision.edit(rid, args={"order_id": 42, "amount": "lots"}, by=APPROVER),
            InvalidDecision,
            "amount: Input should be a valid number",
        ),
        (
            lambda rid: {"approval_id": rid, "outcome": "maybe", "by": {"id": "bob"}},
            InvalidDecision,
            "outcome: Input should be 'approve', 'reject', 'edit', 'resolve' or 'retry' "
            "(got 'maybe')",
        ),
        (
            lambda rid: {"approval_id": rid, "outcome": "reject", "by": {"id": "bob"}},
            InvalidDecision,
            "a reject decision needs a reason",
        ),
        # A decider typed as JSON: what is wrong with it, and how to write it.
        (
            lambda rid: {
                "approval_id": rid,
                "outcome": "approve",
                "by": {"id": "bob", "roles": "refund-approver", "tenant": "acme"},
            },
            InvalidDecision,
            "by: Value error, Principal roles must be a list of strings, got the string "
            "'refund-approver'; write roles=['refund-approver']; a decider is written "
            "{'id': 'bob', 'roles': ['approver'], 'tenant': 'acme', 'scopes': []}",
        ),
        (
            lambda rid: {"approval_id": rid, "outcome": "approve", "by": {"roles": ["x"]}},
            InvalidDecision,
            "by: Value error, a Principal needs a non-empty id, got None; a decider is written "
            "{'id': ",
        ),
        (
            lambda rid: {"approval_id": rid, "outcome": "approve", "by": {"id": "bob", "roles": 7}},
            InvalidDecision,
            "Principal roles must be a list of strings, got 7",
        ),
        (
            lambda rid: {
                "approval_id": rid,
                "outcome": "approve",
                "by": {"id": "bob", "scopes": [None]},
            },
            InvalidDecision,
            "Principal scopes must be a list of strings, got [None]",
        ),
        (
            lambda rid: {
                "approval_id": rid,
                "outcome": "approve",
                "by": {"id": "bob", "tenant": 1},
            },
            InvalidDecision,
            "a Principal's tenant is a name or None, got 1",
        ),
        (
            lambda rid: {
                "approval_id": rid,
                "outcome": "approve",
                "by": {"id": "bob", "role": "refund-approver"},
            },
            InvalidDecision,
            "by has no field ['role']; a decider is written {'id': 'bob', 'roles': ['approver']",
        ),
        (
            lambda rid: {"approval_id": rid, "outcome": "approve", "by": "bob"},
            InvalidDecision,
            "by must be a Principal, got 'bob'; a decider is written {'id': 'bob'",
        ),
        # Arguments that are no mapping: named, not a bare TypeError of dict().
        (
            lambda rid: Decision.edit(rid, args=[1], by=APPROVER),  # type: ignore[arg-type]
            InvalidDecision,
            "args: Input should be a valid dictionary (got [1])",
        ),
        # Nested past what every walk over it (masking, storing) can go: said, not a
        # RecursionError, however deep.
        (
            lambda rid: Decision.edit(
                rid, args={"order_id": "42", "amount": 89.0, "x": nested(3000)}, by=APPROVER
            ),
            InvalidDecision,
            "cannot be recorded: decision.args.x[0][0]",
        ),
    ],
    ids=[
        "unknown-id",
        "digest",
        "role",
        "four-eyes",
        "tenant",
        "edit-schema",
        "malformed",
        "reject-without-reason",
        "decider-roles-a-string",
        "decider-without-id",
        "decider-roles-a-number",
        "decider-scopes-not-strings",
        "decider-tenant-a-number",
        "decider-unknown-field",
        "decider-a-string",
        "edit-args-a-list",
        "edit-args-nested-too-deep",
    ],
)
def test_refused_decisions_change_nothing(
    desk: AgentRuntime, db: Path, make: Any, error: type[Exception], message: str
) -> None:
    run = desk.start(GOAL, principal=OPERATOR)
    assert run.pending_approval is not None
    before = _snapshot(db)

    with pytest.raises(error) as info:
        desk.decide(make(run.pending_approval.id))

    assert message in str(info.value)
    assert _snapshot(db) == before
    assert desk.get(run.thread_id) == run


def test_expired_and_already_decided(desk: AgentRuntime, db: Path, clock: FakeClock) -> None:
    run = desk.start(GOAL, principal=OPERATOR)
    assert run.pending_approval is not None
    rid = run.pending_approval.id
    clock.advance(3 * 86400)  # the rule says expires_in: 3d
    before = _snapshot(db)
    with pytest.raises(ApprovalExpired, match=r"expired at .*; the next sweep of overdue"):
        desk.decide(Decision.approve(rid, by=APPROVER))
    assert _snapshot(db) == before

    clock.advance(-1)
    desk.decide(Decision.approve(rid, by=APPROVER))
    with pytest.raises(AlreadyDecided, match="was already approved by 'bob'"):
        desk.decide(Decision.reject(rid, by=APPROVER, reason="too late"))


def test_unknown_thread_ids(desk: AgentRuntime, db: Path) -> None:
    for call in (desk.get, desk.resume, desk.events):
        with pytest.raises(UnknownRun, match=r"no run with thread id 'ghost' in .*agentrt runs"):
            call("ghost")
    assert table(db, "runs") == []


def test_ids_no_database_can_be_asked_about_name_nothing(desk: AgentRuntime, db: Path) -> None:
    # A lone surrogate (what os.fsdecode makes of a bad byte) or a NUL: rt.create refuses
    # such a thread id, so no run has one; sqlite3 could not even encode the question.
    desk.start(GOAL, principal=OPERATOR, thread_id="t-1")
    for ghost in ("t-1\ud800", "t-1\x00"):
        for call in (desk.get, desk.events, desk.trace, desk.artifacts):
            with pytest.raises(UnknownRun, match="no run with thread id 't-1"):
                call(ghost)
        assert desk.exists(ghost) is False
    with pytest.raises(InvalidDecision, match=r"no approval request has id 'apr_\\ud800'"):
        desk.approval("apr_\ud800")


@pytest.mark.parametrize("limit", [0, -1, 2**63, 10**30, "5", 5.0, True, None])
def test_runs_limit_outside_one_to_64_bits_is_refused_by_name(
    desk: AgentRuntime, limit: Any
) -> None:
    # SQLite read -1 as no limit at all (every run listed), and sqlite3 raised
    # OverflowError past 64 bits; "5" was passed on as it was.
    desk.start(GOAL, principal=OPERATOR)
    with pytest.raises(ConfigError) as refused:
        desk.runs(limit=limit)
    assert str(refused.value) == (
        f"limit must be a whole number from 1 to 2**63 - 1, got {limit!r}; give how many "
        "runs to list, newest first"
    )
    assert len(desk.runs(limit=1)) == len(desk.runs(limit=2**63 - 1)) == 1


def test_a_given_thread_id_must_be_new(desk: AgentRuntime, db: Path) -> None:
    desk.start(GOAL, principal=OPERATOR, thread_id="t-1")
    before = _snapshot(db)
    with pytest.raises(ConfigError, match=r"'t-1' already names a run .* rt.resume\('t-1'\)"):
        desk.start("another goal", principal=OPERATOR, thread_id="t-1")
    assert _snapshot(db) == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"goal": "  "}, "a run needs a goal in words, got '  '"),
        ({"principal": "alice"}, "principal must be an agentrt Principal, got 'alice'"),
        ({"budget": {"max_steps": 3}}, "budget must be an agentrt Budget"),
    ],
)
def test_bad_start_arguments(desk: AgentRuntime, db: Path, kwargs: Any, message: str) -> None:
    args: dict[str, Any] = {"goal": GOAL, "principal": OPERATOR} | kwargs
    with pytest.raises(ConfigError, match=message):
        desk.start(args.pop("goal"), **args)
    assert table(db, "runs") == []


def test_a_run_without_a_principal_is_refused_saying_what_to_give(
    desk: AgentRuntime, db: Path
) -> None:
    with pytest.raises(ConfigError, match=r"^a run needs principal=, who it acts for; e\.g\. "):
        desk.start(GOAL)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"^a run needs principal=, who it acts for"):
        asyncio.run(desk.astart(GOAL))  # type: ignore[call-arg]
    assert table(db, "runs") == []


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan"), float("inf"), "30"])
def test_a_lease_ttl_that_is_not_a_positive_number_of_seconds_is_refused(
    db: Path, ttl: Any
) -> None:
    with pytest.raises(ConfigError, match=r"lease_ttl must be a number of seconds > 0, got "):
        AgentRuntime(ScriptedChatModel(["done"]), db=str(db), lease_ttl=ttl)


# Small runtimes built for one behaviour each -----------------------------------------------


@tool(effect="read", scopes=["stock:read"])
def count_stock(sku: str, warehouse: int = 1) -> dict[str, Any]:
    """Count units of a SKU in a warehouse."""
    return {"sku": sku, "warehouse": warehouse, "units": 7}


@tool(effect="write", scopes=["stock:write"])
def move_stock(sku: str, units: int) -> dict[str, Any]:
    """Move units between warehouses."""
    return {"moved": units}


def runtime(db: Path, clock: FakeClock, steps: list[Any], **kwargs: Any) -> AgentRuntime:
    kwargs.setdefault("policy", Policy.allow_all())
    return AgentRuntime(
        ScriptedChatModel(steps),
        tools=[count_stock, move_stock],
        db=db,
        clock=clock,
        new_id=Ids(),
        **kwargs,
    )


WORKER = Principal("w", scopes=["stock:read", "stock:write"])


def test_invalid_tool_arguments_are_observed_and_corrected(db: Path, clock: FakeClock) -> None:
    model_steps = [
        ai("", tool_call("count_stock", {"sku": 5, "warehouse": "north", "colour": "red"})),
        ai("", tool_call("count_stock", {"sku": "A-1", "warehouse": "2"})),
        "7 units",
    ]
    with runtime(db, clock, model_steps) as rt:
        run = rt.start("count A-1", principal=WORKER)
        assert run.status is RunStatus.SUCCEEDED
        events = rt.events(run.thread_id)
        bad = events[1]["data"]
        assert bad["kind"] == "invalid_args"
        assert bad["content"] == (
            "arguments for tool 'count_stock' do not match its schema: "
            "sku: Input should be a valid string (got 5); "
            "warehouse: Input should be a valid integer, unable to parse string as an integer "
            "(got 'north'); colour: Extra inputs are not permitted (got 'red'). "
            "Call it again with arguments that match the schema."
        )
        # The model saw the error as a tool message, and the corrected call normalised "2".
        model = rt.deps.model
        assert isinstance(model, ScriptedChatModel)
        assert "[invalid_args]" in str(model.calls[1].messages[-1].content)
        assert events[3]["data"]["step_id"] == "1.0"
        assert rt.events(run.thread_id)[4]["data"]["content"] == (
            '{"sku": "A-1", "units": 7, "warehouse": 2}'
        )


def test_unparseable_arguments_are_invalid_args(db: Path, clock: FakeClock) -> None:
    broken = AIMessage(
        "",
        invalid_tool_calls=[
            {
                "name": "count_stock",
                "args": "{sku: oops",
                "id": "c1",
                "error": "bad json",
                "type": "invalid_tool_call",
            }
        ],
    )
    with runtime(db, clock, [broken, "gave up"]) as rt:
        run = rt.start("count", principal=WORKER)
        obs = rt.events(run.thread_id)[1]["data"]
        assert (obs["kind"], obs["call_id"]) == ("invalid_args", "c1")
        assert "not valid JSON: '{sku: oops'" in obs["content"]
        assert run.output == "gave up"


def test_unparseable_arguments_of_a_tool_with_a_sensitive_field_are_not_quoted(
    db: Path, clock: FakeClock
) -> None:
    # Text that is not JSON cannot be masked field by field: a tool with a sensitive field
    # (or one the runtime does not know) gets the error without the text it was given.
    @tool(effect="write", sensitive=["pin"])
    def open_door(door: str, pin: str) -> str:
        """Open a door."""
        return "open"

    def broken(name: str) -> AIMessage:
        call = {"name": name, "args": '{"door": "d1", "pin": "5123-7789-0012"', "id": "c1"}
        return AIMessage("", invalid_tool_calls=[{**call, "error": "bad json"}])  # type: ignore[list-item]

    model = ScriptedChatModel([broken("open_door"), broken("no_such_tool"), "gave up"])
    with AgentRuntime(
        model, tools=[open_door], policy=Policy.allow_all(), db=db, clock=clock
    ) as rt:
        run = rt.start("open d1", principal=WORKER)
        events = rt.events(run.thread_id)
    seen = [e["data"]["content"] for e in events if e["type"] == "observation"]
    assert seen[0] == "arguments for tool 'open_door': arguments are not valid JSON (bad json)"
    assert "unknown tool 'no_such_tool'" in seen[1]
    assert "5123" not in json.dumps(events)  # not in the plan steps kept either


def test_tools_are_offered_by_scope_and_unoffered_calls_are_denied(
    db: Path, clock: FakeClock
) -> None:
    reader = Principal("r", scopes=["stock:read"])
    steps = [ai("", tool_call("move_stock", {"sku": "A-1", "units": 3})), "ok, I cannot"]
    with runtime(db, clock, steps) as rt:
        run = rt.start("move stock", principal=reader)
        model = rt.deps.model
        assert isinstance(model, ScriptedChatModel)
        assert model.calls[0].tool_names == ("count_stock",)
        assert summary(rt, run.thread_id) == [
            ("plan", "move_stock"),
            ("policy", "0.0", "deny", "None"),
            ("observed", "0.0", "move_stock", "denied"),
            ("answer", "ok, I cannot"),
            ("finish", "succeeded"),
        ]
        assert "lacks scopes ['stock:write']" in rt.events(run.thread_id)[2]["data"]["content"]


def test_a_denial_skips_the_rest_of_the_plan(db: Path, clock: FakeClock) -> None:
    steps = [
        ai("", tool_call("delete_everything", {}), tool_call("count_stock", {"sku": "A"})),
        "stopped",
    ]
    with runtime(db, clock, steps) as rt:
        run = rt.start("go", principal=WORKER)
        assert summary(rt, run.thread_id)[:4] == [
            ("plan", "delete_everything", "count_stock"),
            ("policy", "0.0", "deny", "None"),
            ("observed", "0.0", "delete_everything", "denied"),
            ("observed", "0.1", "count_stock", "skipped"),
        ]


@pytest.mark.parametrize(
    ("result", "told"),
    [("crunched", "ok"), ("garbled", "permanent")],  # failing its check: told, not dropped
)
def test_a_cancel_seen_after_an_effect_still_tells_the_effect_in_the_runs_log(
    db: Path, clock: FakeClock, result: str, told: str
) -> None:
    holder: list[AgentRuntime] = []

    @tool(effect="write", idempotent=True, verify=lambda args, out: out["job"] == "crunched")
    def crunch(job: str, ctx: ToolContext) -> dict[str, Any]:
        """Crunch a job; meanwhile someone cancels the run (here, the tool itself)."""
        holder[0].cancel(ctx.thread_id, reason="operator stopped it")
        return {"job": result}

    steps = [ai("", tool_call("crunch", {"job": "j1"})), "not reached"]
    with AgentRuntime(
        ScriptedChatModel(steps), tools=[crunch], policy=Policy.allow_all(), db=db, clock=clock
    ) as rt:
        holder.append(rt)
        run = rt.start("crunch j1", principal=WORKER, thread_id="t")
        # The effect acted (the ledger says done), and the run's own history says so too.
        assert [e.status for e in rt.store.list_effects("t")] == ["done"]
        assert (run.status, run.error) == (RunStatus.CANCELLED, "operator stopped it")
        assert summary(rt, "t") == [
            ("plan", "crunch"),
            ("policy", "0.0", "allow", "None"),
            ("observed", "0.0", "crunch", told),
            ("finish", "cancelled"),
        ]


def test_a_runaway_model_stops_at_max_steps(db: Path, clock: FakeClock) -> None:
    steps = [ai("", tool_call("count_stock", {"sku": "A"})) for _ in range(10)]
    with runtime(db, clock, steps) as rt:
        run = rt.start("loop", principal=WORKER, budget=Budget(max_steps=3))
        assert run.status is RunStatus.BUDGET_EXCEEDED
        assert run.error == (
            "budget limit max_steps=3 reached: 3 used, and the next action needs 1 more; "
            "stopped before model call (plan step 3)"
        )
        assert (run.usage["steps"], run.usage["tool_calls"]) == (3, 3)


def test_no_tool_call_runs_past_max_tool_calls(db: Path, clock: FakeClock) -> None:
    steps = [ai("", *(tool_call("count_stock", {"sku": str(i)}) for i in range(5)))]
    with runtime(db, clock, steps) as rt:
        run = rt.start("count", principal=WORKER, budget=Budget(max_tool_calls=2))
        assert run.status is RunStatus.BUDGET_EXCEEDED
        assert run.usage["tool_calls"] == 2
        assert run.error == (
            "budget limit max_tool_calls=2 reached: 2 used, and the next action needs 1 more; "
            "stopped before tool call count_stock (step 0.2)"
        )


def test_a_model_that_keeps_failing_fails_the_run(db: Path, clock: FakeClock) -> None:
    from langgraph.types import RetryPolicy

    steps: list[Any] = [ValueError("provider said no")]
    with runtime(db, clock, steps, model_retry=RetryPolicy(max_attempts=1)) as rt:
        run = rt.start("x", principal=WORKER)
        assert run.status is RunStatus.FAILED
        assert run.error == "ValueError: provider said no"
        # Terminal in the checkpoint too: resuming does not call the model again.
        assert rt.resume(run.thread_id) == run
        model = rt.deps.model
        assert isinstance(model, ScriptedChatModel)
        assert len(model.calls) == 1


def test_transient_model_errors_are_retried(db: Path, clock: FakeClock) -> None:
    from langgraph.types import RetryPolicy

    retry = RetryPolicy(initial_interval=0.0, jitter=False, max_attempts=3)
    steps: list[Any] = [ConnectionError("reset"), ConnectionError("reset"), "fine"]
    with runtime(db, clock, steps, model_retry=retry) as rt:
        run = rt.start("x", principal=WORKER)
        assert (run.status, run.output) == (RunStatus.SUCCEEDED, "fine")


def test_default_policy_asks_before_side_effects(db: Path, clock: FakeClock) -> None:
    steps = [ai("", tool_call("move_stock", {"sku": "A", "units": 1})), "moved"]
    with runtime(db, clock, steps, policy=None) as rt:
        run = rt.start("move", principal=WORKER)
        assert run.status is RunStatus.AWAITING_APPROVAL
        assert run.pending_approval is not None
        assert run.pending_approval.rule_id == "side-effects-need-approval"
        done = rt.decide(Decision.approve(run.pending_approval.id, by=Principal("boss")))
        assert done.status is RunStatus.SUCCEEDED


def test_policy_naming_an_unknown_tool_is_refused(db: Path) -> None:
    policy = Policy([{"id": "r1", "match": {"tools": ["send_email"]}, "decision": "allow"}])
    with pytest.raises(ConfigError, match="rule 'r1' names tool 'send_email'"):
        AgentRuntime(ScriptedChatModel(["x"]), tools=[count_stock], policy=policy, db=db)


def test_async_twins(db: Path, clock: FakeClock) -> None:
    async def scenario() -> tuple[Any, Any, Any]:
        with refund_desk.build_runtime(db, clock=clock, new_id=Ids()) as rt:
            run = await rt.astart(GOAL, principal=OPERATOR)
            assert run.pending_approval is not None
            waiting = await rt.aresume(run.thread_id)  # nothing to do until a person decides
            done = await rt.adecide(Decision.approve(run.pending_approval.id, by=APPROVER))
            assert await rt.aget(run.thread_id) == done
            with pytest.raises(UnknownRun):
                await rt.aget("no-such-thread")
            return run, waiting, done

    run, waiting, done = asyncio.run(scenario())
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert waiting == run
    assert done.status is RunStatus.SUCCEEDED
    assert refunds(db) == [("42", 89.0)]


# Async callers cancelled while they drive ------------------------------------------------


class CancelAt:
    """Cancels an async call at a store call it awaits in a worker thread: ``method`` does
    its write, then asks the loop to cancel the awaiting task. The loop does that before it
    hands the task the call's result (both reach it in that order), so the cancel lands at
    that await with the write done, as a client that hangs up just then would."""

    def __init__(
        self, rt: AgentRuntime, method: str, when: Callable[..., bool] | None = None
    ) -> None:
        self.fired = False
        self._task: asyncio.Future[Any] | None = None
        real = getattr(rt.store, method)

        def hooked(*args: Any, **kwargs: Any) -> Any:
            result = real(*args, **kwargs)
            task = self._task
            if task is not None and not self.fired and (when is None or when(*args)):
                self.fired = True
                task.get_loop().call_soon_threadsafe(task.cancel)
            return result

        setattr(rt.store, method, hooked)

    def cancel(self, call: Coroutine[Any, Any, Any]) -> None:
        """Await ``call`` on a loop of its own: it ends cancelled, at the hook."""

        async def scenario() -> None:
            self._task = asyncio.ensure_future(call)
            with pytest.raises(asyncio.CancelledError):
                await self._task

        asyncio.run(scenario())
        assert self.fired


def moved_to(status: RunStatus) -> Callable[..., bool]:
    """A ``change_run`` that moves the run to ``status`` (from another)."""
    return lambda _thread_id, change: change.status is status and change.from_status is not status


BOSS = Principal("boss")

MOVE = [ai("", tool_call("move_stock", {"sku": "A", "units": 1})), "moved", "moved again"]
"""A run that stops at the default policy's gate, then answers twice."""


def astart(rt: AgentRuntime) -> tuple[Coroutine[Any, Any, Any], RunStatus]:
    """The call to cancel (after what comes before it, done synchronously), and where a
    resume then takes the run."""
    return rt.astart("move", principal=WORKER, thread_id="t"), RunStatus.AWAITING_APPROVAL


def aresume_created(rt: AgentRuntime) -> tuple[Coroutine[Any, Any, Any], RunStatus]:
    rt.create("move", principal=WORKER, thread_id="t")
    return rt.aresume("t"), RunStatus.AWAITING_APPROVAL


def adecide_at_gate(rt: AgentRuntime) -> tuple[Coroutine[Any, Any, Any], RunStatus]:
    run = rt.start("move", principal=WORKER, thread_id="t")
    assert run.pending_approval is not None
    return rt.adecide(Decision.approve(run.pending_approval.id, by=BOSS)), RunStatus.SUCCEEDED


def asend_after_the_end(rt: AgentRuntime) -> tuple[Coroutine[Any, Any, Any], RunStatus]:
    run = rt.start("move", principal=WORKER, thread_id="t")
    assert run.pending_approval is not None
    assert rt.decide(Decision.approve(run.pending_approval.id, by=BOSS)).output == "moved"
    return rt.asend("t", "and again", principal=WORKER), RunStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("method", "when", "enter"),
    [
        pytest.param("create_run", None, astart, id="astart-as-its-row-is-written"),
        pytest.param("hold_lease", None, astart, id="astart-as-its-segment-begins"),
        pytest.param("take_lease", None, aresume_created, id="aresume-as-it-takes-the-lease"),
        pytest.param(
            "change_run",
            moved_to(RunStatus.RUNNING),
            aresume_created,
            id="aresume-as-its-segment-marks-the-run-running",
        ),
        pytest.param("take_lease", None, adecide_at_gate, id="adecide-as-its-resume-begins"),
        pytest.param("take_lease", None, asend_after_the_end, id="asend-as-its-resume-begins"),
        pytest.param("open_message", None, asend_after_the_end, id="asend-as-it-takes-the-message"),
    ],
)
def test_a_cancelled_async_caller_lets_the_lease_it_took_go(
    db: Path, clock: FakeClock, method: str, when: Callable[..., bool] | None, enter: Any
) -> None:
    # A client that hangs up, a timeout, a task group cancelling: the lease taken before the
    # cancel is let go, so the run can be carried on at once, here or elsewhere, not after
    # the lease expires (a live process's lease is never taken over before).
    with runtime(db, clock, list(MOVE), policy=None) as rt:
        at = CancelAt(rt, method, when)
        call, goes_to = enter(rt)
        at.cancel(call)
        assert rt.store.lease_of("t") is None
        assert not rt._driver.held_leases
        assert rt.resume("t").status is goes_to
        assert rt.store.lease_of("t") is None


def test_a_refused_async_caller_lets_go_no_lease_it_did_not_take(
    db: Path, clock: FakeClock
) -> None:
    # Another process drives run "t": a start under its id, a resume of it, and a start
    # with a bad goal are refused, and the other's lease stays as it was.
    theirs = LeaseRecord(owner="elsewhere:1:x", host="elsewhere", pid=1, expires_at=clock() + 60)
    with runtime(db, clock, list(MOVE), policy=None) as rt:
        rt.create("move", principal=WORKER, thread_id="t")
        assert rt.store.take_lease("t", theirs, expected=None)

        async def refused() -> None:
            with pytest.raises(ThreadTaken, match=r"thread id 't' already names a run"):
                await rt.astart("move", principal=WORKER, thread_id="t")
            with pytest.raises(RunBusy):
                await rt.aresume("t")
            with pytest.raises(ConfigError, match="a run needs a goal in words, got ''"):
                await rt.astart("", principal=WORKER, thread_id="u")

        asyncio.run(refused())
        assert rt.store.lease_of("t") == theirs
        assert rt.store.get_run("u") is None
        assert not rt._driver.held_leases


def test_a_caller_cancelled_as_its_segment_settles_leaves_the_run_where_the_graph_ended(
    db: Path, clock: FakeClock
) -> None:
    # The graph reached its gate; the cancel lands as the row says so: the row says it all
    # the same (the gate's request with it), and the lease is let go only after.
    with runtime(db, clock, list(MOVE), policy=None) as rt:
        at = CancelAt(rt, "change_run", moved_to(RunStatus.AWAITING_APPROVAL))
        at.cancel(rt.astart("move", principal=WORKER, thread_id="t"))
        row = rt.store.get_run("t")
        assert row is not None
        assert (row.status, row.lease_owner) == (RunStatus.AWAITING_APPROVAL, None)
        run = rt.get("t")
        assert run.pending_approval is not None
        assert rt.resume("t") == run  # nothing to do until a person decides
        done = rt.decide(Decision.approve(run.pending_approval.id, by=BOSS))
        assert (done.status, done.output) == (RunStatus.SUCCEEDED, "moved")


class CancelsItsCaller(ScriptedChatModel):
    """Answers its first turn; in its second it cancels the task awaiting ``rt.astart``
    (``caller``) and waits for the cancel to reach it, as a client hanging up mid-call."""

    caller: Any = None
    _asked: int = PrivateAttr(default=0)

    async def _agenerate(self, *args: Any, **kwargs: Any) -> Any:
        self._asked += 1
        if self._asked == 2:
            self.caller.cancel()
            await asyncio.Event().wait()  # until the cancel lands here
        return await super()._agenerate(*args, **kwargs)


def test_a_caller_cancelled_mid_graph_leaves_the_run_resumable_from_its_checkpoints(
    db: Path, clock: FakeClock
) -> None:
    # Cancelled in its second model call, after a tool ran: the run is left running, let
    # go, its checkpoints kept, and a resume goes on from them (the tool is not run again).
    counted: list[str] = []

    @tool(effect="read")
    def count(sku: str) -> int:
        """Count a SKU's units.

        Args:
            sku: The stock keeping unit.
        """
        counted.append(sku)
        return 7

    model = CancelsItsCaller([ai("", tool_call("count", {"sku": "A"})), "7 units"])
    policy = Policy.allow_all()
    with AgentRuntime(model, tools=[count], policy=policy, db=db, clock=clock) as rt:

        async def scenario() -> None:
            model.caller = asyncio.ensure_future(
                rt.astart("count A", principal=WORKER, thread_id="t")
            )
            with pytest.raises(asyncio.CancelledError):
                await model.caller

        asyncio.run(scenario())
        row = rt.store.get_run("t")
        assert row is not None
        assert (row.status, row.lease_owner) == (RunStatus.RUNNING, None)
        done = rt.resume("t")
        assert (done.status, done.output) == (RunStatus.SUCCEEDED, "7 units")
        assert counted == ["A"]


def test_graph_is_the_compiled_design(desk: AgentRuntime) -> None:
    graph = desk.graph.get_graph()
    edges = sorted((e.source, e.target) for e in graph.edges)
    assert edges == sorted(
        [
            ("__start__", "plan"),
            ("plan", "policy"),
            ("plan", "finish"),
            ("policy", "tool"),
            ("policy", "policy"),
            ("policy", "approval"),
            ("policy", "plan"),
            ("policy", "finish"),
            ("approval", "tool"),
            ("approval", "policy"),
            ("approval", "plan"),
            ("approval", "finish"),
            ("tool", "verify"),
            ("tool", "reconcile"),
            ("tool", "finish"),
            ("verify", "policy"),
            ("verify", "plan"),
            ("verify", "commit"),
            ("verify", "finish"),
            ("commit", "verify"),
            ("commit", "reconcile"),
            ("commit", "finish"),
            ("plan", "budget_gate"),
            ("tool", "budget_gate"),
            ("commit", "budget_gate"),
            ("budget_gate", "plan"),
            ("budget_gate", "tool"),
            ("budget_gate", "commit"),
            ("budget_gate", "finish"),
            ("reconcile", "verify"),
            ("reconcile", "tool"),
            ("reconcile", "commit"),
            ("reconcile", "finish"),
            ("plan", "summarize"),
            ("summarize", "plan"),
            ("summarize", "budget_gate"),
            ("summarize", "finish"),
            ("finish", "__end__"),
        ]
    )


# Crash windows between the store and the checkpoint ----------------------------------------


def test_died_before_the_first_checkpoint(desk: AgentRuntime, db: Path) -> None:
    # The row is written before the first node; a process can die right after it.
    desk.store.create_run(
        NewRun(
            thread_id="early",
            goal=GOAL,
            principal=OPERATOR.to_dict(),
            budget=Budget(max_steps=10).to_dict(),
            usage=empty_usage(),
        )
    )
    assert desk.events("early") == []
    run = desk.resume("early")
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert summary(desk, "early") == UP_TO_GATE


def test_died_after_the_graph_finished_but_before_the_row_said_so(
    desk: AgentRuntime, db: Path
) -> None:
    run = desk.start(GOAL, principal=OPERATOR)
    assert run.pending_approval is not None
    done = desk.decide(Decision.approve(run.pending_approval.id, by=APPROVER))
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE runs SET status='running', output=NULL WHERE thread_id=?", (run.thread_id,)
        )
    model = desk.deps.model
    assert isinstance(model, ScriptedChatModel)
    calls = len(model.calls)

    settled = desk.resume(run.thread_id)

    assert (settled.status, settled.output) == (done.status, done.output)
    assert len(model.calls) == calls  # settled from the checkpoint; nothing ran again
    assert refunds(db) == [("42", 89.0)]


def test_died_after_the_decision_was_recorded(desk: AgentRuntime, db: Path) -> None:
    from agentrt import ApprovalStatus

    run = desk.start(GOAL, principal=OPERATOR)
    assert run.pending_approval is not None
    # decide() writes the decision, then resumes; a crash can fall between the two.
    assert desk.store.decide_approval(
        run.pending_approval.id, Decided(status=ApprovalStatus.APPROVED, by="bob")
    )
    assert desk.get(run.thread_id).status is RunStatus.AWAITING_APPROVAL

    done = desk.resume(run.thread_id)

    assert done.status is RunStatus.SUCCEEDED
    assert refunds(db) == [("42", 89.0)]


def test_verify_checks_the_preview_before_anything_irreversible(
    desk: AgentRuntime, db: Path
) -> None:
    run = desk.start(GOAL, principal=OPERATOR)
    assert run.pending_approval is not None
    # An approver edits the amount past the order total; another approves the new request.
    again = desk.decide(
        Decision.edit(run.pending_approval.id, args={"order_id": "42", "amount": 500}, by=APPROVER)
    )
    assert again.pending_approval is not None
    done = desk.decide(Decision.approve(again.pending_approval.id, by=SECOND_APPROVER))

    assert done.status is RunStatus.SUCCEEDED
    assert summary(desk, run.thread_id)[-4:] == [
        ("approval", "2.0", "approved", "cara"),
        ("observed", "2.0", "issue_refund", "permanent"),
        ("answer", done.output or ""),
        ("finish", "succeeded"),
    ]
    assert done.output == (
        "I did not refund order 42: [permanent] postcondition of 'issue_refund' failed: "
        "amount 500.0 exceeds the order total 89.0"
    )
    assert refunds(db) == []
    assert done.usage["tool_calls"] == 3  # the refund was previewed, never called
