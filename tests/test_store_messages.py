"""What every store must do with a thread's messages (MessageStore), on each backend of the
conformance suite: SQLite, PostgreSQL (a real server, tests/postgres.py) and memory."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agentrt.approvals import ApprovalRequest, ApprovalStatus
from agentrt.approvals.model import ApprovalQuery, Decided
from agentrt.budget import empty_usage
from agentrt.records import LeaseRecord, MessageOpening, MessageRecord, NewMessage
from agentrt.runs import lifecycle
from agentrt.runs.messages import goal_message
from agentrt.state import RunStatus, Usage
from agentrt.store.protocols import Store
from tests.conftest import FakeClock
from tests.test_store_conformance import ALICE, BACKENDS, HOST, W, claimed, new_run


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000.0)  # as the conformance suite's


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Store]:
    """Each backend of the conformance suite (tests/test_store_conformance.py)."""
    s = BACKENDS[request.param](request, clock)
    yield s
    s.close()


BOB = {"id": "bob", "roles": [], "tenant": "acme", "scopes": []}
LEASE = LeaseRecord(owner=f"{HOST}:1:me", host=HOST, pid=1, expires_at=1_030.0)


def spent(tokens: int, steps: int = 1) -> Usage:
    return {**empty_usage(), "input_tokens": tokens, "steps": steps}


def finished(store: Store, thread_id: str = "t1", output: str = "done") -> None:
    lifecycle.move(store, thread_id, RunStatus.RUNNING, now=store.clock())
    lifecycle.move(
        store, thread_id, RunStatus.SUCCEEDED, now=store.clock(), output=output, usage=spent(10)
    )


def opening(store: Store, index: int, **changes: Any) -> MessageOpening:
    run = store.get_run("t1")
    assert run is not None
    first = goal_message(run) if run.message == 0 else None
    made = MessageOpening(
        from_status=run.status,
        from_message=run.message,
        index=index,
        closing=run.status.value,
        output=run.output,
        spent=spent(10),
        first=first,
        usage_before=run.usage,
        lease=LEASE,
    )
    return dataclasses.replace(made, **changes)


def gate_request(
    thread_id: str, request_id: str, at: float, *, kind: str = "action", step_id: str = "0.0"
) -> ApprovalRequest:
    """A request a run waits on at a gate (``kind`` reconcile: an effect in doubt)."""
    return ApprovalRequest(
        id=request_id,
        thread_id=thread_id,
        step_id=step_id,
        kind=kind,
        tool="refund",
        args={},
        args_digest="d",
        rule_id="r",
        reason="big",
        required_role=None,
        four_eyes=False,
        requested_by="alice",
        tenant="acme",
        requested_at=at,
        expires_at=None,
    )


def test_messages_are_numbered_after_the_goal_and_queued_in_order(store: Store) -> None:
    new_run(store)
    assert store.thread_messages("t1") == []
    assert store.queued_message("t1") is None
    one = store.add_message(NewMessage(thread_id="t1", text="and 43?", principal=BOB))
    two = store.add_message(
        NewMessage(thread_id="t1", text="and 44?", principal=ALICE, budget={"max_steps": 3})
    )
    assert one is not None
    assert two is not None
    assert (one.index, one.status, one.text, one.principal) == (1, "queued", "and 43?", BOB)
    assert (two.index, two.budget, two.interrupt) == (2, {"max_steps": 3}, False)
    assert [m.index for m in store.thread_messages("t1")] == [1, 2]
    queued = store.queued_message("t1")
    assert queued is not None
    assert queued.index == 1
    # One sent to interrupt goes ahead of those merely queued.
    store.add_message(NewMessage(thread_id="t1", text="stop", principal=BOB, interrupt=True))
    queued = store.queued_message("t1")
    assert queued is not None
    assert (queued.index, queued.interrupt) == (3, True)
    assert store.add_message(NewMessage(thread_id="nope", text="x", principal=BOB)) is None


def test_taking_a_message_closes_the_one_before_and_reopens_the_run_leased(
    store: Store, clock: FakeClock
) -> None:
    new_run(store)
    finished(store)
    store.add_message(NewMessage(thread_id="t1", text="and 43?", principal=BOB))
    clock.advance(5)
    opened = store.open_message("t1", opening(store, 1))
    assert opened is not None
    assert (opened.status, opened.message, opened.output, opened.error) == (
        RunStatus.RUNNING,
        1,
        None,
        None,
    )
    assert opened.usage == spent(10)  # the thread's usage goes on across messages
    assert store.lease_of("t1") == LEASE
    goal, one = store.thread_messages("t1")
    assert (goal.index, goal.text, goal.status, goal.output, goal.usage) == (
        0,
        "refund order 7",
        "succeeded",
        "done",
        spent(10),
    )
    assert goal.ended_at == clock.now
    assert (one.status, one.usage_before, one.started_at) == ("current", spent(10), clock.now)
    # The run is no longer where the opening was worked out from: nothing is written.
    store.add_message(NewMessage(thread_id="t1", text="and 44?", principal=BOB))
    assert store.open_message("t1", opening(store, 2, from_status=RunStatus.SUCCEEDED)) is None
    assert store.open_message("t1", opening(store, 2, from_message=0)) is None
    queued = store.queued_message("t1")
    assert queued is not None
    assert queued.index == 2


def test_a_message_that_had_ended_keeps_its_end_when_the_next_one_is_taken(
    store: Store, clock: FakeClock
) -> None:
    new_run(store)
    finished(store)
    ended = clock.now
    store.add_message(NewMessage(thread_id="t1", text="and 43?", principal=BOB))
    clock.advance(40 * 86_400)  # taken 40 days later
    assert store.open_message("t1", opening(store, 1, ended_at=ended)) is not None
    goal, one = store.thread_messages("t1")
    assert (goal.ended_at, one.started_at) == (ended, clock.now)


def test_a_message_a_budget_stopped_keeps_why_once_the_thread_goes_on(store: Store) -> None:
    new_run(store)
    lifecycle.move(store, "t1", RunStatus.RUNNING, now=store.clock())
    report = {"limit": "max_tool_calls", "message": "over"}
    lifecycle.move(store, "t1", RunStatus.BUDGET_EXCEEDED, now=store.clock(), budget_report=report)
    store.add_message(NewMessage(thread_id="t1", text="go on", principal=BOB))
    opened = store.open_message("t1", opening(store, 1))
    assert opened is not None
    assert opened.budget_report is None  # the run goes on: its row no longer says it
    goal, one = store.thread_messages("t1")
    assert (goal.status, goal.budget_report) == ("budget_exceeded", report)
    assert one.budget_report is None
    # A message that ended otherwise keeps no report.
    lifecycle.move(store, "t1", RunStatus.SUCCEEDED, now=store.clock(), output="ok")
    store.add_message(NewMessage(thread_id="t1", text="and again", principal=BOB))
    assert store.open_message("t1", opening(store, 2)) is not None
    assert [(m.status, m.budget_report) for m in store.thread_messages("t1")] == [
        ("budget_exceeded", report),
        ("succeeded", None),
        ("current", None),
    ]
    # An opening worked out from a row that moved since writes nothing, report or not.
    store.add_message(NewMessage(thread_id="t1", text="late", principal=BOB))
    stale = opening(store, 3, from_status=RunStatus.BUDGET_EXCEEDED, closing="budget_exceeded")
    assert store.open_message("t1", stale) is None
    assert [m.status for m in store.thread_messages("t1")][-2:] == ["current", "queued"]


def test_a_queued_message_is_taken_once(store: Store) -> None:
    new_run(store)
    finished(store)
    store.add_message(NewMessage(thread_id="t1", text="and 43?", principal=BOB))
    first = opening(store, 1)
    assert store.open_message("t1", first) is not None
    # A second taker worked out from the same row finds it taken.
    assert store.open_message("t1", first) is None
    assert [m.status for m in store.thread_messages("t1")] == ["succeeded", "current"]


def test_an_interrupting_message_cancels_the_pending_requests_of_the_gate(
    store: Store, clock: FakeClock
) -> None:
    new_run(store)
    lifecycle.move(store, "t1", RunStatus.RUNNING, now=clock())
    lifecycle.move(store, "t1", RunStatus.AWAITING_APPROVAL, now=clock())
    store.put_approval(gate_request("t1", "a1", clock()))
    assert store.stop_requests("t1") == (None, False)
    store.add_message(NewMessage(thread_id="t1", text="never mind", principal=BOB, interrupt=True))
    assert store.stop_requests("t1") == (None, True)
    clock.advance(60)
    taken = opening(
        store,
        1,
        closing="interrupted",
        output=None,
        add_waited=60.0,
        cancel_pending="superseded by message #1",
    )
    opened = store.open_message("t1", taken)
    assert opened is not None
    assert opened.status is RunStatus.RUNNING
    assert opened.waited_seconds == 60.0
    assert store.stop_requests("t1") == (None, False)
    [cancelled] = store.list_approvals(ApprovalQuery(thread_id="t1", status=None))
    assert (cancelled.status, cancelled.comment) == (
        ApprovalStatus.CANCELLED,
        "superseded by message #1",
    )
    assert [m.status for m in store.thread_messages("t1")] == ["interrupted", "current"]


def test_stop_requests_read_a_cancel_and_an_interrupt_at_once(store: Store) -> None:
    new_run(store)
    assert store.stop_requests("t1") == (None, False)
    assert store.stop_requests("nope") == (None, False)
    store.add_message(NewMessage(thread_id="t1", text="later", principal=BOB))
    assert store.stop_requests("t1") == (None, False)  # merely queued: nothing to stop
    store.request_cancel("t1", "enough")
    assert store.stop_requests("t1") == ("enough", False)


def test_the_stop_mark_moves_with_each_stop_request_written(store: Store) -> None:
    new_run(store)
    mark = store.stop_mark()
    if mark is None:  # PostgreSQL: workers on other machines; every look reads
        return
    store.add_message(NewMessage(thread_id="t1", text="later", principal=BOB))
    assert store.stop_mark() == mark  # merely queued: nothing to stop
    store.add_message(NewMessage(thread_id="t1", text="now", principal=BOB, interrupt=True))
    interrupted = store.stop_mark()
    assert interrupted != mark
    store.request_cancel("t1", "enough")
    assert store.stop_mark() not in (mark, interrupted)


def test_no_store_but_postgres_goes_without_a_stop_mark(store: Store) -> None:
    kind = type(store).__name__
    assert (store.stop_mark() is None) == (kind == "PostgresStore"), kind


def test_a_thread_a_message_waits_for_is_claimed(store: Store, clock: FakeClock) -> None:
    new_run(store, "idle")
    finished(store, "idle")
    new_run(store, "queued")
    finished(store, "queued")
    new_run(store, "at-gate")
    lifecycle.move(store, "at-gate", RunStatus.RUNNING, now=clock())
    lifecycle.move(store, "at-gate", RunStatus.AWAITING_APPROVAL, now=clock())
    new_run(store, "at-gate-interrupted")
    lifecycle.move(store, "at-gate-interrupted", RunStatus.RUNNING, now=clock())
    lifecycle.move(store, "at-gate-interrupted", RunStatus.AWAITING_APPROVAL, now=clock())
    for thread_id in ("at-gate", "at-gate-interrupted"):
        store.put_approval(gate_request(thread_id, f"a-{thread_id}", clock()))
    store.add_message(NewMessage(thread_id="queued", text="more", principal=BOB))
    store.add_message(NewMessage(thread_id="at-gate", text="later", principal=BOB))
    store.add_message(
        NewMessage(thread_id="at-gate-interrupted", text="now", principal=BOB, interrupt=True)
    )
    # A finished thread with a message queued, and a gate a message interrupts; not an idle
    # thread, nor a gate whose message waits its turn.
    assert sorted(claimed(store).thread_ids) == ["at-gate-interrupted", "queued"]
    assert claimed(store, owner=dataclasses.replace(W, owner="w2")).thread_ids == ()


def test_an_interrupt_waits_unclaimed_while_a_reconcile_gate_holds_the_thread(
    store: Store, clock: FakeClock
) -> None:
    # Taken over, the thread could not take the message (an effect in doubt is settled
    # first): claimed, it would be let go and claimed again at once, over and over.
    new_run(store)
    lifecycle.move(store, "t1", RunStatus.RUNNING, now=clock())
    lifecycle.move(store, "t1", RunStatus.AWAITING_APPROVAL, now=clock())
    store.put_approval(gate_request("t1", "r1", clock(), kind="reconcile"))
    store.add_message(NewMessage(thread_id="t1", text="now", principal=BOB, interrupt=True))
    assert claimed(store).thread_ids == ()
    # Settled, the thread moves again: claimed to go on (and take the message after).
    assert store.decide_approval("r1", Decided(status=ApprovalStatus.RESOLVED, by="olga"))
    assert claimed(store).thread_ids == ("t1",)


def test_a_finished_thread_a_message_waits_for_is_not_pruned(
    store: Store, clock: FakeClock
) -> None:
    for thread_id in ("idle", "queued"):
        new_run(store, thread_id)
        finished(store, thread_id)
    store.add_message(NewMessage(thread_id="queued", text="one more thing", principal=BOB))
    assert store.prunable_runs(before=clock() + 1) == ["idle"]


def test_a_run_that_wakes_after_prune_chose_it_is_not_deleted(
    store: Store, clock: FakeClock
) -> None:
    # prune reads the runs it may delete, then deletes each: whatever woke a run between
    # the two (a message sent or taken, a lease taken, a change) keeps it and all it has.
    for thread_id in ("t1", "queued", "leased", "touched", "idle"):
        new_run(store, thread_id)
        finished(store, thread_id)
    cutoff = clock() + 1
    chosen = store.prunable_runs(before=cutoff)
    assert chosen == ["idle", "leased", "queued", "t1", "touched"]

    store.add_message(NewMessage(thread_id="t1", text="and 43?", principal=BOB))
    assert store.open_message("t1", opening(store, 1)) is not None  # taken: running again
    store.add_message(NewMessage(thread_id="queued", text="and 44?", principal=BOB))
    assert store.take_lease("leased", LEASE, expected=None)  # held until 1030
    clock.advance(5)
    store.set_budget("touched", {"max_steps": 9})  # changed after the cutoff

    deleted = {t: store.delete_run(t, idle_before=cutoff) for t in chosen}
    assert deleted == {
        "idle": True,
        "leased": False,
        "queued": False,
        "t1": False,
        "touched": False,
    }
    assert [t for t in chosen if store.get_run(t) is None] == ["idle"]
    assert [m.index for m in store.thread_messages("queued")] == [1]
    assert [m.status for m in store.thread_messages("t1")] == ["succeeded", "current"]
    assert store.delete_run("idle", idle_before=cutoff) is False  # gone already
    assert store.delete_run("nobody", idle_before=cutoff) is False
    # A lease left on a finished run (its process died) holds it only until it expires.
    clock.advance(30)
    assert store.delete_run("leased", idle_before=cutoff) is True


def test_a_deleted_run_takes_its_messages_with_it(store: Store) -> None:
    new_run(store)
    store.add_message(NewMessage(thread_id="t1", text="more", principal=BOB))
    store.delete_run("t1")
    assert store.thread_messages("t1") == []
    new_run(store)  # the same id, a new thread: numbered from 1 again
    again = store.add_message(NewMessage(thread_id="t1", text="more", principal=BOB))
    assert again is not None
    assert again.index == 1


def test_only_if_idle_keeps_a_message_only_on_a_thread_with_nothing_to_do(
    store: Store, clock: FakeClock
) -> None:
    new_run(store)
    lifecycle.move(store, "t1", RunStatus.RUNNING, now=clock())
    later = NewMessage(thread_id="t1", text="later", principal=BOB)
    assert store.add_message(later, only_if_idle=True) is None  # at work
    finished(store)
    kept = store.add_message(later, only_if_idle=True)
    assert kept is not None
    assert kept.index == 1
    # One is queued: the thread has something to do, for only_if_idle, not for the others.
    assert store.add_message(later, only_if_idle=True) is None
    assert store.add_message(later) is not None
    assert (
        store.add_message(dataclasses.replace(later, thread_id="nope"), only_if_idle=True) is None
    )
    assert [m.index for m in store.thread_messages("t1")] == [1, 2]


def test_of_messages_sent_at_once_to_an_idle_thread_only_if_idle_keeps_one(
    store: Store,
) -> None:
    new_run(store)
    finished(store)
    together = threading.Barrier(6, timeout=10)

    def send(n: int) -> MessageRecord | None:
        together.wait()
        return store.add_message(
            NewMessage(thread_id="t1", text=f"m{n}", principal=BOB), only_if_idle=True
        )

    with ThreadPoolExecutor(6) as pool:
        kept = [m for m in pool.map(send, range(6)) if m is not None]
    assert len(kept) == 1
    assert [m.text for m in store.thread_messages("t1")] == [kept[0].text]


def test_an_interrupting_message_supersedes_an_approval_never_carried_out(
    store: Store, clock: FakeClock
) -> None:
    new_run(store)
    lifecycle.move(store, "t1", RunStatus.RUNNING, now=clock())
    lifecycle.move(store, "t1", RunStatus.AWAITING_APPROVAL, now=clock())
    asked = clock()
    for n in (1, 2, 3):
        store.put_approval(gate_request("t1", f"a{n}", asked, step_id=f"0.{n}"))
    clock.advance(10)  # bob decides two of them after 10 s, a3 stays pending
    for n, comment in ((1, None), (2, "checked with finance")):
        assert store.decide_approval(
            f"a{n}", Decided(status=ApprovalStatus.APPROVED, by="bob", comment=comment)
        )
    clock.advance(1000)  # the interrupt comes much later
    store.add_message(NewMessage(thread_id="t1", text="stop", principal=BOB, interrupt=True))
    taken = opening(
        store,
        1,
        closing="interrupted",
        cancel_pending="superseded by message #1",
        supersede=("a2",),
    )
    assert store.open_message("t1", taken) is not None
    found = {r.id: r for r in store.list_approvals(ApprovalQuery(thread_id="t1", status=None))}
    assert found["a1"].status is ApprovalStatus.APPROVED  # carried out before: left alone
    assert found["a1"].superseded is None

    def kept(r: ApprovalRequest) -> tuple[Any, ...]:
        return (r.status, r.decided_by, r.decided_at, r.comment, r.superseded)

    # Bob's decision stays as he gave it (when, and why); that it never ran is said apart.
    assert kept(found["a2"]) == (
        ApprovalStatus.CANCELLED,
        "bob",
        asked + 10,
        "checked with finance",
        "superseded by message #1",
    )
    assert found["a2"].waited_seconds == 10.0
    # Nobody decided a3: it is cancelled now, and says why where a decision's note goes.
    assert kept(found["a3"]) == (
        ApprovalStatus.CANCELLED,
        None,
        clock(),
        "superseded by message #1",
        "superseded by message #1",
    )
