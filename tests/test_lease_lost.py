"""A process that lost its run's lease acts no more (LeaseLost), and a resume reads what
it feeds the graph under the lease.

A driver paused past its lease (a long collection, a frozen VM) while another process took
the run over must not, once it wakes, act a second time: the ledger reserves an effect
only while the run's lease is still the driver's, and a driver whose lease keeper found
the lease lost stops before its next step. Either way it returns the run as it stands.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage

from agentrt import AgentRuntime, Decision, Policy, Principal, Run, RunStatus, tool
from agentrt.errors import RunBusy
from agentrt.runs.lease import LeaseOwner, acquire
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import FakeClock

TTL = 30.0
P = Principal("ops")


class Paused:
    """A model call the test holds: A's process, paused mid-call; woken, it answers with a
    payment, or raises ``error`` (a connection the pause broke, say)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.inside = threading.Event()
        self.wake = threading.Event()
        self.error = error

    def __call__(self, messages: list[BaseMessage]) -> AIMessage:
        self.inside.set()
        assert self.wake.wait(timeout=30), "the test never woke the paused call"
        if self.error is not None:
            raise self.error
        return ai("", tool_call("send_payment", {"to": "al", "cents": 500}))


@pytest.fixture
def payments() -> list[dict[str, Any]]:
    return []


def runtime(
    db: Path,
    clock: FakeClock,
    model: Any,
    payments: list[dict[str, Any]],
    policy: Policy | None = None,
) -> AgentRuntime:
    @tool(effect="write")
    def send_payment(to: str, cents: int) -> str:
        """Send money (not idempotent).

        Args:
            to: Who gets it.
            cents: How much.
        """
        payments.append({"to": to, "cents": cents})
        return "sent"

    return AgentRuntime(
        model,
        tools=[send_payment],
        policy=policy or Policy.allow_all(),
        db=db,
        clock=clock,
        lease_ttl=TTL,
    )


@pytest.fixture
def paused_a(
    db: Path, clock: FakeClock, payments: list[dict[str, Any]], request: pytest.FixtureRequest
) -> Iterator[tuple[AgentRuntime, Callable[[], Run]]]:
    """Runtime A, driving run "t" and paused in its first model call (which raises the
    test's ``error`` parameter once woken, if it has one); and what wakes it and gives what
    its start() returned."""
    paused = Paused(getattr(request, "param", None))
    a = runtime(db, clock, ScriptedChatModel([paused, "paid"]), payments)
    ended: list[Any] = []

    def start() -> None:
        try:
            ended.append(a.start("pay al", principal=P, thread_id="t"))
        except Exception as exc:  # what A raised, for the test to see
            ended.append(exc)

    thread = threading.Thread(target=start)
    thread.start()
    assert paused.inside.wait(timeout=30)

    def wake() -> Run:
        paused.wake.set()
        thread.join(timeout=30)
        assert ended, "A never ended"
        assert isinstance(ended[0], Run), f"A raised {ended[0]!r}"
        return ended[0]

    yield a, wake
    paused.wake.set()
    thread.join(timeout=30)
    a.close()


def checkpoint_rows(db: Path) -> tuple[int, int]:
    """The thread's checkpoints and node writes in the file."""
    with sqlite3.connect(db) as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(f"SELECT count(*) FROM {table} WHERE thread_id='t'").fetchone()[0]
            for table in ("checkpoints", "writes")
        )


def take_over(db: Path, clock: FakeClock, payments: list[dict[str, Any]]) -> Run:
    """B takes the run over once A's lease has expired, and carries it to its end."""
    clock.advance(TTL + 1)
    model = ScriptedChatModel(
        [ai("", tool_call("send_payment", {"to": "al", "cents": 500})), "paid"]
    )
    with runtime(db, clock, model, payments) as b:
        return b.resume("t")


def test_a_driver_that_lost_its_lease_is_refused_its_next_checkpoint(
    db: Path, clock: FakeClock, payments: list[dict[str, Any]], paused_a: Any
) -> None:
    a, wake = paused_a
    taken = take_over(db, clock, payments)
    assert (taken.status, payments) == (RunStatus.SUCCEEDED, [{"to": "al", "cents": 500}])

    # A wakes before its lease keeper has looked: its next checkpoint is refused, with
    # nothing written (the lease is no longer A's), and A stops there.
    written = checkpoint_rows(db)
    ended = wake()
    assert payments == [{"to": "al", "cents": 500}]  # once, by B
    assert ended.status is RunStatus.SUCCEEDED  # the run as B left it
    assert checkpoint_rows(db) == written  # A wrote nothing over B's run
    assert [(e.status, e.attempts) for e in a.store.list_effects("t")] == [("done", 1)]


def test_a_driver_whose_keeper_found_its_lease_lost_stops_before_its_next_step(
    db: Path, clock: FakeClock, payments: list[dict[str, Any]], paused_a: Any
) -> None:
    a, wake = paused_a
    take_over(db, clock, payments)
    held = a._driver.held_leases["t"]
    held.due = 0.0  # A's keeper renews now, before A goes on: the store says it is lost
    a._driver.leases.renew_due()
    assert held.lost

    written = checkpoint_rows(db)
    ended = wake()
    assert payments == [{"to": "al", "cents": 500}]
    assert ended.status is RunStatus.SUCCEEDED
    assert checkpoint_rows(db) == written
    assert "t" not in a._driver.held_leases  # let go with the segment


def test_a_resume_reads_what_to_feed_the_graph_under_the_runs_lease(
    db: Path, clock: FakeClock, payments: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read without the lease, a resume's input could go stale while another driver runs a
    # segment, and then start the run over from its goal (its usage and budget spent from
    # zero). Under the lease, the other driver finds the run busy.
    script = [ai("", tool_call("send_payment", {"to": "al", "cents": 500})), "paid"]
    with (
        runtime(db, clock, ScriptedChatModel(script), payments) as x,
        runtime(db, clock, ScriptedChatModel(list(script)), payments) as y,
    ):
        thread_id = x.create("pay al", principal=P).thread_id
        read = x._driver.resume_input
        meanwhile: list[BaseException] = []

        def resume_input(*args: Any) -> Any:
            with pytest.raises(RunBusy) as busy:  # y, while x works out its input
                y.resume(thread_id)
            meanwhile.append(busy.value)
            return read(*args)

        monkeypatch.setattr(x._driver, "resume_input", resume_input)
        run = x.resume(thread_id)
    assert len(meanwhile) == 1
    assert (run.status, payments) == (RunStatus.SUCCEEDED, [{"to": "al", "cents": 500}])
    assert (run.usage["tool_calls"], run.usage["steps"]) == (1, 2)


def lease_taken_by_b(a: AgentRuntime, clock: FakeClock) -> str:
    """A's lease expires and B takes the run over, in the middle of driving it."""
    clock.advance(TTL + 1)
    b = LeaseOwner.this_process("b")
    acquire(a.store, "t", b, TTL, now=clock())
    return b.label


@pytest.mark.parametrize(
    "paused_a",
    [ValueError("the model broke"), ConnectionError("connection reset")],
    indirect=True,
    ids=["fails", "waits-to-retry"],
)
def test_a_driver_that_lost_its_lease_neither_fails_the_run_nor_puts_it_off(
    clock: FakeClock, paused_a: Any
) -> None:
    # A wakes to an error (a pause breaks connections): failing the run, or putting it off
    # to retry, is for the lease's holder to say, not A.
    a, wake = paused_a
    b = lease_taken_by_b(a, clock)
    ended = wake()
    row = a.store.get_run("t")
    assert row is not None
    assert (ended.status, row.status, row.lease_owner) == (RunStatus.RUNNING,) * 2 + (b,)


def test_a_driver_that_lost_its_lease_at_a_gate_leaves_the_run_to_its_holder(
    db: Path, clock: FakeClock, payments: list[dict[str, Any]]
) -> None:
    # A's gate node interrupts with its writes held; B took the lease meanwhile: they are
    # refused as the segment ends, and the run is not moved to awaiting_approval by A.
    policy = Policy.from_yaml(
        "rules:\n  - id: pay\n    match: {tools: [send_payment]}\n    decision: require_approval\n"
    )
    script = [ai("", tool_call("send_payment", {"to": "al", "cents": 5})), "ok"]
    with runtime(db, clock, ScriptedChatModel(script), payments, policy=policy) as a:
        asked = a.store.put_approval
        b: list[str] = []

        def put_approval(request: Any) -> Any:  # A, paused in its gate, loses its lease
            b.append(lease_taken_by_b(a, clock))
            return asked(request)

        a.store.put_approval = put_approval  # type: ignore[method-assign]
        ended = a.start("pay al", principal=P, thread_id="t")
        row = a.store.get_run("t")
    assert row is not None
    assert (ended.status, row.status, row.lease_owner) == (RunStatus.RUNNING,) * 2 + (b[0],)


def test_a_message_waiting_for_a_run_another_took_over_is_left_to_it(
    db: Path, clock: FakeClock, payments: list[dict[str, Any]], paused_a: Any
) -> None:
    # After A stops, a message interrupting the thread waits: B, which drives the run,
    # takes it; A's caller gets the run as it stands, not RunBusy.
    a, wake = paused_a
    lease_taken_by_b(a, clock)
    a.keep_message("t", "actually, stop", principal=P, double_texting="interrupt")
    assert wake().status is RunStatus.RUNNING
    assert payments == []


def test_a_run_this_process_drives_is_not_driven_twice_by_it(
    db: Path, clock: FakeClock, payments: list[dict[str, Any]], paused_a: Any
) -> None:
    # A's segment is paused, its lease expired here (its renewals failing, say): the same
    # runtime's resume finds the run busy, not a second segment of it beside the first.
    a, wake = paused_a
    clock.advance(TTL + 1)
    with pytest.raises(RunBusy):
        a.resume("t")
    assert wake().status is RunStatus.SUCCEEDED
    assert payments == [{"to": "al", "cents": 500}]  # once


def test_a_call_that_returns_after_its_attempt_was_retried_records_nothing_over_the_retry(
    db: Path, clock: FakeClock
) -> None:
    # A is paused inside a payment past its lease. B takes the run over, finds the call in
    # doubt, a person says it did not happen (retry), and B pays again. A wakes while B's
    # attempt is in flight: its outcome is attempt 1's, never written over attempt 2's row
    # (had B died then, the ledger would say done and hide B's payment in doubt).
    inside_a, wake_a = threading.Event(), threading.Event()
    seen_by_b: list[tuple[str, int, Any]] = []
    ended_a: list[Any] = []

    @tool(effect="write")
    def send_payment(to: str, cents: int) -> str:
        """Send money (not idempotent).

        Args:
            to: Who gets it.
            cents: How much.
        """
        if not inside_a.is_set():  # A's call: paused past its lease
            inside_a.set()
            assert wake_a.wait(timeout=30), "the test never woke A"
            return "sent by A"
        wake_a.set()  # B's call, in flight: A wakes and returns meanwhile
        thread.join(timeout=30)
        row = b.store.get_effect(b.store.list_effects("t")[0].key)
        assert row is not None
        seen_by_b.append((row.status, row.attempts, row.result))
        return "sent by B"

    def app() -> AgentRuntime:
        script = [ai("", tool_call("send_payment", {"to": "al", "cents": 500})), "paid"]
        return AgentRuntime(
            ScriptedChatModel(script), tools=[send_payment], policy=Policy.allow_all(),
            db=db, clock=clock, lease_ttl=TTL,
        )  # fmt: skip

    def start() -> None:
        try:
            ended_a.append(a.start("pay al", principal=P, thread_id="t"))
        except Exception as exc:  # what A raised, for the test to see
            ended_a.append(exc)

    with app() as a, app() as b:
        thread = threading.Thread(target=start)
        thread.start()
        assert inside_a.wait(timeout=30)
        clock.advance(TTL + 1)
        waiting = b.resume("t")
        request = waiting.pending_approval
        assert request is not None
        assert request.kind == "reconcile"
        done = b.decide(Decision.retry(request.id, by=P))
        thread.join(timeout=30)
        [effect] = b.store.list_effects("t")
    assert seen_by_b == [("started", 2, None)]  # A wrote nothing over B's attempt
    assert isinstance(ended_a[0], Run), ended_a
    assert done.status is RunStatus.SUCCEEDED
    assert (effect.status, effect.attempts, effect.result) == ("done", 2, "sent by B")
