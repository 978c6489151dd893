"""PostgreSQL checkpoints written in one statement each (store.postgres.checkpoint_rows):
the same rows as LangGraph's PostgresSaver writes, read back by its reads; and its short
channel versions carrying on a thread PostgresSaver's versions began.

Most cases make the same saver calls on a plain PostgresSaver in one database and on
agentrt's saver in another, and compare every row of the three tables.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import ERROR, INTERRUPT, empty_checkpoint
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg.rows import dict_row

from agentrt import Decision, RunStatus
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from agentrt.store.postgres import PostgresStore
from agentrt.store.postgres.checkpoints import Checkpoints
from tests.postgres import PostgresServer
from tests.test_store_postgres import desk_on, refunds


class _Savers:
    def __init__(self, server: PostgresServer) -> None:
        self.theirs_url = server.create_database()
        self.ours_url = server.create_database()
        self._conn = psycopg.connect(
            self.theirs_url, autocommit=True, prepare_threshold=0, row_factory=dict_row
        )
        self.theirs = PostgresSaver(self._conn)
        self.theirs.setup()
        self._store = PostgresStore(self.ours_url)
        self.ours = Checkpoints(self._store.db)
        # The versions are agentrt's short ones; the rows compared are those the calls write.
        self.ours.get_next_version = self.theirs.get_next_version  # type: ignore[method-assign]

    def both(self, method: str, *args: Any) -> None:
        getattr(self.theirs, method)(*args)
        getattr(self.ours, method)(*args)

    def rows(self, url: str) -> dict[str, list[tuple[Any, ...]]]:
        with psycopg.connect(url, autocommit=True) as conn:
            return {
                "checkpoints": conn.execute(
                    "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, "
                    "checkpoint, metadata FROM checkpoints ORDER BY 1, 2, 3"
                ).fetchall(),
                "blobs": conn.execute(
                    "SELECT thread_id, checkpoint_ns, channel, version, type, blob "
                    "FROM checkpoint_blobs ORDER BY 1, 2, 3, 4"
                ).fetchall(),
                "writes": conn.execute(
                    "SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, "
                    "channel, type, blob FROM checkpoint_writes ORDER BY 1, 2, 3, 4, 6"
                ).fetchall(),
            }

    def assert_same(self) -> None:
        theirs, ours = self.rows(self.theirs_url), self.rows(self.ours_url)
        assert ours == theirs
        assert any(theirs.values())  # the case wrote something

    def close(self) -> None:
        self._conn.close()
        self._store.close()


@pytest.fixture
def savers(postgres_server: PostgresServer) -> Iterator[_Savers]:
    s = _Savers(postgres_server)
    yield s
    s.close()


def _config(checkpoint_id: str | None = None) -> Any:
    conf = {"thread_id": "t1", "checkpoint_ns": ""}
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def _checkpoint(checkpoint_id: str, values: dict[str, Any]) -> Any:
    checkpoint = empty_checkpoint()
    checkpoint["id"] = checkpoint_id
    checkpoint["channel_values"] = values
    checkpoint["channel_versions"] = {k: f"{i + 1:032}.0.5" for i, k in enumerate(values)}
    return checkpoint


def test_a_checkpoint_with_blobs_inline_values_and_a_snapshot_is_stored_alike(
    savers: _Savers,
) -> None:
    values = {
        "goal": "refund",
        "cursor": 3,
        "done": None,
        "plan": {"actions": [1, 2]},
        "events": _DeltaSnapshot([{"type": "plan"}]),
    }
    first = _checkpoint("1f0-a", values)
    versions = dict(first["channel_versions"])
    versions["cleared"] = f"{9:032}.0.5"  # a version with no value: neither saver stores it
    savers.both("put", _config(), first, {"source": "loop", "step": 1}, versions)
    second = _checkpoint("1f0-b", {"goal": "refund"})
    savers.both("put", _config("1f0-a"), second, {"source": "loop", "step": 2}, {})
    # The same checkpoint again (a retried write): its row is replaced, blobs stay.
    savers.both("put", _config(), first, {"source": "loop", "step": 3}, versions)
    savers.assert_same()
    assert savers.ours.get_tuple(_config("1f0-a")) == savers.theirs.get_tuple(_config("1f0-a"))


def test_a_task_s_writes_are_stored_alike_and_again_as_the_saver_would(
    savers: _Savers,
) -> None:
    savers.both("put", _config(), _checkpoint("1f0-a", {"goal": "g"}), {}, {})
    at = _config("1f0-a")
    savers.both("put_writes", at, [("route", "tool"), ("usage", {"steps": 1})], "task-1", "~p")
    # Written again (a retry): ordinary writes keep the first; special ones the newer.
    savers.both("put_writes", at, [("route", "plan"), ("usage", {"steps": 2})], "task-1", "~p")
    savers.both("put_writes", at, [(ERROR, ValueError("first"))], "task-2")
    savers.both("put_writes", at, [(ERROR, ValueError("second"))], "task-2")
    savers.both("put_writes", at, [(INTERRUPT, ["wait"])], "task-3")
    savers.both("put_writes", at, [], "task-4")
    savers.assert_same()
    assert savers.ours.get_tuple(at) == savers.theirs.get_tuple(at)


def test_a_task_writing_one_special_channel_twice_is_stored_alike(savers: _Savers) -> None:
    # One statement cannot upsert a key twice: the rows are merged first, newer value kept.
    savers.both("put", _config(), _checkpoint("1f0-a", {"goal": "g"}), {}, {})
    at = _config("1f0-a")
    savers.both("put_writes", at, [(INTERRUPT, ["a"]), (INTERRUPT, ["b"])], "task-1")
    savers.assert_same()


def test_calls_held_together_are_stored_as_one_call_after_another_stores_them(
    savers: _Savers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a held node writes waits for the thread's next write and goes in its statement
    # (agentrt.store.held): conflicts inside that one statement end as PostgresSaver's
    # calls, made one after another, leave them.
    statements: list[int] = []
    write_rows = savers.ours.write_rows
    monkeypatch.setattr(
        savers.ours,
        "write_rows",
        lambda calls, fence=None: (statements.append(len(calls)), write_rows(calls, fence)),
    )
    savers.ours.hold("t1", {"policy"})
    first = _checkpoint("1f0-a", {"goal": "g", "plan": {"n": 1}})
    again = _checkpoint("1f0-a", {"goal": "g", "plan": {"n": 2}})  # same versions, new blobs
    at = _config("1f0-a")
    policy = "~__pregel_pull, policy"
    calls: list[tuple[str, tuple[Any, ...]]] = [
        ("put_writes", (_config("1f0-0"), [("goal", "g")], "task-0", policy)),
        ("put", (_config("1f0-0"), first, {"step": 1}, first["channel_versions"])),
        ("put_writes", (at, [("route", "tool"), (ERROR, ValueError("a"))], "t-1", policy)),
        ("put_writes", (at, [("route", "plan")], "t-1", policy)),
        ("put_writes", (at, [(ERROR, ValueError("b"))], "t-1", "~other, policy")),
        ("put_writes", (at, [(INTERRUPT, ["x"])], "t-2", policy)),
        ("put_writes", (at, [(INTERRUPT, ["y"]), (INTERRUPT, ["z"])], "t-2", policy)),
        ("put", (at, again, {"step": 2}, again["channel_versions"])),
    ]
    for method, args in calls:
        getattr(savers.theirs, method)(*args)
        getattr(savers.ours, method)(*args)
    assert statements == []  # all held: the first is a policy write, each one after follows
    savers.both("put_writes", _config("1f0-a"), [("cursor", 1)], "t-3", "~__pregel_pull, tool")
    assert statements == [len(calls) + 1]  # written in one statement
    savers.assert_same()


def _random_call(rng: random.Random, prefix: str) -> tuple[str, tuple[Any, ...]]:
    """A put or a put_writes drawn to collide often: few threads, ids, channels and tasks."""
    conf: dict[str, Any] = {
        "thread_id": prefix + rng.choice(["t1", "t1", "t1", "t2"]),
        "checkpoint_ns": rng.choice(["", "", "", "sub:1"]),
    }
    if rng.random() < 0.35:
        parent = rng.choice([None, "1f0-0", "1f0-a"])
        if parent is not None:
            conf["checkpoint_id"] = parent
        choices = [
            "ü" * rng.randint(0, 2),
            rng.randint(0, 3),
            {"t": "日本", "n": rng.random()},
            None,
        ]
        values = {
            channel: rng.choice([*choices, _DeltaSnapshot([{"k": rng.randint(0, 2)}])])
            for channel in rng.sample(["goal", "plan", "events", "cursor"], rng.randint(0, 4))
        }
        checkpoint = _checkpoint(rng.choice(["1f0-a", "1f0-b"]), values)
        versions = {k: f"{rng.choice([1, 1, 1, 2]):032}.0.5" for k in values}
        checkpoint["channel_versions"] = versions
        return "put", ({"configurable": conf}, checkpoint, {"step": rng.randint(0, 9)}, versions)
    conf["checkpoint_id"] = rng.choice(["1f0-a", "1f0-a", "1f0-b"])
    writes = []
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        channel = rng.choice([ERROR, INTERRUPT, "route", "événement"])
        value = ValueError(f"e{rng.randint(0, 3)}") if channel == ERROR else rng.choice([1, "ÿ"])
        writes.append((channel, value))
    path = rng.choice(["~p, plan", "~p, policy", ""])
    return "put_writes", ({"configurable": conf}, writes, rng.choice(["task-1", "task-2"]), path)


def test_random_batches_are_stored_as_the_calls_one_after_another(savers: _Savers) -> None:
    for seed in range(40):
        rng = random.Random(seed)
        calls = [_random_call(rng, f"s{seed}-") for _ in range(rng.randint(4, 14))]
        split = rng.randint(0, len(calls) - 1)
        for method, args in calls:
            getattr(savers.theirs, method)(*args)
        for method, args in calls[:split]:  # some stored before, one call at a time
            getattr(savers.ours, method)(*args)
        rows = savers.ours.checkpoint_rows, savers.ours.writes_rows
        savers.ours.write_rows(
            [(rows[0] if method == "put" else rows[1])(*args) for method, args in calls[split:]]
        )
    savers.assert_same()


def test_a_run_stopped_at_a_gate_under_postgressaver_s_versions_goes_on(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the demo's payment system is a file beside it
    # A thread checkpointed before: PostgresSaver's 49-character versions.
    with monkeypatch.context() as before:
        before.setattr(Checkpoints, "get_next_version", PostgresSaver.get_next_version)
        with desk_on(postgres_url) as rt:
            run = rt.start(GOAL, principal=OPERATOR)
            req = run.pending_approval
            assert req is not None
    old = _versions(postgres_url)
    assert min(len(v) for v in old) > 30

    with desk_on(postgres_url) as rt:
        done = rt.decide(Decision.approve(req.id, by=APPROVER))
        assert done.status is RunStatus.SUCCEEDED
        assert [e["type"] for e in rt.events(run.thread_id)][-2:] == ["plan", "finish"]
    assert refunds(postgres_url) == [("42", 89.0)]
    # The run went on from the old versions' counts: the new, short ones sort above them.
    short = [v for v in _versions(postgres_url, newest=True) if len(v) < 4]
    assert short
    assert min(short) > max(old)


def _versions(url: str, *, newest: bool = False) -> list[str]:
    """The channel versions of the thread's checkpoints (the newest one's only)."""
    sql = "SELECT checkpoint->'channel_versions' AS v FROM checkpoints ORDER BY checkpoint_id"
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        rows = [r["v"] for r in conn.execute(sql).fetchall()]
    return [v for row in (rows[-1:] if newest else rows) for v in row.values()]
