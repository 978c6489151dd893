"""Tests for agentrt.store: schema, runs and their status, leases, approvals."""

from __future__ import annotations

import dataclasses
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentrt.approvals import ApprovalRequest, ApprovalStatus, approval_id, args_digest
from agentrt.budget import empty_usage
from agentrt.errors import ConfigError, IllegalTransition, RunBusy
from agentrt.state import TERMINAL, RunStatus, Usage
from agentrt.store import LeaseOwner, Store, connect
from agentrt.store.schema import SCHEMA_VERSION
from tests.conftest import FakeClock

USAGE: Usage = empty_usage()
ALICE = {"id": "alice", "roles": [], "tenant": "acme", "scopes": []}
HOST = socket.gethostname()


@pytest.fixture
def clock() -> FakeClock:
    """Times in these tests read from 1000 s, to keep the lease arithmetic legible."""
    return FakeClock(1_000.0)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "agentrt.db"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[Store]:
    s = Store(db_path, clock=clock)
    yield s
    s.close()


def new_run(store: Store, thread_id: str = "t1", principal: dict[str, Any] = ALICE):
    return store.create_run(
        thread_id=thread_id, goal="refund order 7", principal=principal, budget={}, usage=USAGE
    )


def schema_of(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT type, name FROM sqlite_master ORDER BY type, name").fetchall()
        meta = conn.execute("SELECT key, value FROM agentrt_meta ORDER BY key").fetchall()
    finally:
        conn.close()
    return rows + meta


# schema ------------------------------------------------------------------------------------


def test_new_file_gets_the_tables_and_schema_version(store: Store, db_path: Path) -> None:
    assert store.schema_version == SCHEMA_VERSION
    tables = {name for kind, name in schema_of(db_path) if kind == "table"}
    assert tables == {
        "agentrt_meta",
        "runs",
        "approvals",
        "effects",
        "spans",
        "model_calls",
        "api_keys",
    }
    assert ("schema_version", str(SCHEMA_VERSION)) in schema_of(db_path)


def test_reopening_is_a_no_op(store: Store, db_path: Path, clock: FakeClock) -> None:
    new_run(store)
    store.close()
    before = schema_of(db_path)

    again = Store(db_path, clock=clock)
    try:
        assert again.schema_version == SCHEMA_VERSION
        assert [r.thread_id for r in again.list_runs()] == ["t1"]
    finally:
        again.close()
    assert schema_of(db_path) == before


def test_newer_schema_is_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE agentrt_meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO agentrt_meta VALUES ('schema_version', ?)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    before = schema_of(db_path)

    with pytest.raises(ConfigError) as info:
        Store(db_path)
    assert str(info.value) == (
        f"{str(db_path)!r} has agentrt schema version {SCHEMA_VERSION + 1}, newer than this "
        f"agentrt understands ({SCHEMA_VERSION}); upgrade agentrt"
    )
    assert schema_of(db_path) == before  # no tables created, version left alone


def test_store_connection_pragmas(store: Store, db_path: Path) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[Any, ...]:
        return tuple(
            conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "busy_timeout", "foreign_keys")
        )

    assert pragmas(store._conn) == ("wal", 10000, 1)
    conn = connect(db_path)
    try:
        assert pragmas(conn) == ("wal", 10000, 1)
    finally:
        conn.close()


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


def test_create_run_twice_is_refused(store: Store, db_path: Path, clock: FakeClock) -> None:
    first = new_run(store)
    clock.now += 5
    with pytest.raises(ConfigError) as info:
        store.create_run(
            thread_id="t1", goal="something else", principal=ALICE, budget={}, usage=USAGE
        )
    assert str(info.value) == (
        f"thread id 't1' already names a run in {str(db_path)!r}; pass a new id "
        "(or None for a fresh one), or continue that run with rt.resume('t1')"
    )
    assert store.get_run("t1") == first


def test_allowed_transition_moves_the_run(store: Store, clock: FakeClock) -> None:
    new_run(store)
    clock.now += 1
    record = store.set_status("t1", RunStatus.RUNNING)
    assert (record.status, record.updated_at) == (RunStatus.RUNNING, 1001.0)


def test_illegal_transition_is_refused_and_changes_nothing(store: Store, clock: FakeClock) -> None:
    new_run(store)
    running = store.set_status("t1", RunStatus.RUNNING)
    clock.now += 1
    with pytest.raises(IllegalTransition) as info:
        store.set_status("t1", RunStatus.PENDING, output="x", error="y")
    assert str(info.value) == (
        "run 't1' cannot go from status 'running' to 'pending'; "
        "see agentrt.state.TRANSITIONS for the allowed moves"
    )
    assert store.get_run("t1") == running


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_status_cannot_be_left(store: Store, terminal: RunStatus) -> None:
    new_run(store)
    store.set_status("t1", RunStatus.RUNNING)
    ended = store.set_status("t1", terminal, output="done")
    for target in RunStatus:
        if target is terminal:
            continue
        with pytest.raises(IllegalTransition) as info:
            store.set_status("t1", target)
        assert str(info.value) == (
            f"run 't1' cannot go from status {terminal.value!r} to {target.value!r}; "
            "see agentrt.state.TRANSITIONS for the allowed moves"
        )
    assert store.get_run("t1") == ended


# leases ------------------------------------------------------------------------------------


@pytest.fixture
def leased(store: Store) -> Store:
    new_run(store)
    return store


A = LeaseOwner("token-a", host=HOST, pid=os.getpid())
B = LeaseOwner("token-b", host=HOST, pid=os.getpid())


def test_a_live_lease_is_busy_until_it_expires(leased: Store, clock: FakeClock) -> None:
    leased.acquire_lease("t1", A, ttl=30)
    assert leased.get_run("t1").lease_owner == A.label  # type: ignore[union-attr]

    clock.now += 29
    with pytest.raises(RunBusy) as info:
        leased.acquire_lease("t1", B, ttl=30)
    assert str(info.value) == (
        f"run 't1' is being driven by {A.label!r} (lease held until 1030); "
        "wait for it to stop or for the lease to expire, then retry"
    )
    assert (info.value.owner, info.value.expires_at) == (A.label, 1030.0)
    assert leased.get_run("t1").lease_owner == A.label  # type: ignore[union-attr]

    clock.now = 1030.5
    leased.acquire_lease("t1", B, ttl=30)
    assert leased.get_run("t1").lease_owner == B.label  # type: ignore[union-attr]
    assert leased.renew_lease("t1", A, ttl=30) is False  # A lost it


def test_a_dead_process_lease_is_taken_over_at_once(leased: Store) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid no longer names a process
    dead = LeaseOwner("token-dead", host=HOST, pid=child.pid)
    leased.acquire_lease("t1", dead, ttl=3600)

    leased.acquire_lease("t1", B, ttl=30)
    assert leased.get_run("t1").lease_owner == B.label  # type: ignore[union-attr]


def test_a_lease_held_on_another_host_must_expire(leased: Store, clock: FakeClock) -> None:
    remote = LeaseOwner("token-r", host="other-host", pid=1)
    leased.acquire_lease("t1", remote, ttl=60)
    with pytest.raises(RunBusy, match="'other-host:1:token-r'"):
        leased.acquire_lease("t1", B, ttl=30)
    assert leased.get_run("t1").lease_owner == remote.label  # type: ignore[union-attr]
    clock.now += 60
    leased.acquire_lease("t1", B, ttl=30)
    assert leased.get_run("t1").lease_owner == B.label  # type: ignore[union-attr]


def test_renew_and_release_belong_to_the_owner(leased: Store, clock: FakeClock) -> None:
    leased.acquire_lease("t1", A, ttl=30)
    clock.now += 10
    assert leased.renew_lease("t1", B, ttl=30) is False
    leased.release_lease("t1", B)  # not B's to release
    with pytest.raises(RunBusy, match="lease held until 1030"):  # A's lease as it was
        leased.acquire_lease("t1", B, ttl=30)

    clock.now += 10
    assert leased.renew_lease("t1", A, ttl=30) is True
    clock.now += 20  # past the first expiry, within the renewed one
    with pytest.raises(RunBusy, match="lease held until 1050"):
        leased.acquire_lease("t1", B, ttl=30)

    leased.release_lease("t1", A)
    assert leased.get_run("t1").lease_owner is None  # type: ignore[union-attr]
    leased.acquire_lease("t1", B, ttl=30)  # free for anyone now
    assert leased.get_run("t1").lease_owner == B.label  # type: ignore[union-attr]


def test_acquire_is_reentrant_for_the_owner(leased: Store, clock: FakeClock) -> None:
    leased.acquire_lease("t1", A, ttl=30)
    clock.now += 10
    leased.acquire_lease("t1", A, ttl=30)
    clock.now += 25  # past the first expiry
    with pytest.raises(RunBusy, match="lease held until 1040"):
        leased.acquire_lease("t1", B, ttl=30)


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
    first = request()
    assert leased.put_approval(first) == first
    again = leased.put_approval(request(requested_at=2000.0, reason="asked again"))
    assert again == first
    assert leased.list_approvals() == [first]


def test_decide_approval_first_decider_wins(leased: Store, clock: FakeClock) -> None:
    req = leased.put_approval(request())
    clock.now = 1500.0
    assert leased.decide_approval(req.id, ApprovalStatus.APPROVED, by="bob", comment="ok")
    clock.now = 1600.0
    assert not leased.decide_approval(
        req.id, ApprovalStatus.REJECTED, by="carol", comment="no", edited_args={"amount": 1}
    )
    assert leased.get_approval(req.id) == dataclasses.replace(
        req, status=ApprovalStatus.APPROVED, decided_by="bob", decided_at=1500.0, comment="ok"
    )


def test_decide_unknown_approval_is_false(leased: Store) -> None:
    assert not leased.decide_approval("apr_nope", ApprovalStatus.APPROVED, by="bob", comment=None)
    assert leased.get_approval("apr_nope") is None


def test_list_approvals_filters(leased: Store) -> None:
    new_run(leased, "t2", principal=ALICE | {"tenant": "globex"})
    a = leased.put_approval(request("t1", "1.0", requested_at=1000.0))
    b = leased.put_approval(request("t1", "2.0", requested_at=1001.0))
    c = leased.put_approval(request("t2", "1.0", requested_at=1002.0, tenant="globex"))
    leased.decide_approval(b.id, ApprovalStatus.REJECTED, by="bob", comment="no")
    b = leased.get_approval(b.id)  # type: ignore[assignment]

    assert leased.list_approvals() == [a, c]  # pending by default, oldest first
    assert leased.list_approvals(status=None) == [a, b, c]
    assert leased.list_approvals(status="rejected") == [b]
    assert leased.list_approvals(tenant="globex") == [c]
    assert leased.list_approvals(status=None, tenant="acme") == [a, b]
    assert leased.list_approvals(thread_id="t1") == [a]
    assert leased.list_approvals(status=None, thread_id="t2", tenant="acme") == []
    assert leased.list_approvals(status=None, limit=2) == [a, b]


def test_a_finished_run_is_final(tmp_path: Path) -> None:
    store = Store(tmp_path / "f.db")
    store.create_run(thread_id="t", goal="g", principal={"id": "p"}, budget={}, usage=empty_usage())
    store.set_status("t", RunStatus.RUNNING)
    store.set_status("t", RunStatus.RUNNING, usage=empty_usage())  # a live run may stay put
    done = store.set_status("t", RunStatus.SUCCEEDED, output="first")
    with pytest.raises(IllegalTransition, match="from status 'succeeded' to 'succeeded'"):
        store.set_status("t", RunStatus.SUCCEEDED, output="rewritten")
    assert store.get_run("t") == done
    store.close()
