"""What every store must do (agentrt.store.protocols), run against each backend.

The same tests run on the SQLite store, the PostgreSQL one (a fresh database on the
session's throwaway server, tests/postgres.py) and the in-memory one; a backend joins by
adding itself to BACKENDS. The rules above the store (which status may follow which, when a lease
is taken over) are run through the code that owns them (runs.lifecycle, runs.lease), over
each backend, since they rely on its conditional writes.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentrt.approvals import ApprovalRequest, ApprovalStatus
from agentrt.approvals.expiry import escalation_of
from agentrt.approvals.model import ApprovalQuery, Decided
from agentrt.artifacts import ArtifactRecord, ArtifactRef, artifact_digest
from agentrt.budget import empty_usage
from agentrt.digests import approval_id, args_digest
from agentrt.errors import IllegalTransition, RunBusy
from agentrt.principal import Principal
from agentrt.records import (
    ApiKey,
    AppIdentity,
    EffectOutcome,
    LeaseRecord,
    LeaseRenewal,
    ModelCall,
    NewMessage,
    NewRun,
    SpanRow,
)
from agentrt.runs import lifecycle
from agentrt.runs.lease import LeaseOwner, acquire
from agentrt.state import TERMINAL, RunStatus, Usage
from agentrt.store.memory import MemoryStore
from agentrt.store.postgres import PostgresStore
from agentrt.store.protocols import Claim, RunChange, Store
from agentrt.store.sqlite import SqliteStore
from tests.conftest import FakeClock

USAGE: Usage = empty_usage()
ALICE = {"id": "alice", "roles": [], "tenant": "acme", "scopes": []}
HOST = socket.gethostname()

# Each makes a store from the test's request (for the fixtures it needs) and the clock.
BACKENDS: dict[str, Callable[[pytest.FixtureRequest, FakeClock], Store]] = {
    "sqlite": lambda request, clock: SqliteStore(
        request.getfixturevalue("tmp_path") / "agentrt.db", clock=clock
    ),
    "postgres": lambda request, clock: PostgresStore(
        request.getfixturevalue("postgres_url"), clock=clock
    ),
    "memory": lambda request, clock: MemoryStore(clock=clock),
}


@pytest.fixture
def clock() -> FakeClock:
    """Times in these tests read from 1000 s, to keep the lease arithmetic legible."""
    return FakeClock(1_000.0)


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Store]:
    s = BACKENDS[request.param](request, clock)
    yield s
    s.close()


NEW: dict[str, Any] = {"goal": "refund order 7", "principal": ALICE, "budget": {}, "usage": USAGE}


def new_run(store: Store, thread_id: str = "t1", principal: dict[str, Any] = ALICE) -> Any:
    return store.create_run(
        NewRun(
            thread_id=thread_id, goal="refund order 7", principal=principal, budget={}, usage=USAGE
        )
    )


def decide(store: Store, approval_id: str, status: ApprovalStatus, *, by: str, **kw: Any) -> bool:
    return store.decide_approval(approval_id, Decided(status=status, by=by, **kw))


def listed(store: Store, **query: Any) -> list[ApprovalRequest]:
    return store.list_approvals(ApprovalQuery(**query))


def move(store: Store, thread_id: str, status: RunStatus, **kw: Any) -> Any:
    return lifecycle.move(store, thread_id, status, now=store.clock(), **kw)


# runs --------------------------------------------------------------------------------------


def test_create_run_records_a_pending_run(store: Store) -> None:
    record = new_run(store)
    assert (
        record.thread_id,
        record.status,
        record.goal,
        record.principal,
        record.tenant,
        record.usage,
        record.created_at,
        record.updated_at,
        record.lease_owner,
    ) == ("t1", RunStatus.PENDING, "refund order 7", ALICE, "acme", USAGE, 1000.0, 1000.0, None)


def test_create_run_twice_is_refused_and_keeps_the_first(store: Store, clock: FakeClock) -> None:
    first = new_run(store)
    clock.now += 5
    again = store.create_run(
        NewRun(thread_id="t1", goal="something else", principal=ALICE, budget={}, usage=USAGE)
    )
    assert again is None
    assert store.get_run("t1") == first


def test_list_runs_newest_first_by_status_and_tenant(store: Store, clock: FakeClock) -> None:
    new_run(store, "a")
    clock.now += 1
    new_run(store, "b", principal=ALICE | {"tenant": "globex"})
    clock.now += 1
    new_run(store, "c")
    move(store, "c", RunStatus.RUNNING)
    assert [r.thread_id for r in store.list_runs()] == ["c", "b", "a"]
    assert [r.thread_id for r in store.list_runs(tenant="acme")] == ["c", "a"]
    assert [r.thread_id for r in store.list_runs(status="running")] == ["c"]
    assert [r.thread_id for r in store.list_runs(limit=1)] == ["c"]


def test_allowed_transition_moves_the_run(store: Store, clock: FakeClock) -> None:
    new_run(store)
    clock.now += 1
    record = move(store, "t1", RunStatus.RUNNING)
    assert (record.status, record.updated_at) == (RunStatus.RUNNING, 1001.0)


def test_illegal_transition_is_refused_and_changes_nothing(store: Store, clock: FakeClock) -> None:
    new_run(store)
    running = move(store, "t1", RunStatus.RUNNING)
    clock.now += 1
    with pytest.raises(IllegalTransition) as info:
        move(store, "t1", RunStatus.PENDING, output="x", error="y")
    assert str(info.value) == (
        "run 't1' cannot go from status 'running' to 'pending'; "
        "see agentrt.state.TRANSITIONS for the allowed moves"
    )
    assert store.get_run("t1") == running


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_status_cannot_be_left(store: Store, terminal: RunStatus) -> None:
    new_run(store)
    move(store, "t1", RunStatus.RUNNING)
    ended = move(store, "t1", terminal, output="done")
    for target in RunStatus:
        if target is terminal:
            continue
        with pytest.raises(IllegalTransition) as info:
            move(store, "t1", target)
        assert str(info.value) == (
            f"run 't1' cannot go from status {terminal.value!r} to {target.value!r}; "
            "see agentrt.state.TRANSITIONS for the allowed moves"
        )
    assert store.get_run("t1") == ended


def test_a_finished_run_is_final(store: Store) -> None:
    new_run(store, "t")
    move(store, "t", RunStatus.RUNNING)
    move(store, "t", RunStatus.RUNNING, usage=empty_usage())  # a live run may stay put
    done = move(store, "t", RunStatus.SUCCEEDED, output="first")
    with pytest.raises(IllegalTransition, match="from status 'succeeded' to 'succeeded'"):
        move(store, "t", RunStatus.SUCCEEDED, output="rewritten")
    assert store.get_run("t") == done


def test_a_change_applies_only_from_the_status_it_was_worked_out_from(store: Store) -> None:
    new_run(store)
    stale = RunChange(from_status=RunStatus.PENDING, status=RunStatus.RUNNING)
    assert store.change_run("t1", stale) is not None
    # Another process moved it meanwhile: the same change from "pending" no longer applies.
    assert store.change_run("t1", stale) is None
    assert store.change_run("nobody", stale) is None


def test_a_move_from_the_row_in_hand_is_decided_again_if_the_row_moved_on(
    store: Store, clock: FakeClock
) -> None:
    new_run(store)
    in_hand = move(store, "t1", RunStatus.RUNNING)
    clock.now += 5
    move(store, "t1", RunStatus.AWAITING_APPROVAL)  # another process moved it meanwhile
    clock.now += 5
    # From the row in hand (running) the write finds the run at its gate: the move is
    # decided again from the row, and counts the time waited there.
    moved = move(store, "t1", RunStatus.RUNNING, known=in_hand)
    assert (moved.status, moved.waited_seconds) == (RunStatus.RUNNING, 5.0)
    # A row in hand that says the move is illegal is checked against the row itself.
    finished = dataclasses.replace(moved, status=RunStatus.SUCCEEDED)
    failed = move(store, "t1", RunStatus.FAILED, known=finished, error="x")
    assert failed.status is RunStatus.FAILED
    with pytest.raises(IllegalTransition, match="from status 'failed' to 'running'"):
        move(store, "t1", RunStatus.RUNNING, known=moved)
    assert store.get_run("t1") == failed


def test_time_at_a_gate_and_waiting_to_retry_is_counted_on_leaving(
    store: Store, clock: FakeClock
) -> None:
    new_run(store)
    move(store, "t1", RunStatus.RUNNING)
    move(store, "t1", RunStatus.AWAITING_APPROVAL)
    clock.now += 40
    move(store, "t1", RunStatus.RUNNING)
    waiting = move(store, "t1", RunStatus.WAITING_RETRY, error="waiting to retry: x", retry_at=9.0)
    assert (waiting.retry_at, waiting.transient_failures, waiting.error) == (
        9.0,
        1,
        "waiting to retry: x",
    )
    clock.now += 5
    again = move(store, "t1", RunStatus.RUNNING)
    assert (again.waited_seconds, again.retry_waited_seconds, again.retry_at, again.error) == (
        40.0,
        5.0,
        None,
        None,
    )
    assert again.transient_failures == 1  # still going: counted until the segment ends
    assert move(store, "t1", RunStatus.SUCCEEDED).transient_failures == 0


def test_ending_a_run_cancels_its_pending_approvals(store: Store, clock: FakeClock) -> None:
    new_run(store)
    pending = store.put_approval(request())
    decided = store.put_approval(request(step_id="2.0"))
    decide(store, decided.id, ApprovalStatus.APPROVED, by="bob", comment=None)
    move(store, "t1", RunStatus.RUNNING)
    clock.now += 3
    move(store, "t1", RunStatus.FAILED, error="boom")
    cancelled = store.get_approval(pending.id)
    assert cancelled is not None
    assert (cancelled.status, cancelled.decided_at, cancelled.comment) == (
        ApprovalStatus.CANCELLED,
        1003.0,
        "run ended failed",
    )
    assert store.get_approval(decided.id).status is ApprovalStatus.APPROVED  # type: ignore[union-attr]


def test_unfinished_runs_and_due_retries(store: Store, clock: FakeClock) -> None:
    for thread_id in ("pending", "running", "gate", "decided", "done", "retry"):
        new_run(store, thread_id)
        clock.now += 1
    for thread_id in ("running", "gate", "decided", "done", "retry"):
        move(store, thread_id, RunStatus.RUNNING)
    move(store, "gate", RunStatus.AWAITING_APPROVAL)
    store.put_approval(request("gate"))
    move(store, "decided", RunStatus.AWAITING_APPROVAL)
    move(store, "done", RunStatus.SUCCEEDED)
    move(store, "retry", RunStatus.WAITING_RETRY, retry_at=2000.0)
    assert store.unfinished_runs() == ["pending", "running", "decided"]
    store.request_cancel("gate", "withdrawn")
    store.request_cancel("gate", "again")  # the first reason is kept
    assert store.cancel_requested("gate") == "withdrawn"
    assert store.unfinished_runs() == ["pending", "running", "gate", "decided"]
    assert store.due_retries(1999.0) == []
    assert store.due_retries(2000.0) == ["retry"]


def test_usage_budget_and_trace_are_kept(store: Store) -> None:
    new_run(store)
    store.set_usage("t1", USAGE | {"steps": 3})
    store.set_budget("t1", {"max_steps": 9})
    store.set_trace("t1", "a" * 32, "b" * 16)
    record = store.get_run("t1")
    assert record is not None
    assert (record.usage["steps"], record.budget, record.trace_id) == (
        3,
        {"max_steps": 9},
        "a" * 32,
    )
    assert store.run_trace("t1") == ("a" * 32, "b" * 16)
    assert store.run_trace("nobody") == (None, None)
    # The row says it too: a driver that read the row needs no second read for its trace.
    assert record.trace_span_id == "b" * 16
    assert new_run(store, "t2").trace_span_id is None  # no segment has ended yet


def test_usage_is_swapped_only_from_the_usage_read(store: Store) -> None:
    # Two drivers of one thread both read the usage, then both count a call: the second
    # write is refused (False), so it reads again and checks its limit against the first.
    new_run(store)
    one = USAGE | {"tool_calls": 1, "cost_usd": 0.1}
    assert store.swap_usage("t1", USAGE, one) is True
    assert store.swap_usage("t1", USAGE, USAGE | {"tool_calls": 1}) is False
    read = store.get_run("t1")
    assert read is not None
    assert read.usage == one
    # Equal as JSON is what matches, whatever the order of its keys.
    assert store.swap_usage("t1", dict(reversed(list(read.usage.items()))), one | {"tool_calls": 2})
    assert store.get_run("t1").usage["tool_calls"] == 2  # type: ignore[union-attr]
    assert store.swap_usage("nobody", USAGE, one) is False


def test_prune_picks_old_finished_runs_and_delete_takes_everything(
    store: Store, clock: FakeClock
) -> None:
    for thread_id in ("old", "older-but-running", "new"):
        new_run(store, thread_id)
        move(store, thread_id, RunStatus.RUNNING)
        clock.now += 10
    move(store, "old", RunStatus.SUCCEEDED)
    move(store, "new", RunStatus.SUCCEEDED)
    assert store.prunable_runs(before=clock.now + 1) == ["old", "new"]
    assert store.prunable_runs(before=clock.now + 1, keep_latest=1) == ["old"]
    store.put_approval(request("old"))
    store.start_effect(key="k", thread_id="old", step_id="1.0", tool="x", args_digest="d", seen=0)
    store.record_model_call("old", ModelCall(0, "m", "r", {"a": 1}))
    store.set_trace("old", "c" * 32, None)
    store.write_spans([span("s1", "c" * 32, thread_id="old")])
    store.delete_run("old")
    assert store.get_run("old") is None
    assert listed(store, status=None, thread_id="old") == []
    assert (store.get_effect("k"), store.model_calls("old"), store.spans_of("c" * 32)) == (
        None,
        [],
        [],
    )


# leases (the takeover rule is runs.lease's; the conditional write is the store's) ----------


@pytest.fixture
def leased(store: Store) -> Store:
    new_run(store)
    return store


A = LeaseOwner("token-a", host=HOST, pid=os.getpid())
B = LeaseOwner("token-b", host=HOST, pid=os.getpid())


def take(store: Store, owner: LeaseOwner, ttl: float = 30) -> None:
    acquire(store, "t1", owner, ttl, now=store.clock())


def owner_of(store: Store) -> str | None:
    record = store.get_run("t1")
    assert record is not None
    return record.lease_owner


def renew(store: Store, owner: LeaseOwner, expires_at: float) -> bool | None:
    return store.renew_leases([LeaseRenewal("t1", owner.label, expires_at)])["t1"]


def test_a_live_lease_is_busy_until_it_expires(leased: Store, clock: FakeClock) -> None:
    take(leased, A)
    assert owner_of(leased) == A.label

    clock.now += 29
    with pytest.raises(RunBusy) as info:
        take(leased, B)
    assert str(info.value) == (
        f"run 't1' is being driven by {A.label!r} (lease held until 1970-01-01T00:17:10Z "
        "(in 1s)); wait for it to stop or for the lease to expire, then retry"
    )
    assert (info.value.owner, info.value.expires_at) == (A.label, 1030.0)
    assert owner_of(leased) == A.label

    clock.now = 1030.5
    take(leased, B)
    assert owner_of(leased) == B.label
    assert renew(leased, A, clock.now + 30) is False  # A lost it


def test_a_dead_process_lease_is_taken_over_at_once_on_one_host(
    leased: Store, clock: FakeClock
) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid no longer names a process
    dead = LeaseOwner("token-dead", host=HOST, pid=child.pid)
    take(leased, dead, ttl=60)

    if leased.one_host:
        take(leased, B)
    else:
        # Shared across hosts, a host name and pid may be another container's live process:
        # only the lease's expiry frees it.
        assert isinstance(leased, PostgresStore)
        with pytest.raises(RunBusy):
            take(leased, B)
        clock.now += 60
        take(leased, B)
    assert owner_of(leased) == B.label


def test_a_lease_held_on_another_host_must_expire(leased: Store, clock: FakeClock) -> None:
    remote = LeaseOwner("token-r", host="other-host", pid=1)
    take(leased, remote, ttl=60)
    with pytest.raises(RunBusy, match="'other-host:1:token-r'"):
        take(leased, B)
    assert owner_of(leased) == remote.label
    clock.now += 60
    take(leased, B)
    assert owner_of(leased) == B.label


def test_the_runs_leased_on_a_host_are_listed_whatever_their_number(
    store: Store, clock: FakeClock
) -> None:
    # The takeover of a dead process's runs reads these, each with its lease: every one,
    # oldest first, not the newest so many of every run left running.
    for i in range(1, 1_203):
        new_run(store, f"r{i:04}")
        clock.now += 0.001
    for i in range(1, 1_201):  # held here, left pending or running
        if i % 2:
            move(store, f"r{i:04}", RunStatus.RUNNING)
        acquire(store, f"r{i:04}", A, 60, now=clock.now)
    acquire(store, "r1201", LeaseOwner("token-r", host="other-host", pid=1), 60, now=clock.now)
    acquire(store, "r1202", A, 60, now=clock.now)
    move(store, "r1202", RunStatus.CANCELLED)  # finished: nothing to take over
    listed = store.leased_on(HOST, now=clock.now)
    assert [run.thread_id for run, _ in listed] == [f"r{i:04}" for i in range(1, 1_201)]
    first, lease = listed[0]
    assert (first.lease_owner, lease.owner, lease.host, lease.pid) == (
        A.label,
        A.label,
        HOST,
        os.getpid(),
    )
    assert lease.expires_at == pytest.approx(clock.now + 60)
    assert store.leased_on("other-host", now=clock.now)[0][0].thread_id == "r1201"
    clock.now += 61  # expired: the claim takes them, not the takeover
    assert store.leased_on(HOST, now=clock.now) == []


def test_renew_and_release_belong_to_the_owner(leased: Store, clock: FakeClock) -> None:
    take(leased, A)
    clock.now += 10
    assert renew(leased, B, clock.now + 30) is False
    leased.release_lease("t1", B.label)  # not B's to release
    with pytest.raises(RunBusy, match="lease held until 1970-01-01T00:17:10Z"):  # A's, as it was
        take(leased, B)

    clock.now += 10
    assert renew(leased, A, clock.now + 30) is True
    clock.now += 20  # past the first expiry, within the renewed one
    with pytest.raises(RunBusy, match="lease held until 1970-01-01T00:17:30Z"):
        take(leased, B)

    leased.release_lease("t1", A.label)
    assert owner_of(leased) is None
    take(leased, B)  # free for anyone now
    assert owner_of(leased) == B.label


def test_leases_are_renewed_together_each_answered(leased: Store, clock: FakeClock) -> None:
    new_run(leased, "t2")
    take(leased, A)
    acquire(leased, "t2", B, 30, now=clock.now)
    clock.now += 10
    answers = leased.renew_leases(
        [
            LeaseRenewal("t1", A.label, clock.now + 30),  # A's: renewed
            LeaseRenewal("t2", A.label, clock.now + 30),  # B's: not A's to renew
            LeaseRenewal("nope", A.label, clock.now + 30),  # no such run
        ]
    )
    assert answers == {"t1": True, "t2": False, "nope": False}
    assert leased.lease_of("t1").expires_at == clock.now + 30  # type: ignore[union-attr]
    assert leased.lease_of("t2").expires_at == clock.now - 10 + 30  # type: ignore[union-attr]
    assert leased.renew_leases([]) == {}


def test_a_renewal_notes_the_runs_live_active_time_with_the_lease_only(
    leased: Store, clock: FakeClock
) -> None:
    new_run(leased, "t2")
    take(leased, A)
    acquire(leased, "t2", B, 30, now=clock.now)

    def live() -> tuple[float | None, ...]:
        return tuple(run.live_active_seconds for t in ("t1", "t2") if (run := leased.get_run(t)))

    assert live() == (None, None)  # none until a renewal counted
    later = clock.now + 30
    answers = leased.renew_leases(
        [
            LeaseRenewal("t1", A.label, later, active_seconds=12.5),  # A's: noted
            LeaseRenewal("t2", A.label, later, active_seconds=99.0),  # B's: not A's to count
        ]
    )
    assert (answers, live()) == ({"t1": True, "t2": False}, (12.5, None))
    # A renewal that counts nothing (a lease a worker holds off with) leaves the figure.
    assert leased.renew_leases([LeaseRenewal("t1", A.label, later + 1)]) == {"t1": True}
    assert live() == (12.5, None)
    assert leased.renew_leases([LeaseRenewal("t1", A.label, later + 2, 40.25)]) == {"t1": True}
    assert leased.renew_leases([LeaseRenewal("t2", B.label, later, 3.0)]) == {"t2": True}
    assert live() == (40.25, 3.0)
    assert leased.lease_of("t1").expires_at == later + 2  # type: ignore[union-attr]
    held = leased.hold_lease("t1", A.label, later + 3)  # the row as a segment begins reads it
    assert held is not None
    assert held.live_active_seconds == 40.25


def test_holding_a_lease_renews_it_and_reads_the_row_in_one(
    leased: Store, clock: FakeClock
) -> None:
    take(leased, A)
    assert leased.hold_lease("t1", B.label, clock.now + 90) is None  # not B's to hold
    clock.now += 20
    held = leased.hold_lease("t1", A.label, clock.now + 30)
    assert held is not None
    assert (held, held.lease_owner) == (leased.get_run("t1"), A.label)
    assert leased.lease_of("t1") == LeaseRecord(A.label, HOST, A.pid, clock.now + 30)
    assert leased.hold_lease("nobody", A.label, clock.now + 30) is None
    leased.release_lease("t1", A.label)
    assert leased.hold_lease("t1", A.label, clock.now + 30) is None  # let go: not held


def test_a_segment_ends_in_one_write_its_trace_kept_its_lease_let_go(
    leased: Store, clock: FakeClock
) -> None:
    take(leased, A)
    before = leased.run_trace("t1")
    # Not B's lease (B lost it to A, say): neither the lease nor the trace is B's to change.
    leased.release_lease("t1", B.label, trace=("c" * 32, "d" * 16))
    assert (owner_of(leased), leased.run_trace("t1")) == (A.label, before)
    leased.release_lease("t1", A.label, trace=("c" * 32, "e" * 16))
    record = leased.get_run("t1")
    assert record is not None
    assert (owner_of(leased), record.trace_id, record.trace_span_id) == (None, "c" * 32, "e" * 16)
    assert leased.lease_of("t1") is None  # every lease column cleared, not only the owner
    take(leased, B)
    assert owner_of(leased) == B.label


def test_acquire_is_reentrant_for_the_owner(leased: Store, clock: FakeClock) -> None:
    take(leased, A)
    clock.now += 10
    take(leased, A)
    clock.now += 25  # past the first expiry
    with pytest.raises(RunBusy, match="lease held until 1970-01-01T00:17:20Z"):
        take(leased, B)


def test_taking_a_lease_is_conditional_on_its_owner(leased: Store) -> None:
    assert leased.lease_of("t1") is None
    assert leased.take_lease("t1", LeaseRecord(A.label, HOST, 1, 2000.0), expected=None)
    # B read the lease as free before A took it: its write must not win.
    assert not leased.take_lease("t1", LeaseRecord(B.label, HOST, 1, 2000.0), expected=None)
    held = leased.lease_of("t1")
    assert held is not None
    assert (held.owner, held.expires_at) == (A.label, 2000.0)
    with pytest.raises(KeyError):
        leased.lease_of("nobody")


# claiming runs for workers ----------------------------------------------------------------

W = LeaseRecord("host:1:worker", "host", 1, 0.0)


def claimed(
    store: Store,
    *,
    limit: int = 10,
    ttl: float = 30,
    owner: LeaseRecord = W,
    app: AppIdentity | None = None,
) -> Claim:
    now = store.clock()
    lease = dataclasses.replace(owner, expires_at=now + ttl)
    return store.claim_runs(lease, now=now, limit=limit, app=app)


def test_claim_takes_the_runs_that_need_a_driver_oldest_first(
    store: Store, clock: FakeClock
) -> None:
    names = (
        "pending", "running-free", "running-expired", "running-held", "gate-waiting",
        "gate-decided", "gate-cancel", "retry-due", "retry-later", "done", "born-leased",
    )  # fmt: skip
    for thread_id in names:
        if thread_id == "born-leased":
            held = LeaseRecord(A.label, HOST, os.getpid(), clock.now + 30)
            store.create_run(NewRun(**NEW, thread_id=thread_id, lease=held))
        else:
            new_run(store, thread_id)
        clock.now += 1
    for thread_id in names[1:-1]:
        move(store, thread_id, RunStatus.RUNNING)
    for thread_id in ("running-expired", "running-held"):
        assert store.take_lease(
            thread_id, LeaseRecord(A.label, HOST, 1, clock.now + 5), expected=None
        )
    store.renew_leases([LeaseRenewal("running-held", A.label, clock.now + 100)])
    for thread_id in ("gate-waiting", "gate-decided", "gate-cancel"):
        move(store, thread_id, RunStatus.AWAITING_APPROVAL)
        store.put_approval(request(thread_id))
    decide(store, request("gate-decided").id, ApprovalStatus.APPROVED, by="bob")
    store.request_cancel("gate-cancel", "withdrawn")
    move(store, "retry-due", RunStatus.WAITING_RETRY, retry_at=clock.now + 3)
    move(store, "retry-later", RunStatus.WAITING_RETRY, retry_at=clock.now + 50)
    move(store, "done", RunStatus.SUCCEEDED)
    clock.now += 10  # past running-expired's lease and retry-due's time

    first = claimed(store, limit=3)
    assert first.thread_ids == ("pending", "running-free", "running-expired")
    rest = claimed(store)
    assert rest.thread_ids == ("gate-decided", "gate-cancel", "retry-due")
    # Soonest: born-leased's lease (never renewed), before the first claim's, retry-later's
    # time and running-held's lease.
    assert rest.next_at == 1040.0
    assert claimed(store).thread_ids == ()
    assert (store.lease_of("pending"), store.lease_of("retry-due")) == (
        dataclasses.replace(W, expires_at=1051.0),
        dataclasses.replace(W, expires_at=1051.0),
    )
    clock.now = 1040.0  # born-leased's owner never renewed it: free now
    assert claimed(store).thread_ids == ("born-leased",)
    clock.now = 1051.0  # the first claims' leases expired too: claimable again
    assert claimed(store, limit=1).thread_ids == ("pending",)


def test_a_claim_is_empty_when_nothing_needs_a_driver(store: Store) -> None:
    assert claimed(store) == Claim(thread_ids=(), next_at=None)
    new_run(store)
    assert claimed(store, limit=0).thread_ids == ()


def test_a_claim_for_an_app_takes_the_runs_it_may_drive(store: Store, clock: FakeClock) -> None:
    # Apps on one database (agentrt.runs.apps): a named app's run goes to workers of its
    # name; an unnamed app's run to a worker whose app has all its tools (named or not);
    # a run from before (neither recorded) to any. A long tool list is kept whole (on
    # PostgreSQL it is in no B-tree index, whose entries must stay under ~2.7 KB).
    long = tuple(sorted(f"tool_{n:03d}_{'x' * 40}" for n in range(200)))
    made: dict[str, tuple[str | None, tuple[str, ...] | None]] = {
        "theirs": ("shredder", None),
        "before": (None, None),
        "mine": ("notes", None),
        "small": (None, ("note",)),
        "big": (None, ("note", "pay", "shred")),
        "long": (None, long),
        "their-thread": ("shredder", None),
    }
    for thread_id, (app, tools) in made.items():
        store.create_run(NewRun(**NEW, thread_id=thread_id, app=app, tools=tools))
        clock.now += 1
    assert {t: (run.app, run.tools) for t in made if (run := store.get_run(t))} == made
    move(store, "their-thread", RunStatus.RUNNING)
    move(store, "their-thread", RunStatus.SUCCEEDED, output="shredded")
    store.add_message(NewMessage(thread_id="their-thread", text="and the rest", principal=ALICE))
    unnamed = AppIdentity(name=None, tools=frozenset({"note", "pay"}))
    notes = AppIdentity(name="notes", tools=frozenset({"note", "pay"}))
    shredder = AppIdentity(name="shredder", tools=frozenset({"shred"}))
    everything = AppIdentity(name=None, tools=frozenset({"note", "pay", "shred", *long}))

    # A subset of its tools, and from before: never a superset ("big"), nor a named run.
    assert claimed(store, app=unnamed).thread_ids == ("before", "small")
    assert claimed(store, app=notes).thread_ids == ("mine",)  # its name's
    assert claimed(store, app=shredder).thread_ids == ("theirs", "their-thread")
    assert claimed(store, app=unnamed) == Claim(thread_ids=(), next_at=1037.0)
    clock.now = 1037.0  # every lease expired: claimable again
    # A named app takes an unnamed app's run whose tools it has (that run asked for no more).
    assert claimed(store, app=notes).thread_ids == ("before", "mine", "small")
    assert claimed(store, app=everything).thread_ids == ("big", "long")
    assert claimed(store).thread_ids == ("theirs", "their-thread")  # no app: any


def test_concurrent_claims_take_each_run_once(
    store: Store, request: pytest.FixtureRequest, clock: FakeClock
) -> None:
    for n in range(60):
        new_run(store, f"r{n:02d}")
    # Each claimer has a store of its own (its own connections), as workers do.
    backend = request.node.callspec.params["store"]
    others = [store] if backend == "memory" else [BACKENDS[backend](request, clock) for _ in "ab"]
    stores = [store, *others]
    taken: list[list[str]] = [[] for _ in range(6)]

    def claimer(n: int) -> None:
        me = dataclasses.replace(W, owner=f"host:1:w{n}")
        while found := claimed(stores[n % len(stores)], limit=3, owner=me).thread_ids:
            taken[n].extend(found)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = sorted(t for got in taken for t in got)
    assert everything == [f"r{n:02d}" for n in range(60)]  # each once, none left
    for n, got in enumerate(taken):
        for thread_id in got:
            held = store.lease_of(thread_id)
            assert held is not None
            assert held.owner == f"host:1:w{n}"
    for other in others:
        if other is not store:
            other.close()


# approvals ---------------------------------------------------------------------------------


def request(
    thread_id: str = "t1", step_id: str = "1.0", *, requested_at: float = 1000.0, **extra: Any
) -> ApprovalRequest:
    args = {"order_id": "7", "amount": 80.0}
    fields: dict[str, Any] = {
        "id": approval_id(thread_id, step_id, "action"),
        "thread_id": thread_id,
        "step_id": step_id,
        "kind": "action",
        "tool": "issue_refund",
        "args": args,
        "args_digest": args_digest(args),
        "rule_id": "large-refunds",
        "reason": "Refunds over $50 need a refund approver.",
        "required_role": "refund-approver",
        "four_eyes": True,
        "requested_by": "alice",
        "tenant": "acme",
        "requested_at": requested_at,
        "expires_at": requested_at + 259200.0,
    }
    return ApprovalRequest(**(fields | extra))


def test_put_approval_is_idempotent(leased: Store) -> None:
    first = request(required_roles=("refund-approver", "director"), edited_by="bob")
    assert leased.put_approval(first) == first
    again = leased.put_approval(request(requested_at=2000.0, reason="asked again"))
    assert again == first
    assert listed(leased) == [first]


def test_decide_approval_first_decider_wins(leased: Store, clock: FakeClock) -> None:
    req = leased.put_approval(request())
    clock.now = 1500.0
    assert decide(leased, req.id, ApprovalStatus.APPROVED, by="bob", comment="ok")
    clock.now = 1600.0
    assert not decide(
        leased, req.id, ApprovalStatus.REJECTED, by="carol", comment="no", edited_args={"amount": 1}
    )
    assert leased.get_approval(req.id) == dataclasses.replace(
        req, status=ApprovalStatus.APPROVED, decided_by="bob", decided_at=1500.0, comment="ok"
    )


def test_edits_and_resolutions_keep_what_was_decided(leased: Store) -> None:
    edited = leased.put_approval(request())
    resolved = leased.put_approval(request(step_id="2.0", kind="reconcile"))
    assert decide(
        leased,
        edited.id,
        ApprovalStatus.EDITED,
        by="bob",
        comment=None,
        edited_args={"amount": 5.0},
    )
    assert decide(
        leased, resolved.id, ApprovalStatus.RESOLVED, by="bob", comment=None, result={"id": "r1"}
    )
    assert leased.get_approval(edited.id).edited_args == {"amount": 5.0}  # type: ignore[union-attr]
    assert leased.get_approval(resolved.id).result == {"id": "r1"}  # type: ignore[union-attr]


def test_decide_unknown_approval_is_false(leased: Store) -> None:
    assert not decide(leased, "apr_nope", ApprovalStatus.APPROVED, by="bob", comment=None)
    assert leased.get_approval("apr_nope") is None


def test_list_approvals_filters(leased: Store) -> None:
    new_run(leased, "t2", principal=ALICE | {"tenant": "globex"})
    a = leased.put_approval(request("t1", "1.0", requested_at=1000.0))
    b = leased.put_approval(request("t1", "2.0", requested_at=1001.0))
    c = leased.put_approval(request("t2", "1.0", requested_at=1002.0, tenant="globex"))
    tiers = leased.put_approval(
        request("t1", "3.0", requested_at=1003.0, required_roles=("refund-approver", "director"))
    )
    decide(leased, b.id, ApprovalStatus.REJECTED, by="bob", comment="no")
    b = leased.get_approval(b.id)  # type: ignore[assignment]

    assert listed(leased) == [a, c, tiers]  # pending by default, oldest first
    assert listed(leased, status=None) == [a, b, c, tiers]
    assert listed(leased, status="rejected") == [b]
    assert listed(leased, tenant="globex") == [c]
    assert listed(leased, status=None, tenant="acme") == [a, b, tiers]
    assert listed(leased, thread_id="t1") == [a, tiers]
    assert listed(leased, status=None, thread_id="t2", tenant="acme") == []
    assert listed(leased, status=None, limit=2) == [a, b]
    assert listed(leased, role="director") == [tiers]  # any role a request needs
    assert listed(leased, after=(1000.0, a.id)) == [c, tiers]


def test_due_approvals_expire_once_with_their_escalation(leased: Store) -> None:
    early = leased.put_approval(request(step_id="1.0", requested_at=1000.0, expires_at=1100.0))
    leased.put_approval(request(step_id="2.0", requested_at=1000.0, expires_at=5000.0))
    assert leased.due_approvals(1200.0) == [early]
    follow = escalation_of(
        dataclasses.replace(early, escalate_to="treasurer", on_expiry="escalate"), now=1200.0
    )
    assert leased.expire_approval(early.id, now=1200.0, escalation=follow)
    assert not leased.expire_approval(early.id, now=1201.0, escalation=follow)  # once
    expired = leased.get_approval(early.id)
    assert expired is not None
    assert (expired.status, expired.escalated_to) == (ApprovalStatus.EXPIRED, follow.id)
    assert leased.get_approval(follow.id) == follow
    assert leased.due_approvals(1200.0) == []


# effects -----------------------------------------------------------------------------------


def test_the_ledger_reserves_records_and_settles(leased: Store) -> None:
    key = dict(key="k1", thread_id="t1", step_id="1.0", tool="pay", args_digest="d")
    assert leased.start_effect(**key, seen=0) == 1
    leased.note_in_doubt("k1", "timed out", retries=2)
    doubt = leased.get_effect("k1")
    assert doubt is not None
    assert (doubt.status, doubt.error, doubt.error_kind, doubt.retries) == (
        "started",
        "timed out",
        "timeout",
        2,
    )
    assert not leased.settle_effect("k1", 2, happened=True, result=1)  # not the attempt in doubt
    assert leased.settle_effect("k1", 1, happened=False)
    assert leased.get_effect("k1").status == "retry"  # type: ignore[union-attr]
    assert leased.start_effect(**key, seen=1) == 2
    assert leased.finish_effect("k1", EffectOutcome(result={"ok": True}, retries=1), attempt=2)
    done = leased.get_effect("k1")
    assert done is not None
    assert (done.status, done.result, done.attempts, done.retries) == ("done", {"ok": True}, 2, 1)
    leased.start_effect(
        key="k2", thread_id="t1", step_id="2.0", tool="pay", args_digest="e", seen=0
    )
    declined = EffectOutcome(error="card declined", error_kind="permanent")
    assert leased.finish_effect("k2", declined, attempt=1)
    failed = leased.get_effect("k2")
    assert failed is not None
    assert (failed.status, failed.error, failed.error_kind) == (
        "failed",
        "card declined",
        "permanent",
    )
    assert [e.key for e in leased.list_effects("t1")] == ["k1", "k2"]


def test_an_attempt_records_its_outcome_only_while_it_is_the_one_started(leased: Store) -> None:
    # A process paused mid-call past its lease wakes after another took the run over and a
    # person settled the call, or another attempt began: its outcome is not written over
    # the row, which is the later decision's or attempt's.
    key = dict(key="k1", thread_id="t1", step_id="1.0", tool="pay", args_digest="d")
    late = EffectOutcome(result="sent by A")
    assert leased.start_effect(**key, seen=0) == 1
    assert leased.settle_effect("k1", 1, happened=False)  # a person: retry
    assert not leased.finish_effect("k1", late, attempt=1)
    assert leased.get_effect("k1").status == "retry"  # type: ignore[union-attr]
    assert leased.start_effect(**key, seen=1) == 2
    for outcome in (late, EffectOutcome(error="A's call broke", error_kind="transient")):
        assert not leased.finish_effect("k1", outcome, attempt=1)
        assert not leased.finish_effect("k1", outcome, attempt=3)  # never started
    started = leased.get_effect("k1")
    assert started is not None
    assert (started.status, started.attempts, started.result, started.error) == (
        "started", 2, None, None,
    )  # fmt: skip
    assert leased.finish_effect("k1", EffectOutcome(result="sent by B"), attempt=2)
    assert not leased.finish_effect("k1", late, attempt=2)  # recorded once
    assert leased.settle_effect("k1", 2, happened=True, result="x") is False
    done = leased.get_effect("k1")
    assert done is not None
    assert (done.status, done.attempts, done.result) == ("done", 2, "sent by B")
    assert not leased.finish_effect("nope", late, attempt=1)  # no such key: nothing made
    assert leased.get_effect("nope") is None


def test_an_effect_is_reserved_only_from_what_was_read_and_under_the_runs_lease(
    leased: Store,
) -> None:
    # The ledger reads a key, then reserves it: a process paused between the two (or past
    # its lease) must find it moved and reserve nothing, never start a done effect again.
    key = dict(key="k1", thread_id="t1", step_id="1.0", tool="pay", args_digest="d")
    take(leased, A)
    assert leased.start_effect(**key, seen=0, owner=A.label) == 1
    assert leased.start_effect(**key, seen=0, owner=A.label) is None  # started since read
    assert leased.start_effect(**key, seen=1, owner=A.label) == 2  # an idempotent call again
    assert leased.finish_effect("k1", EffectOutcome(result={"ok": True}), attempt=2)
    for seen in (0, 2):  # done: never started again, whatever was read
        assert leased.start_effect(**key, seen=seen, owner=A.label) is None
        assert leased.start_effect(**key, seen=seen) is None
    done = leased.get_effect("k1")
    assert done is not None
    assert (done.status, done.attempts, done.result) == ("done", 2, {"ok": True})

    # A's lease taken over by B: A reserves nothing, and writes nothing.
    leased.release_lease("t1", A.label)
    take(leased, B)
    other = dict(key="k2", thread_id="t1", step_id="2.0", tool="pay", args_digest="e")
    assert leased.start_effect(**other, seen=0, owner=A.label) is None
    assert leased.get_effect("k2") is None
    assert leased.start_effect(**other, seen=0, owner=B.label) == 1
    leased.release_lease("t1", B.label)  # no lease at all: only its owner could have reserved
    third = dict(key="k3", thread_id="t1", step_id="3.0", tool="pay", args_digest="f")
    assert leased.start_effect(**third, seen=0, owner=B.label) is None
    assert leased.start_effect(**third, seen=0) == 1  # no lease asked for: as before


# recordings, keys, spans -------------------------------------------------------------------


def test_model_calls_are_kept_per_revision_and_replaced_by_a_rerun(leased: Store) -> None:
    leased.record_model_call("t1", ModelCall(1, "m", "r1", {"n": 1}))
    leased.record_model_call("t1", ModelCall(0, "m", "r0", {"n": 0}))
    leased.record_model_call("t1", ModelCall(1, "m", "r1b", {"n": 2}))
    assert [(c.revision, c.request_digest) for c in leased.model_calls("t1")] == [
        (0, "r0"),
        (1, "r1b"),
    ]
    assert leased.model_call("t1", 1).response == {"n": 2}  # type: ignore[union-attr]
    assert leased.model_call("t1", 7) is None


def test_a_model_call_kept_with_its_usage_sets_the_runs_usage(leased: Store) -> None:
    leased.record_model_call("t1", ModelCall(0, "m", "r0", {"n": 0}), usage=USAGE | {"steps": 1})
    leased.record_model_call("t1", ModelCall(0, "m", "r0b", {"n": 1}), usage=USAGE | {"steps": 2})
    record = leased.get_run("t1")
    assert record is not None
    assert record.usage["steps"] == 2
    assert [c.request_digest for c in leased.model_calls("t1")] == ["r0b"]


def test_keys_are_found_by_hash_and_revoked_once(store: Store, clock: FakeClock) -> None:
    alice = Principal("alice", roles=["operator"], tenant="acme")
    store.add_key(ApiKey("k1", alice, "laptop", 1000.0), "hash-1")
    clock.now += 1
    store.add_key(ApiKey("k2", alice, None, 1001.0), "hash-2")
    assert store.key_by_hash("hash-1") == ApiKey("k1", alice, "laptop", 1000.0)
    clock.now = 1500.0
    revoked = store.revoke_key("k1")
    assert revoked is not None
    assert revoked.revoked_at == 1500.0
    clock.now = 1600.0
    assert store.revoke_key("k1").revoked_at == 1500.0  # type: ignore[union-attr]
    assert store.revoke_key("nope") is None
    assert store.key_by_hash("hash-1") is None
    assert [k.key_id for k in store.list_keys()] == ["k2"]
    assert [k.key_id for k in store.list_keys(include_revoked=True)] == ["k1", "k2"]


def span(span_id: str, trace_id: str, *, thread_id: str | None = None, start: int = 1) -> SpanRow:
    return SpanRow(
        span_id=span_id,
        trace_id=trace_id,
        parent_id=None,
        thread_id=thread_id,
        name="agent.run",
        start_ns=start,
        end_ns=start + 1,
        status="OK",
        attributes={"a": 1},
        events=[{"name": "e", "time_ns": 1, "attributes": {}}],
        links=[],
    )


def test_spans_are_read_back_by_trace_in_start_order(store: Store) -> None:
    store.write_spans([span("s2", "t" * 32, start=5), span("s1", "t" * 32, start=2)])
    store.write_spans([span("s3", "u" * 32)])
    assert store.spans_of("t" * 32) == [
        span("s1", "t" * 32, start=2),
        span("s2", "t" * 32, start=5),
    ]


def test_a_span_given_twice_is_kept_as_given_last(store: Store) -> None:
    first, again = span("s1", "t" * 32), span("s1", "t" * 32, start=7)
    store.write_spans([first, span("s2", "t" * 32, start=3), again])
    assert store.spans_of("t" * 32) == [span("s2", "t" * 32, start=3), again]
    store.write_spans([first])  # written again later: as given then
    assert store.spans_of("t" * 32) == [first, span("s2", "t" * 32, start=3)]
    store.write_spans([])
    assert len(store.spans_of("t" * 32)) == 2


def artifact(thread_id: str, name: str, content: bytes, **kw: Any) -> ArtifactRecord:
    ref = ArtifactRef(
        name=name,
        media_type=kw.pop("media_type", "text/plain"),
        size=len(content),
        digest=artifact_digest(content),
        preview=kw.pop("preview", "its first lines"),
    )
    return ArtifactRecord(thread_id=thread_id, ref=ref, tenant="acme", **kw)


def test_artifacts_keep_content_once_and_each_run_names_it(store: Store, clock: FakeClock) -> None:
    new_run(store, "t1")
    new_run(store, "t2")
    report = b"order,amount\n7,12.50\n"
    store.put_artifact(artifact("t1", "report.csv", report, step_id="1.0"), report)
    store.put_artifact(artifact("t1", "again.csv", report), report)
    store.put_artifact(artifact("t2", "report.csv", report), report)

    listed = store.list_artifacts("t1")
    assert [a.ref.name for a in listed] == ["again.csv", "report.csv"]
    assert listed[1] == artifact("t1", "report.csv", report, step_id="1.0", created_at=1000.0)
    assert store.get_artifact("t2", "report.csv") == artifact(
        "t2", "report.csv", report, created_at=1000.0
    )
    assert store.get_artifact("t2", "again.csv") is None
    assert store.artifact_content(artifact_digest(report)) == report
    assert store.artifact_content(artifact_digest(b"never put")) is None

    # The same name put again (a re-run of the step) names the new content.
    newer = bytes(range(256))  # not text: content is bytes, kept as they are
    clock.advance(5)
    store.put_artifact(
        artifact("t1", "report.csv", newer, media_type="application/octet-stream"), newer
    )
    got = store.get_artifact("t1", "report.csv")
    assert got is not None
    assert got.ref.digest == artifact_digest(newer)
    assert (got.ref.media_type, got.ref.size, got.created_at) == (
        "application/octet-stream",
        256,
        1005.0,
    )
    assert store.artifact_content(got.ref.digest) == newer
    # Nothing is unreferenced yet: three names refer to two contents.
    assert store.drop_unreferenced_artifacts() == 0


def test_content_goes_when_no_run_refers_to_it(store: Store) -> None:
    new_run(store, "t1")
    new_run(store, "t2")
    shared, own = b"shared bytes", b"t1's own bytes"
    store.put_artifact(artifact("t1", "a.txt", shared), shared)
    store.put_artifact(artifact("t2", "b.txt", shared), shared)
    store.put_artifact(artifact("t1", "c.txt", own), own)

    store.delete_run("t1")
    assert store.list_artifacts("t1") == []
    assert store.drop_unreferenced_artifacts() == 1  # t1's own; t2 still names the shared
    assert store.artifact_content(artifact_digest(own)) is None
    assert store.artifact_content(artifact_digest(shared)) == shared

    store.delete_run("t2")
    assert store.drop_unreferenced_artifacts() == 1  # kept once, so dropped once
    assert store.artifact_content(artifact_digest(shared)) is None
    assert store.drop_unreferenced_artifacts() == 0
