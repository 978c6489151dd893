"""Human gates as records: one gate for a whole plan step, expiry and escalation, cancelled
requests, waited time, and the review queue with its pages."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command

from agentrt import (
    AgentRuntime,
    AlreadyDecided,
    ApprovalExpired,
    ApprovalStatus,
    Budget,
    ConfigError,
    Decision,
    IllegalTransition,
    InvalidDecision,
    NotAuthorized,
    Policy,
    Principal,
    RunStatus,
)
from agentrt.approvals.display import masked
from agentrt.approvals.model import Decided
from agentrt.policies.loader import PolicyFileError
from agentrt.runs import lifecycle
from agentrt.store.sqlite import SqliteStore
from agentrt.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from agentrt.tracing import Redactor
from tests.conftest import FakeClock, Ids
from tests.gate_app import GOAL, OPS, PAYER, POLICY, T0, TREASURER, build_runtime, paid
from tests.test_runtime import summary

DAY = 86400.0
REJECT_ON_EXPIRY = POLICY.replace(
    "on_expiry: escalate,\n               escalate_to: treasurer", "on_expiry: reject"
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def gates(db: Path, clock: FakeClock) -> Iterator[AgentRuntime]:
    rt = build_runtime(db, clock=clock, new_id=Ids())
    yield rt
    rt.close()


def waiting_at_gate(rt: AgentRuntime, **kw: Any) -> tuple[str, str, str]:
    """Start the three-payment run; return its thread and the two approval ids (al, cy)."""
    run = rt.start(GOAL, principal=OPS, **kw)
    assert run.status is RunStatus.AWAITING_APPROVAL
    al, cy = run.pending_approvals
    assert (al.step_id, al.args["who"], cy.step_id, cy.args["who"]) == ("0.0", "al", "0.2", "cy")
    return run.thread_id, al.id, cy.id


GATE = [
    ("plan", "pay", "pay", "pay"),
    ("policy", "0.0", "require_approval", "large-payments"),
]


def test_one_gate_asks_about_every_action_of_the_step_and_each_goes_its_way(
    gates: AgentRuntime, db: Path
) -> None:
    thread, al, cy = waiting_at_gate(gates)

    # One interrupt carries both actions; nothing ran yet, not even the allowed one after.
    [gate] = gates.graph.get_state({"configurable": {"thread_id": thread}}).interrupts
    assert [a["id"] for a in gate.value["approvals"]] == [al, cy]
    assert summary(gates, thread) == GATE
    assert paid(db) == []

    # One decision is not enough: the run waits for every action of its gate.
    half = gates.decide(Decision.approve(al, by=PAYER))
    assert half.status is RunStatus.AWAITING_APPROVAL
    assert [r.id for r in half.pending_approvals] == [cy]
    assert paid(db) == []

    done = gates.decide(
        Decision.edit(cy, args={"who": "cy", "cents": 900, "card": "4333-3333"}, by=PAYER)
    )

    assert done.status is RunStatus.SUCCEEDED
    assert summary(gates, thread) == [
        *GATE,
        ("approval", "0.0", "approved", "bob"),
        ("observed", "0.0", "pay", "ok"),
        ("policy", "0.1", "allow", "small-payments"),
        ("observed", "0.1", "pay", "ok"),
        ("policy", "0.2", "require_approval", "large-payments"),
        ("approval", "0.2", "edited", "bob"),  # decided at the gate: nobody is asked again
        ("policy", "0.2", "allow", "small-payments"),  # the edit passed policy again
        ("observed", "0.2", "pay", "ok"),
        ("answer", "v1 done: pay:success pay:success pay:success"),
        ("finish", "succeeded"),
    ]
    assert paid(db) == [("al", 5000), ("bo", 200), ("cy", 900)]
    record = gates.approval(cy)
    assert (record.args["cents"], record.edited_args) == (
        9000,
        {"who": "cy", "cents": 900, "card": "4333-3333"},
    )


def test_resuming_the_graph_by_hand_before_the_gate_is_decided_asks_again(
    gates: AgentRuntime, db: Path
) -> None:
    thread, al, cy = waiting_at_gate(gates)
    gates.decide(Decision.approve(al, by=PAYER))
    config: Any = {"configurable": {"thread_id": thread}}

    gates.graph.invoke(Command(resume={"decided": True}), config)

    [gate] = gates.graph.get_state(config).interrupts
    assert [a["id"] for a in gate.value["approvals"]] == [cy]
    assert paid(db) == []  # al was approved, but its gate is not done: nothing ran


def test_after_a_rejection_only_the_actions_a_person_approved_still_run(
    gates: AgentRuntime, db: Path
) -> None:
    thread, al, cy = waiting_at_gate(gates)
    gates.decide(Decision.reject(al, by=PAYER, reason="al was paid last week"))
    done = gates.decide(Decision.approve(cy, by=PAYER, reason="invoice 7"))

    assert summary(gates, thread)[2:6] == [
        ("approval", "0.0", "rejected", "bob"),
        ("observed", "0.0", "pay", "rejected"),
        ("policy", "0.1", "allow", "small-payments"),
        # bo needed no person, but may depend on al's payment: it does not run.
        ("observed", "0.1", "pay", "skipped"),
    ]
    assert done.output == "v1 done: pay:error pay:error pay:success"
    assert paid(db) == [("cy", 9000)]  # cy was approved knowing al was refused
    # One gate: both requests share requested_at, so the queue orders them by id.
    assert {r.id: (r.status, r.decided_by, r.comment) for r in gates.approvals(None)} == {
        al: (ApprovalStatus.REJECTED, "bob", "al was paid last week"),
        cy: (ApprovalStatus.APPROVED, "bob", "invoice 7"),
    }


ANY_PAYMENT = """
version: 1
name: payouts
default: deny
rules:
  - id: any-payment
    match: {tools: [pay]}
    decision: allow
"""
FIRST_LARGE_ONLY = POLICY.replace(
    "when: args.cents > 1000\n", "when: args.cents > 1000 && usage.tool_calls == 0\n"
) + (
    "  - id: later-large-payments\n"
    "    match: {tools: [pay]}\n"
    "    when: args.cents > 1000 && usage.tool_calls > 0\n"
    "    decision: allow\n"
)


def decided_at_gate(rt: AgentRuntime, decision_on_cy: Any) -> str:
    """Wait at the gate, approve al and decide cy as ``decision_on_cy(cy)``, not resuming."""
    thread, al, cy = waiting_at_gate(rt)
    rt.decide(Decision.approve(al, by=PAYER), resume=False)
    rt.decide(decision_on_cy(cy), resume=False)
    return thread


@pytest.mark.parametrize("verdict_turns", ["policy swapped", "rule reads usage"])
def test_a_later_action_rejected_at_the_gate_stays_rejected_when_policy_would_allow_it(
    db: Path, clock: FakeClock, verdict_turns: str
) -> None:
    # cy shared al's gate; by its turn the verdict is allow (the policy was swapped, or
    # its rule asks only before the first payment): a person's rejection still stands.
    swapped = verdict_turns == "policy swapped"
    policy, rule = (
        (POLICY, "any-payment") if swapped else (FIRST_LARGE_ONLY, "later-large-payments")
    )
    with build_runtime(db, clock=clock, policy=Policy.from_yaml(policy)) as rt:
        thread = decided_at_gate(rt, lambda cy: Decision.reject(cy, by=PAYER, reason="not owed"))
        if swapped:
            rt.set_policy(Policy.from_yaml(ANY_PAYMENT))
        done = rt.resume(thread)
        log = summary(rt, thread)

    assert done.status is RunStatus.SUCCEEDED
    assert paid(db) == [("al", 5000), ("bo", 200)]
    assert log[-5:-2] == [
        ("policy", "0.2", "allow", rule),
        ("approval", "0.2", "rejected", "bob"),  # decided at the gate: that decision stands
        ("observed", "0.2", "pay", "rejected"),
    ]


def test_a_later_action_edited_at_the_gate_runs_only_as_edited_after_a_policy_swap(
    db: Path, clock: FakeClock
) -> None:
    edit = {"who": "cy", "cents": 9500, "card": "4444-4444"}
    with build_runtime(db, clock=clock) as rt:
        thread = decided_at_gate(rt, lambda cy: Decision.edit(cy, args=edit, by=PAYER))
        rt.set_policy(Policy.from_yaml(ANY_PAYMENT))
        done = rt.resume(thread)
        log = summary(rt, thread)

    assert done.status is RunStatus.SUCCEEDED
    assert paid(db) == [("al", 5000), ("bo", 200), ("cy", 9500)]  # never the 9000 replaced
    assert log[-6:-2] == [
        ("policy", "0.2", "allow", "any-payment"),
        ("approval", "0.2", "edited", "bob"),
        ("policy", "0.2", "allow", "any-payment"),  # the edit passed policy again
        ("observed", "0.2", "pay", "ok"),
    ]


def test_a_gate_asked_again_under_new_terms_leaves_out_an_action_already_rejected(
    db: Path, clock: FakeClock
) -> None:
    with build_runtime(db, clock=clock) as rt:
        thread = decided_at_gate(rt, lambda cy: Decision.reject(cy, by=PAYER, reason="not owed"))
        rt.set_policy(Policy.from_yaml(POLICY.replace("role: payer", "role: treasurer")))
        again = rt.resume(thread)
        # al's approval does not cover the new role; cy's rejection needs nobody again.
        assert [(r.step_id, r.required_role) for r in again.pending_approvals] == [
            ("0.0", "treasurer")
        ]
        done = rt.decide(Decision.approve(again.pending_approvals[0].id, by=TREASURER))

    assert done.status is RunStatus.SUCCEEDED
    assert paid(db) == [("al", 5000), ("bo", 200)]


def test_waiting_for_a_person_is_recorded_and_is_not_active_time(
    gates: AgentRuntime, clock: FakeClock
) -> None:
    thread, al, cy = waiting_at_gate(gates, budget=Budget(max_active_seconds=60))
    clock.advance(3 * DAY)
    gates.decide(Decision.approve(al, by=PAYER))
    clock.advance(3600)
    done = gates.decide(Decision.approve(cy, by=PAYER))

    assert done.status is RunStatus.SUCCEEDED  # three days of waiting broke no 60 s budget
    assert done.usage["waited_seconds"] == 3 * DAY + 3600
    assert done.usage["active_seconds"] < 60
    assert [gates.approval(i).waited_seconds for i in (al, cy)] == [3 * DAY, 3 * DAY + 3600]
    approvals = [e["data"] for e in gates.events(thread) if e["type"] == "approval"]
    assert [a["waited_seconds"] for a in approvals] == [3 * DAY, 3 * DAY + 3600]


def test_expiry_that_rejects(db: Path, clock: FakeClock) -> None:
    with build_runtime(db, clock=clock, policy=Policy.from_yaml(REJECT_ON_EXPIRY)) as rt:
        thread, al, cy = waiting_at_gate(rt)
        clock.advance(7 * DAY - 1)
        assert rt.sweep_approvals().expired == ()  # not yet due

        swept = rt.sweep_approvals(T0 + 7 * DAY)

        assert sorted(r.id for r in swept.expired) == sorted([al, cy])
        assert swept.escalated == ()
        [run] = swept.runs
        assert run.status is RunStatus.SUCCEEDED
        assert run.output == "v1 done: pay:error pay:error pay:error"
        assert summary(rt, thread)[2:4] == [
            ("approval", "0.0", "expired", "None"),
            ("observed", "0.0", "pay", "expired"),
        ]
        assert paid(db) == []  # bo was only allowed, and came after a refusal: skipped
        # Sweeping again finds nothing, and a late decision is refused as expired.
        again = rt.sweep_approvals(T0 + 30 * DAY)
        assert (again.expired, again.escalated, again.runs) == ((), (), ())
        with pytest.raises(ApprovalExpired, match=r"expired undecided .* went on without it"):
            rt.decide(Decision.approve(al, by=PAYER))


@pytest.mark.parametrize("now", [float("inf"), float("-inf"), float("nan"), "tomorrow", True])
def test_a_sweep_as_of_what_is_no_time_is_refused_and_changes_nothing(
    gates: AgentRuntime, clock: FakeClock, now: Any
) -> None:
    thread, al, cy = waiting_at_gate(gates)
    clock.advance(7 * DAY)  # both are due by the clock: a sweep that went ahead would expire them
    message = f"now must be epoch seconds or None (the clock's), got {now!r}"
    with pytest.raises(ConfigError) as refused:
        gates.sweep_approvals(now)
    assert str(refused.value) == message
    with pytest.raises(ConfigError) as refused:
        asyncio.run(gates.asweep_approvals(now))
    assert str(refused.value) == message
    assert [gates.approval(i).status for i in (al, cy)] == [ApprovalStatus.PENDING] * 2
    assert gates.get(thread).status is RunStatus.AWAITING_APPROVAL


def test_the_async_sweep_carries_runs_on_like_the_sync_one(db: Path, clock: FakeClock) -> None:
    async def scenario() -> Any:
        with build_runtime(db, clock=clock, policy=Policy.from_yaml(REJECT_ON_EXPIRY)) as rt:
            await rt.astart(GOAL, principal=OPS)
            clock.advance(7 * DAY)
            return await rt.asweep_approvals()

    swept = asyncio.run(scenario())
    assert len(swept.expired) == 2
    assert [(r.status, r.output) for r in swept.runs] == [
        (RunStatus.SUCCEEDED, "v1 done: pay:error pay:error pay:error")
    ]
    assert paid(db) == []


def test_expiry_that_escalates_to_another_role(
    gates: AgentRuntime, db: Path, clock: FakeClock
) -> None:
    _, al, cy = waiting_at_gate(gates)
    clock.advance(7 * DAY)

    swept = gates.sweep_approvals()

    assert sorted(r.id for r in swept.expired) == sorted([al, cy])
    up = {e.escalated_from: e for e in swept.escalated}
    assert [(up[i].required_role, up[i].status, up[i].expires_at) for i in (al, cy)] == [
        ("treasurer", ApprovalStatus.PENDING, T0 + 14 * DAY)
    ] * 2
    assert gates.approval(al).escalated_to == up[al].id
    [run] = swept.runs
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert [r.id for r in run.pending_approvals] == [up[al].id, up[cy].id]
    assert gates.sweep_approvals().expired == ()  # a second sweep changes nothing

    with pytest.raises(ApprovalExpired, match=f"escalated to {up[al].id!r}, decide that one"):
        gates.decide(Decision.approve(al, by=PAYER))
    with pytest.raises(NotAuthorized, match="it requires role 'treasurer'"):
        gates.decide(Decision.approve(up[al].id, by=PAYER))

    gates.decide(Decision.approve(up[al].id, by=TREASURER))
    done = gates.decide(Decision.reject(up[cy].id, by=TREASURER, reason="no invoice"))

    assert done.status is RunStatus.SUCCEEDED
    assert done.output == "v1 done: pay:success pay:success pay:error"
    assert paid(db) == [("al", 5000), ("bo", 200)]
    assert done.usage["waited_seconds"] == 7 * DAY


def test_an_escalation_that_expires_too_rejects(gates: AgentRuntime, clock: FakeClock) -> None:
    waiting_at_gate(gates)
    clock.advance(7 * DAY)
    gates.sweep_approvals()
    clock.advance(7 * DAY)

    swept = gates.sweep_approvals()

    assert len(swept.expired) == 2
    assert swept.escalated == ()  # escalation happens once; it does not climb forever
    assert swept.runs[0].output == "v1 done: pay:error pay:error pay:error"


def test_a_decider_racing_the_sweep_exactly_one_wins(
    gates: AgentRuntime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, al, cy = waiting_at_gate(gates)
    store = gates.store
    # The sweep has read al as due; before it writes, a decider's update lands.
    listed = store.due_approvals

    def decider_first(now: float, *, limit: int = 1000) -> Any:
        due = listed(now, limit=limit)
        if due:
            assert store.decide_approval(
                al, Decided(status=ApprovalStatus.APPROVED, by="bob", comment="just in time")
            )
        return due

    monkeypatch.setattr(store, "due_approvals", decider_first)
    swept = gates.sweep_approvals(T0 + 7 * DAY)
    monkeypatch.undo()

    assert [r.id for r in swept.expired] == [cy]  # al's expiry lost: it was decided
    assert gates.approval(al).status is ApprovalStatus.APPROVED


def test_a_sweep_racing_a_decider_exactly_one_wins(
    gates: AgentRuntime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, al, _ = waiting_at_gate(gates)
    clock.advance(7 * DAY - 1)  # the decider's checks pass: not expired yet...
    store = gates.store
    record = store.decide_approval

    def sweep_first(*args: Any, **kwargs: Any) -> bool:
        assert store.expire_approval(al, now=T0 + 7 * DAY)  # ...but the sweep commits first
        return record(*args, **kwargs)

    monkeypatch.setattr(store, "decide_approval", sweep_first)
    with pytest.raises(ApprovalExpired, match=f"approval {al!r} expired undecided"):
        gates.decide(Decision.approve(al, by=PAYER))
    monkeypatch.undo()
    assert gates.approval(al).status is ApprovalStatus.EXPIRED


def test_cancelling_a_waiting_run_cancels_its_approvals(
    gates: AgentRuntime, clock: FakeClock
) -> None:
    thread, al, _ = waiting_at_gate(gates)
    clock.advance(DAY)

    run = gates.cancel(thread, reason="customer withdrew")

    assert (run.status, run.error, run.pending_approvals) == (
        RunStatus.CANCELLED,
        "customer withdrew",
        (),
    )
    assert run.usage["waited_seconds"] == DAY
    assert [(r.status, r.comment, r.decided_at) for r in gates.approvals(None)] == [
        (ApprovalStatus.CANCELLED, "run ended cancelled", T0 + DAY)
    ] * 2
    with pytest.raises(AlreadyDecided, match=f"'{al}' was cancelled because its run"):
        gates.decide(Decision.approve(al, by=PAYER))
    assert gates.resume(thread) == run  # nothing left to run
    with pytest.raises(IllegalTransition, match="from status 'cancelled' to 'cancelled'"):
        gates.cancel(thread, reason="again")
    with pytest.raises(ConfigError, match="needs a reason"):
        gates.cancel(thread, reason=" ")


def test_a_run_failing_at_its_gate_cancels_its_approvals(gates: AgentRuntime) -> None:
    thread, _, _ = waiting_at_gate(gates)
    lifecycle.move(gates.store, thread, RunStatus.FAILED, now=T0, error="operator error")
    assert {r.status for r in gates.approvals(None)} == {ApprovalStatus.CANCELLED}
    assert gates.approvals() == []


def test_an_edit_is_refused_when_the_app_no_longer_has_the_tool(
    gates: AgentRuntime, db: Path, clock: FakeClock
) -> None:
    _, al, _ = waiting_at_gate(gates)
    with (
        AgentRuntime(gates.deps.model, tools=[], policy=Policy.allow_all(), db=db) as bare,
        pytest.raises(InvalidDecision, match="this app has no tool 'pay'"),
    ):
        bare.decide(Decision.edit(al, args={"who": "al"}, by=PAYER))
    assert gates.approval(al).status is ApprovalStatus.PENDING


# the review queue --------------------------------------------------------------------------


def test_the_queue_pages_with_a_cursor_that_inserts_do_not_disturb(
    gates: AgentRuntime, clock: FakeClock
) -> None:
    for _ in range(3):
        waiting_at_gate(gates)
        clock.advance(10)
    everything = gates.approvals()
    assert len(everything) == 6
    assert everything.next_cursor is None

    first = gates.approvals(limit=4)
    assert first == everything[:4]
    assert first.next_cursor is not None
    # New requests arrive, and one listed on the first page is decided meanwhile.
    newest, _, _ = waiting_at_gate(gates)
    gates.decide(Decision.approve(first[0].id, by=PAYER))

    second = gates.approvals(limit=3, cursor=first.next_cursor)
    assert second.next_cursor is not None
    third = gates.approvals(limit=3, cursor=second.next_cursor)

    # Nothing repeated, nothing skipped: the rest of the old queue, then the new requests.
    assert [*second, *third] == [*everything[4:], *gates.approvals(thread_id=newest)]
    assert (len(third), third.next_cursor) == (1, None)


def test_queue_filters(gates: AgentRuntime, clock: FakeClock) -> None:
    acme, _, _ = waiting_at_gate(gates)
    globex = Principal("gus", tenant="globex", scopes=["pay"])
    other = gates.start(GOAL, principal=globex).thread_id
    clock.advance(7 * DAY)
    gates.sweep_approvals()  # all four escalate to treasurers

    assert {a.thread_id for a in gates.approvals(tenant="globex")} == {other}
    assert gates.approvals(role="payer") == []
    assert len(gates.approvals(role="treasurer", tenant="acme")) == 2
    assert {a.thread_id for a in gates.approvals("expired")} == {acme, other}
    assert len(gates.approvals(None)) == 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "stale"}, "unknown approval status 'stale'; use one of ['pending'"),
        ({"limit": 0}, "limit must be an int from 1 to 10000, got 0"),
        ({"cursor": "not-a-cursor"}, "queue cursor 'not-a-cursor' is not one this queue"),
        ({"cursor": "WzEsMl0"}, "queue cursor 'WzEsMl0' is not one"),  # [1,2]: wrong shape
        # Right shape, never handed out: a lone surrogate reached sqlite3 (an encoding error),
        # NaN matched no row (an empty page, as if the queue had ended), and so did inf.
        ({"cursor": "WzEsICJcdWQ4MDAiXQ"}, "queue cursor 'WzEsICJcdWQ4MDAiXQ' is not one"),
        ({"cursor": "W05hTiwgImFwcl94Il0"}, "queue cursor 'W05hTiwgImFwcl94Il0' is not one"),
        ({"cursor": "W0luZmluaXR5LCAiYSJd"}, "queue cursor 'W0luZmluaXR5LCAiYSJd' is not one"),
        ({"cursor": "WzFlNDAwLCAiYSJd"}, "queue cursor 'WzFlNDAwLCAiYSJd' is not one"),
    ],
)
def test_queue_refuses_bad_arguments(
    gates: AgentRuntime, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        gates.approvals(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "approvals_queue"),
        ({"tenant": "acme"}, "approvals_queue_by_tenant"),
        ({"role": "payer"}, "approvals_queue_by_role"),
    ],
)
def test_each_way_of_reading_the_queue_has_its_index(
    gates: AgentRuntime, filters: dict[str, str], index: str
) -> None:
    sql = "SELECT * FROM approvals WHERE status=?"
    params: list[Any] = ["pending"]
    for column, value in (("tenant", "tenant"), ("role", "required_role")):
        if column in filters:
            sql += f" AND {value}=?"
            params.append(filters[column])
    sql += " AND (requested_at, id) > (?, ?) ORDER BY requested_at, id LIMIT 50"
    with sqlite3.connect(gates.db) as conn:
        plan = " ".join(
            row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", (*params, 0.0, ""))
        )
    assert f"USING INDEX {index}" in plan
    assert "TEMP B-TREE" not in plan  # no sort: pages come straight off the index


def test_sensitive_fields_are_masked_at_any_depth() -> None:
    # The one masking path (agentrt.tracing.shown): declared fields, and what the Redactor
    # detects besides, such as an email or a value a sensitive field holds.
    value = {"pin": "4111", "who": "al", "nested": [{"pin": "4222", "x": 1, "to": "al@x.io"}]}
    assert masked(value, ["pin"]) == {
        "pin": "[REDACTED:field]",
        "who": "al",
        "nested": [{"pin": "[REDACTED:field]", "x": 1, "to": "[REDACTED:email]"}],
    }
    assert masked({"note": "pin 4111 given"}, [], Redactor()) == {"note": "pin 4111 given"}
    assert masked({"pin": "4111", "note": "pin 4111 given"}, ["pin"])["note"] == (
        "pin [REDACTED:field] given"
    )
    assert masked({"who": "al", "x": 1}, []) == {"who": "al", "x": 1}


# policy settings and the schema ------------------------------------------------------------


@pytest.mark.parametrize(
    ("approval", "message"),
    [
        ("{role: payer, expires_in: 1d, on_expiry: escalate}", "needs escalate_to: <role>"),
        ("{role: payer, on_expiry: escalate, escalate_to: boss}", "needs expires_in"),
        ("{role: payer, escalate_to: boss}", "escalate_to 'boss' is set but on_expiry is"),
        ("{role: payer, on_expiry: later}", "Input should be 'reject' or 'escalate'"),
    ],
)
def test_expiry_settings_are_checked_where_they_are_written(approval: str, message: str) -> None:
    text = f"rules:\n  - id: r\n    decision: require_approval\n    approval: {approval}\n"
    with pytest.raises(PolicyFileError) as info:
        Policy.from_yaml(text, source="p.yaml")
    assert message in str(info.value)
    assert "p.yaml:4" in str(info.value)


def test_a_version_1_file_migrates_and_keeps_its_requests_and_runs(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.executescript(MIGRATIONS[0])
        conn.executescript(
            "CREATE TABLE agentrt_meta (key TEXT PRIMARY KEY, value TEXT);"
            "INSERT INTO agentrt_meta VALUES ('schema_version', '1');"
            "INSERT INTO runs (thread_id, status, goal, principal, budget, usage, created_at,"
            " updated_at) VALUES ('t', 'awaiting_approval', 'g', '{\"id\": \"p\"}', '{}', '{}',"
            " 1, 1);"
            "INSERT INTO approvals (id, thread_id, step_id, kind, tool, args, args_digest, reason,"
            " requested_by, requested_at, expires_at, status) VALUES ('apr_old', 't', '0.0',"
            " 'action', 'pay', '{}', 'd', 'why', 'p', 1, 5, 'pending');"
        )
    store = SqliteStore(db)
    try:
        assert store.schema_version == SCHEMA_VERSION
        [old] = store.due_approvals(10)
        assert (old.id, old.on_expiry, old.escalate_to, old.escalated_to) == (
            "apr_old",
            "reject",
            None,
            None,
        )
        run = store.get_run("t")
        assert run is not None
        assert run.waited_seconds == 0.0
    finally:
        store.close()


def test_an_edit_that_leaves_a_masked_value_as_shown_keeps_the_real_one(
    gates: AgentRuntime,
) -> None:
    _, al, _ = waiting_at_gate(gates)
    # Arguments as a person was shown them (`agentrt show`, the API): the card masked.
    shown = {"who": "al", "cents": 4000, "card": "[REDACTED:field]"}
    gates.decide(Decision.edit(al, args=shown, by=PAYER))
    assert gates.approval(al).edited_args == {"who": "al", "cents": 4000, "card": "4111-1111"}
    # A card typed in is the card meant.
    _, again, _ = waiting_at_gate(gates)
    typed = {**shown, "card": "4999-0000"}
    gates.decide(Decision.edit(again, args=typed, by=PAYER))
    assert gates.approval(again).edited_args == typed
