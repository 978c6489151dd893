"""One thread renews the lease of every run a process drives (agentrt.runs.lease_keeper):
on time, on the store's clock, never past a let-go, and a lost lease is reported once."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from agentrt import AgentRuntime, Policy, tool
from agentrt.budget import empty_usage
from agentrt.records import LeaseRenewal, NewRun
from agentrt.runs.lease import LeaseOwner, acquire
from agentrt.runs.lease_keeper import LeaseKeeper
from agentrt.steps import Steps, adrive, blocking
from agentrt.store import Store, open_store
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import FakeClock, started_at_once

TTL = 30.0


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    opened = open_store(str(db))
    yield opened.store
    opened.store.close()


def _leased(store: Store, thread_id: str, owner: LeaseOwner, clock: FakeClock) -> None:
    store.create_run(
        NewRun(thread_id=thread_id, goal="g", principal={"id": "p"}, budget={}, usage=empty_usage())
    )
    acquire(store, thread_id, owner, TTL, now=clock())


def _lease(db: Path, thread_id: str) -> tuple[Any, ...]:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT lease_owner, lease_expires_at FROM runs WHERE thread_id=?", (thread_id,)
        ).fetchone()
    return tuple(row)


def test_each_lease_is_renewed_a_third_of_its_ttl_after_it_was_last(
    store: Store, db: Path, clock: FakeClock
) -> None:
    ticks = FakeClock(0.0)  # when to renew: the process's monotonic clock
    keeper = LeaseKeeper(store, clock, monotonic=ticks)
    me = LeaseOwner.this_process("me")
    _leased(store, "a", me, clock)
    _leased(store, "b", me, clock)
    keeper._thread = cast(Any, "driven by the test")  # renew_due is called by hand here
    a = keeper.keep("a", me.label, TTL)
    ticks.advance(4.0)
    keeper.keep("b", me.label, TTL)
    started = clock()

    assert keeper.renew_due() == pytest.approx(6.0)  # nothing due yet: "a" is due first
    assert _lease(db, "a") == (me.label, started + TTL)
    ticks.advance(6.0)
    clock.advance(6.0)
    assert keeper.renew_due() == pytest.approx(4.0)  # "a" renewed; "b" due in 4 s
    assert _lease(db, "a") == (me.label, clock() + TTL)  # to ttl past the store's now
    assert _lease(db, "b") == (me.label, started + TTL)
    keeper.let_go(a)
    ticks.advance(10.0)
    clock.advance(10.0)
    assert keeper.renew_due() == pytest.approx(10.0)  # "b" renewed (late), "a" no more
    assert _lease(db, "a") == (me.label, started + 6.0 + TTL)
    assert _lease(db, "b") == (me.label, clock() + TTL)
    assert keeper.kept() == ["b"]


def test_each_renewal_writes_the_runs_active_time_the_node_in_flight_included(
    store: Store, clock: FakeClock
) -> None:
    ticks = FakeClock(0.0)
    timed = FakeClock(500.0)  # the runtime's clock, which times the nodes: not the store's
    keeper = LeaseKeeper(store, clock, monotonic=ticks, run_clock=timed)
    me = LeaseOwner.this_process("me")
    keeper._thread = cast(Any, "driven by the test")
    _leased(store, "counted", me, clock)
    _leased(store, "uncounted", me, clock)
    counted = keeper.keep("counted", me.label, TTL, active=7.0)  # a segment before spent 7 s
    keeper.keep("uncounted", me.label, TTL)  # nothing counted (a lease held off)

    def renewed() -> dict[str, float | None]:
        ticks.advance(TTL / 3)
        keeper.renew_due()
        return {
            t: run.live_active_seconds
            for t in ("counted", "uncounted")
            if (run := store.get_run(t))
        }

    assert renewed() == {"counted": 7.0, "uncounted": None}
    counted.counted = (7.0, timed())  # a node begins (the node wrapper notes it)
    timed.advance(25.0)
    assert renewed() == {"counted": 32.0, "uncounted": None}  # 25 s into the node so far
    timed.advance(8.0)
    counted.counted = (40.0, None)  # it ended, 33 s in all; between nodes nothing counts
    timed.advance(1000.0)
    assert renewed() == {"counted": 40.0, "uncounted": None}
    counted.counted = (40.0, timed() + 5)  # a clock stepped back counts no negative time
    assert renewed() == {"counted": 40.0, "uncounted": None}


def test_a_lease_another_owner_took_is_reported_lost_once_and_renewed_no_more(
    store: Store, db: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    ticks = FakeClock(0.0)
    keeper = LeaseKeeper(store, clock, monotonic=ticks)
    mine = LeaseOwner(token="me", host="elsewhere", pid=1)
    theirs = LeaseOwner(token="them", host="elsewhere", pid=2)
    _leased(store, "lost", mine, clock)
    _leased(store, "kept", mine, clock)
    keeper._thread = cast(Any, "driven by the test")
    lost = keeper.keep("lost", mine.label, TTL)
    kept = keeper.keep("kept", mine.label, TTL)
    clock.advance(TTL + 1)  # both expired; another host takes one of them
    acquire(store, "lost", theirs, TTL, now=clock())
    ticks.advance(TTL / 3)

    with caplog.at_level(logging.WARNING, logger="agentrt"):
        keeper.renew_due()
        keeper.renew_due()

    assert [r.getMessage() for r in caplog.records] == ["lost the lease on run 'lost'"]
    assert keeper.kept() == ["kept"]
    assert (lost.lost, kept.lost) == (True, False)  # the segment's next step looks
    assert _lease(db, "lost") == (theirs.label, clock() + TTL)
    assert _lease(db, "kept") == (mine.label, clock() + TTL)


class _Renewals:
    """A store whose renewals the test holds and answers (None: the run's row was busy)."""

    def __init__(self, answer: bool | Exception | None = True) -> None:
        self.answer = answer
        self.renewing = threading.Event()
        self.go_on = threading.Event()
        self.renewed: list[str] = []
        self.starved = False
        """A renewal waited 30 s for the test to let it go on: the test's side was held."""

    def renew_leases(self, leases: list[LeaseRenewal]) -> dict[str, bool | None]:
        self.renewing.set()
        if not self.go_on.wait(timeout=30):
            self.starved = True
        if isinstance(self.answer, Exception):
            raise self.answer
        self.renewed.extend(lease.thread_id for lease in leases)
        return {lease.thread_id: self.answer for lease in leases}


def _by_hand(answer: bool | Exception | None = True) -> tuple[_Renewals, FakeClock, LeaseKeeper]:
    """A keeper whose renewals the test makes (renew_due) on its own monotonic clock, over a
    store that answers each renewal at once with ``answer``."""
    store = _Renewals(answer)
    store.go_on.set()
    ticks = FakeClock(0.0)
    keeper = LeaseKeeper(cast(Any, store), FakeClock(), monotonic=ticks)
    keeper._thread = cast(Any, "driven by the test")
    return store, ticks, keeper


def test_a_refusal_for_a_lease_let_go_meanwhile_is_not_reported_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _Renewals(answer=False)  # the lease was released while the renewal waited
    keeper = LeaseKeeper(cast(Any, store), FakeClock())
    kept = keeper.keep("t", "me", 0.0)  # due at once, in the keeper's thread
    assert store.renewing.wait(timeout=30)
    keeper.let_go(kept)  # returns while the renewal waits: it never waits on one
    store.go_on.set()
    with caplog.at_level(logging.WARNING, logger="agentrt"):
        _ended(keeper)
    assert store.renewed == ["t"]
    assert not [r for r in caplog.records if "lost the lease" in r.getMessage()]


def test_a_renewal_that_fails_is_asked_again_soon_and_logged_once_till_one_goes_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failure = sqlite3.OperationalError("database is locked")
    store, ticks, keeper = _by_hand(answer=failure)
    keeper.keep("t", "me", TTL)
    ticks.advance(TTL / 3)
    logged = ["could not renew the lease on run 't'; asking again"]
    with caplog.at_level(logging.ERROR, logger="agentrt"):
        assert keeper.renew_due() == pytest.approx(TTL / 30)  # asked again in a second
        ticks.advance(TTL / 30)
        assert keeper.renew_due() == pytest.approx(TTL / 30)  # failed again: not logged again
        assert [r.getMessage() for r in caplog.records] == logged
        store.answer = True
        ticks.advance(TTL / 30)
        assert keeper.renew_due() == pytest.approx(TTL / 3)  # went through
        store.answer = failure
        ticks.advance(TTL / 3)
        keeper.renew_due()  # a new failure is logged again
    assert [r.getMessage() for r in caplog.records] == logged * 2
    assert keeper.kept() == ["t"]
    assert store.renewed == ["t"]


def test_leases_due_within_a_moment_of_each_other_are_renewed_together() -> None:
    store, ticks, keeper = _by_hand()
    keeper.keep("a", "me", TTL)
    ticks.advance(TTL / 60)  # half a moment later
    keeper.keep("b", "me", TTL)
    ticks.advance(TTL / 30)  # a second later
    keeper.keep("c", "me", TTL)
    ticks.advance(TTL / 3 - TTL / 30 - TTL / 60)  # "a" is due
    assert keeper.renew_due() == pytest.approx(TTL / 20)  # "c" is due a moment and a half on
    assert store.renewed == ["a", "b"]


def test_a_lease_left_unrenewed_by_a_busy_row_is_warned_of_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, ticks, keeper = _by_hand(answer=None)
    keeper.keep("t", "me", TTL)
    with caplog.at_level(logging.WARNING, logger="agentrt"):
        ticks.advance(TTL / 3)
        while ticks() < 2 * TTL / 3 + 3 * TTL / 30:
            keeper.renew_due()
            ticks.advance(TTL / 30)
    assert [r.getMessage() for r in caplog.records] == [
        "could not renew the lease on run 't' for 20.0 s: another transaction holds its "
        "row; the lease expires in 10.0 s unless it is let go"
    ]
    assert keeper.kept() == ["t"]


def test_leases_due_together_are_renewed_in_one_write(
    store: Store, db: Path, clock: FakeClock
) -> None:
    renewals: list[list[str]] = []
    renew_leases = store.renew_leases

    def counted(leases: list[LeaseRenewal]) -> dict[str, bool | None]:
        renewals.append([lease.thread_id for lease in leases])
        return renew_leases(leases)

    store.renew_leases = counted  # type: ignore[method-assign]
    ticks = FakeClock(0.0)
    keeper = LeaseKeeper(store, clock, monotonic=ticks)
    me = LeaseOwner.this_process("me")
    keeper._thread = cast(Any, "driven by the test")
    for name in ("a", "b", "c"):
        _leased(store, name, me, clock)
        keeper.keep(name, me.label, TTL)
    ticks.advance(TTL / 3)
    clock.advance(TTL / 3)
    keeper.renew_due()
    assert renewals == [["a", "b", "c"]]
    assert {_lease(db, name) for name in "abc"} == {(me.label, clock() + TTL)}


def test_a_lease_renewed_after_a_warning_is_warned_of_again_only_two_thirds_of_a_ttl_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, ticks, keeper = _by_hand(answer=None)
    keeper.keep("t", "me", TTL)

    def busy_until(t: float) -> None:
        while ticks() < t:
            keeper.renew_due()
            ticks.advance(TTL / 30)

    with caplog.at_level(logging.WARNING, logger="agentrt"):
        ticks.advance(TTL / 3)
        busy_until(2 * TTL / 3 + TTL / 30)
        assert len(caplog.records) == 1
        store.answer = True
        keeper.renew_due()  # renewed at 21 s
        store.answer = None
        ticks.advance(TTL / 3)
        busy_until(21 + 2 * TTL / 3 - TTL / 30)
        assert len(caplog.records) == 1  # not two thirds of a ttl since the renewal yet
        busy_until(21 + 2 * TTL / 3 + TTL / 30)
    assert len(caplog.records) == 2
    assert "expires in 10.0 s" in caplog.records[-1].getMessage()


def test_a_lease_that_fails_is_logged_even_when_one_let_go_before_it_failed_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, ticks, keeper = _by_hand(answer=sqlite3.OperationalError("database is locked"))
    a = keeper.keep("a", "me", TTL)
    with caplog.at_level(logging.ERROR, logger="agentrt"):
        ticks.advance(TTL / 3)
        keeper.renew_due()  # a's renewal fails, and a's segment ends before one goes through
        keeper.let_go(a)
        keeper.keep("b", "me", TTL)
        ticks.advance(TTL / 3)
        keeper.renew_due()
    assert [r.getMessage() for r in caplog.records] == [
        "could not renew the lease on run 'a'; asking again",
        "could not renew the lease on run 'b'; asking again",
    ]


def test_a_lease_whose_row_is_busy_is_asked_again_soon_and_the_others_kept_on_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, ticks, keeper = _by_hand(answer=None)  # another transaction holds the run's row
    keeper.keep("busy", "me", TTL)
    ticks.advance(5.0)
    keeper.keep("other", "me", TTL)
    ticks.advance(TTL / 3 - 5.0)
    with caplog.at_level(logging.WARNING, logger="agentrt"):
        assert keeper.renew_due() == pytest.approx(TTL / 30)  # asked again in a second
        store.answer = True
        ticks.advance(TTL / 30)
        assert keeper.renew_due() == pytest.approx(5.0 - TTL / 30)  # "other" is due next
    assert store.renewed == ["busy", "busy"]
    assert sorted(keeper.kept()) == ["busy", "other"]
    assert caplog.records == []  # busy is not lost


def test_a_row_another_transaction_holds_does_not_hold_up_the_other_leases_on_postgres(
    postgres_url: str, clock: FakeClock
) -> None:
    import psycopg

    store = open_store(postgres_url, clock=clock).store
    me = LeaseOwner.this_process("me")
    for name in ("locked", "free"):
        _leased(store, name, me, clock)
    ticks = FakeClock(0.0)
    keeper = LeaseKeeper(store, clock, monotonic=ticks)
    keeper._thread = cast(Any, "driven by the test")
    keeper.keep("locked", me.label, TTL)
    keeper.keep("free", me.label, TTL)
    before = clock()
    ticks.advance(TTL / 3)
    clock.advance(TTL / 3)
    waits: list[float | None] = []
    with psycopg.connect(postgres_url) as holder:  # a transaction that holds one run's row
        holder.execute("SELECT 1 FROM runs WHERE thread_id='locked' FOR UPDATE")
        renewing = threading.Thread(target=lambda: waits.append(keeper.renew_due()))
        renewing.start()
        renewing.join(timeout=30)
        held_up = renewing.is_alive()
        holder.rollback()  # lets a renewal that waited on the row go on
    renewing.join(timeout=30)
    try:
        assert held_up is False
        assert waits == [pytest.approx(TTL / 30)]  # the busy one is asked again soon
        leases = {name: store.lease_of(name) for name in ("locked", "free")}
        assert {name: lease.expires_at for name, lease in leases.items() if lease} == {
            "locked": before + TTL,  # not renewed yet, still this process's
            "free": clock() + TTL,
        }
        ticks.advance(TTL / 30)
        keeper.renew_due()  # the row is free now
        assert store.lease_of("locked").expires_at == clock() + TTL  # type: ignore[union-attr]
        assert sorted(keeper.kept()) == ["free", "locked"]
    finally:
        store.close()


def test_a_run_another_transaction_adds_a_row_for_is_renewed_on_postgres(
    postgres_url: str, clock: FakeClock
) -> None:
    # Adding a row that refers to the run (a model call, an approval) takes FOR KEY SHARE
    # on the run's row for its foreign key: that must not make the renewal busy.
    import psycopg

    store = open_store(postgres_url, clock=clock).store
    me = LeaseOwner.this_process("me")
    _leased(store, "t", me, clock)
    try:
        with psycopg.connect(postgres_url) as adding:
            adding.execute(
                "INSERT INTO model_calls (thread_id, revision, request_digest, response, "
                "created_at) VALUES ('t', 0, 'd', '{}', 0)"
            )
            answers = store.renew_leases([LeaseRenewal("t", me.label, clock() + 99)])
            adding.rollback()
        assert answers == {"t": True}
    finally:
        store.close()


def test_letting_go_in_an_async_run_keeps_the_loop_free_while_a_renewal_waits() -> None:
    # The renewal stands for one blocked on SQLite's write lock while the lock's holder, a
    # checkpoint transaction, waits for the loop to commit: letting go must not wait on it.
    store = _Renewals()
    keeper = LeaseKeeper(cast(Any, store), FakeClock())

    def segment() -> Steps[None]:
        kept = keeper.keep("t1", "me", 0.0)  # ttl 0: renews at once and keeps renewing
        yield blocking(store.renewing.wait, 30)
        keeper.let_go(kept)
        asyncio.get_running_loop().call_soon(store.go_on.set)
        yield blocking(lambda: None)

    asyncio.run(adrive(segment()))
    _ended(keeper)
    assert keeper.kept() == []
    assert store.starved is False  # letting go did not hold the loop the renewal waited on


def test_a_lease_due_before_the_one_waited_for_wakes_the_keeper() -> None:
    store = _Renewals()
    store.go_on.set()
    keeper = LeaseKeeper(cast(Any, store), FakeClock())
    slow = keeper.keep("slow", "me", 300.0)  # the thread waits 100 s for it
    fast = keeper.keep("fast", "me", 0.3)  # due in 0.1 s: the wait is cut short
    assert store.renewing.wait(timeout=30)
    assert store.renewed[:1] == ["fast"]
    keeper.let_go(slow)
    keeper.let_go(fast)
    keeper.close()


def test_closing_ends_the_keeper_even_with_leases_kept_meanwhile() -> None:
    store = _Renewals()
    keeper = LeaseKeeper(cast(Any, store), FakeClock())
    keeper.keep("a", "me", 0.0)
    assert store.renewing.wait(timeout=30)  # a renewal in progress
    thread = keeper._thread
    closing = threading.Thread(target=keeper.close)
    closing.start()
    while keeper.kept():  # close() has taken the list before the next keep
        closing.join(timeout=0.01)
    keeper.keep("b", "me", 0.0)  # after close: not kept, no thread started
    store.go_on.set()
    closing.join(timeout=30)
    assert not closing.is_alive()
    assert thread is not None
    assert not thread.is_alive()
    assert keeper.kept() == []
    assert keeper._thread is None
    assert store.renewed == ["a"]


def _ended(keeper: LeaseKeeper) -> None:
    """Wait for the keeper's thread to find nothing kept and end."""
    thread = keeper._thread
    if thread is not None:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert keeper._thread is None


def _lease_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "agentrt-leases"]


def test_one_thread_renews_every_run_a_runtime_drives_at_once(db: Path) -> None:
    # Each run's tool waits until all of them are in their tool: the runs are driven at
    # the same time, and the test looks then.
    parties = 12
    before = set(_lease_threads())  # another test's keeper may not have ended yet
    all_in = asyncio.Event()
    inside: list[int] = []
    seen: dict[str, Any] = {}

    @tool(effect="read")
    async def wait_for_all(i: int) -> str:
        """Wait until every run is here.

        Args:
            i: Which run this is.
        """
        inside.append(i)
        if len(inside) == parties:
            seen["threads"] = len(set(_lease_threads()) - before)
            seen["kept"] = sorted(rt._driver.leases.kept())
            all_in.set()
        await all_in.wait()
        return "ok"

    turns = [ai("", tool_call("wait_for_all", {"i": 1})), "done"]
    model = ScriptedChatModel(turns * parties)
    with AgentRuntime(
        model, tools=[wait_for_all], policy=Policy.allow_all(), db=str(db), lease_ttl=5.0
    ) as rt:
        runs = started_at_once(rt, "wait", parties)
        assert [r.status.value for r in runs] == ["succeeded"] * parties
        assert seen == {"threads": 1, "kept": sorted(f"t{i}" for i in range(parties))}
        assert rt._driver.leases.kept() == []  # each let go when its segment ended
        keeper = rt._driver.leases._thread
        with sqlite3.connect(db) as conn:
            held = conn.execute("SELECT count(*) FROM runs WHERE lease_owner IS NOT NULL")
            assert held.fetchone() == (0,)  # every lease released
    assert keeper is not None
    assert not keeper.is_alive()  # closing the runtime ended the keeper's thread


def test_a_forked_child_keeps_none_of_its_parents_leases_and_renews_its_own() -> None:
    store = _Renewals()
    store.go_on.set()
    keeper = LeaseKeeper(cast(Any, store), FakeClock())
    parents = keeper.keep("parent's", "me", TTL)
    pid = os.fork()
    if pid == 0:  # the child: exits 0 only if all holds
        ok = keeper.kept() == []
        child = keeper.keep("child's", "me", 0.0)
        ok = ok and store.renewing.wait(timeout=30) and keeper._thread is not None
        keeper.let_go(child)
        os._exit(0 if ok and store.renewed[:1] == ["child's"] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert keeper.kept() == ["parent's"]  # the parent's own, untouched
    keeper.let_go(parents)
    keeper.close()
