"""`agentrt trace` and `agentrt prune`, and rt.prune's retention rules."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt import AgentRuntime, ConfigError, Decision
from agentrt.cli import app
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from tests.conftest import FakeClock, Ids

DAY = 86400.0
DEMO = ["--app", "agentrt.examples.refund_desk:build_runtime"]
runner = CliRunner()


def finished(rt: AgentRuntime) -> str:
    run = rt.start(GOAL, principal=OPERATOR)
    assert run.pending_approval is not None
    assert rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER)).status == "succeeded"
    return run.thread_id


def rows_of(db: Path, thread_id: str) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {
            table: conn.execute(
                f"SELECT count(*) FROM {table} WHERE thread_id=?", (thread_id,)
            ).fetchone()[0]
            for table in ("runs", "approvals", "effects", "spans", "model_calls", "checkpoints")
        }


def test_prune_deletes_old_finished_runs_and_all_they_left(db: Path, clock: FakeClock) -> None:
    with refund_desk.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        old = finished(rt)
        waiting = rt.start(GOAL, principal=OPERATOR).thread_id
        clock.advance(40 * DAY)
        recent = finished(rt)
        clock.advance(10 * DAY)
        assert all(rows_of(db, old).values())

        assert rt.prune(older_than=30 * DAY) == [old]

        assert rows_of(db, old) == dict.fromkeys(rows_of(db, old), 0)
        assert all(rows_of(db, recent).values())
        assert rt.get(waiting).status == "awaiting_approval"
        # A run at a gate is never pruned, however old; keep_latest spares the newest.
        assert rt.prune(older_than=0, keep_latest=1) == []
        assert rt.prune(older_than=0) == [recent]
        assert [r.thread_id for r in rt.runs()] == [waiting]


def test_a_run_is_never_started_on_the_state_a_prune_stopped_midway_left(
    db: Path, clock: FakeClock
) -> None:
    # An older agentrt's prune deleted a run's row, then its checkpoints: a process dying in
    # between left the checkpoints under an id that names no run. A run started there under
    # that id went on from them: the old run's log and conversation (another tenant's,
    # maybe) in its prompt. A database such a prune left is refused still.
    with refund_desk.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        old = rt.start(GOAL, principal=OPERATOR, thread_id="t-1")
        assert old.pending_approval is not None
        rt.decide(Decision.approve(old.pending_approval.id, by=APPROVER))
        with sqlite3.connect(db) as conn:  # the row deleted as that prune did, then it died
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("DELETE FROM runs WHERE thread_id='t-1'")
        assert rows_of(db, "t-1")["checkpoints"] > 0  # left, under an id that names no run
        before = rows_of(db, "t-1")
        for make in (rt.start, rt.create):
            with pytest.raises(ConfigError, match=r"'t-1' names no run .* holds a graph's state"):
                make(GOAL, principal=OPERATOR, thread_id="t-1")
        assert rows_of(db, "t-1") == before  # nothing written
        fresh = rt.start(GOAL, principal=OPERATOR)  # a new id starts clean
        assert [e["type"] for e in rt.events(fresh.thread_id)][:1] == ["plan"]


def test_a_prune_that_fails_midway_through_a_run_deletes_none_of_it(
    db: Path, clock: FakeClock
) -> None:
    # A run's row and its checkpoints went in two transactions: failing (or dying) between
    # them left the checkpoints under an id free again. Now they go in one.
    with refund_desk.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        finished_run = rt.start(GOAL, principal=OPERATOR, thread_id="t-1")
        assert finished_run.pending_approval is not None
        rt.decide(Decision.approve(finished_run.pending_approval.id, by=APPROVER))
        clock.advance(40 * DAY)
        whole = rows_of(db, "t-1")
        assert all(whole.values())
        with sqlite3.connect(db) as conn:  # the checkpoints' delete fails, after the row's
            conn.execute(
                "CREATE TRIGGER dies BEFORE DELETE ON checkpoints "
                "BEGIN SELECT RAISE(ABORT, 'the process died here'); END"
            )
        with pytest.raises(sqlite3.IntegrityError, match="the process died here"):
            rt.prune(older_than=30 * DAY)
        assert rows_of(db, "t-1") == whole  # nothing deleted: the run is whole
        assert rt.get("t-1").status == "succeeded"

        with sqlite3.connect(db) as conn:
            conn.execute("DROP TRIGGER dies")
        assert rt.prune(older_than=30 * DAY) == ["t-1"]
        assert rows_of(db, "t-1") == dict.fromkeys(whole, 0)
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM writes WHERE thread_id='t-1'").fetchone() == (
                0,
            )
        again = rt.start(GOAL, principal=OPERATOR, thread_id="t-1")  # the id is free, clean
        assert again.status == "awaiting_approval"


def test_a_prune_that_fails_midway_through_a_run_deletes_none_of_it_on_postgres(
    postgres_url: str,
) -> None:
    import psycopg

    from agentrt.testing import ScriptedChatModel, ai

    def rows() -> dict[str, int]:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            return {
                table: conn.execute(
                    f"SELECT count(*) FROM {table} WHERE thread_id = 't-1'"
                ).fetchone()[0]  # type: ignore[index]
                for table in ("runs", "spans", "checkpoints", "checkpoint_blobs")
            }

    model = ScriptedChatModel([ai("Done."), ai("Done again.")])
    with AgentRuntime(model, tools=[], db=postgres_url) as rt:
        assert rt.start("hello", principal=OPERATOR, thread_id="t-1").status == "succeeded"
        whole = rows()
        assert all(whole.values())
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                "CREATE FUNCTION dies() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'the process died here'; END $$"
            )
            conn.execute(
                "CREATE TRIGGER dies BEFORE DELETE ON checkpoints "
                "FOR EACH ROW EXECUTE FUNCTION dies()"
            )
        with pytest.raises(psycopg.Error, match="the process died here"):
            rt.prune(older_than=0)
        assert rows() == whole  # nothing deleted: the run is whole

        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER dies ON checkpoints")
        assert rt.prune(older_than=0) == ["t-1"]
        assert rows() == dict.fromkeys(whole, 0)
        assert rt.start("hello", principal=OPERATOR, thread_id="t-1").status == "succeeded"


def test_prune_cuts_off_by_the_stores_clock(postgres_url: str) -> None:
    """On PostgreSQL updated_at is the server's time: a host whose own clock runs two days
    ahead, pruning runs older than a day, keeps the run that finished a moment ago."""
    import time

    from agentrt.testing import ScriptedChatModel, ai

    with AgentRuntime(ScriptedChatModel([ai("Done.")]), tools=[], db=postgres_url) as rt:
        run = rt.start("hello", principal=OPERATOR)
        rt.clock = lambda: time.time() + 2 * DAY  # this host's time.time, two days fast
        assert rt.prune(older_than=DAY) == []
        assert rt.get(run.thread_id).status == "succeeded"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"older_than": -1.0}, "older_than must be >= 0 seconds, got -1.0"),
        ({"older_than": 1.0, "keep_latest": -2}, "keep_latest must be >= 0, got -2"),
        # Past 64 bits no database takes it: sqlite3 raised OverflowError.
        (
            {"older_than": 1.0, "keep_latest": 10**30},
            f"keep_latest must be at most 2**63 - 1 runs, got {10**30}; to keep every run, "
            "do not prune",
        ),
    ],
)
def test_prune_refuses_negative_numbers(
    desk: AgentRuntime, kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        desk.prune(**kwargs)  # type: ignore[arg-type]
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"older_than": "30d"},
            "older_than must be a finite number of seconds, got '30d' (30 days: 30 * 86400)",
        ),
        ({"older_than": None}, "older_than must be a finite number of seconds, got None"),
        ({"older_than": True}, "older_than must be a finite number of seconds, got True"),
        ({"older_than": float("nan")}, "older_than must be a finite number of seconds, got nan"),
        ({"older_than": float("inf")}, "older_than must be a finite number of seconds, got inf"),
        (
            {"older_than": 60.0, "keep_latest": 1.5},
            "keep_latest must be a whole number of runs, got 1.5",
        ),
        (
            {"older_than": 60.0, "keep_latest": "3"},
            "keep_latest must be a whole number of runs, got '3'",
        ),
        (
            {"older_than": 60.0, "keep_latest": None},
            "keep_latest must be a whole number of runs, got None",
        ),
    ],
)
def test_prune_refuses_what_is_not_a_count_by_name(
    db: Path, clock: FakeClock, kwargs: dict[str, object], message: str
) -> None:
    with refund_desk.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        old = finished(rt)
        clock.advance(40 * DAY)
        with pytest.raises(ConfigError) as refused:
            rt.prune(**kwargs)  # type: ignore[arg-type]
        assert str(refused.value).startswith(message), str(refused.value)
        assert rt.exists(old)  # refused before anything was deleted


def test_prune_leaves_a_thread_a_follow_up_woke_after_prune_chose_it(
    db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests import threads_app

    with threads_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        done = rt.start("note 1", principal=threads_app.OPS)
        assert done.status == "succeeded"
        clock.advance(40 * DAY)
        chose = rt.store.prunable_runs
        woke = []

        def a_follow_up_meanwhile(*, before: float, keep_latest: int = 0) -> list[str]:
            doomed = chose(before=before, keep_latest=keep_latest)
            # Another process sends a follow-up after prune chose the thread; it waits at
            # a gate by the time prune deletes.
            woke.append(rt.send(done.thread_id, "pay 500", principal=threads_app.OPS))
            return doomed

        monkeypatch.setattr(rt.store, "prunable_runs", a_follow_up_meanwhile)
        assert rt.prune(older_than=30 * DAY) == []
        monkeypatch.undo()
        [waiting] = woke
        assert waiting.status == "awaiting_approval"
        assert rt.get(done.thread_id).status == "awaiting_approval"
        assert rows_of(db, done.thread_id)["checkpoints"] > 0  # its checkpoints stay too
        decided = rt.decide(Decision.approve(waiting.pending_approval.id, by=threads_app.PAYER))
        assert decided.status == "succeeded"


def test_agentrt_prune_command(db: Path) -> None:
    # Runs made in 2001 are older than 30 days by any real clock.
    clock = FakeClock(1_000_000_000.0)
    with refund_desk.build_runtime(db, clock=clock) as rt:
        old = finished(rt)
        clock.advance(DAY)
        finished(rt)  # the newer one, which --keep-latest 1 keeps
    result = runner.invoke(
        app, ["prune", "--older-than", "30d", "--keep-latest", "1", *DEMO, "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    assert result.output == f"pruned {old}\n1 run(s) pruned\n"

    bad = runner.invoke(app, ["prune", "--older-than", "30 days", *DEMO, "--db", str(db)])
    assert bad.exit_code == 2
    assert "--older-than '30 days' is not an age; write a number and a unit, e.g. 30d" in bad.output
    forever = "9" * 400 + "d"  # a number past any float: no age either
    bad = runner.invoke(app, ["prune", "--older-than", forever, *DEMO, "--db", str(db)])
    assert bad.exit_code == 2
    assert bad.output.splitlines() == [
        f"error: --older-than {forever!r} is not an age; write a number and a unit, e.g. 30d, "
        "12h, 90m, 45s or 2w"
    ]


def test_agentrt_trace_prints_the_tree_and_where_time_went(db: Path) -> None:
    clock = FakeClock()
    with refund_desk.build_runtime(db, clock=clock) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        clock.advance(90)  # ninety seconds until bob decides
        rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER))

    result = runner.invoke(app, ["trace", run.thread_id, *DEMO, "--db", str(db)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("trace ")
    assert lines[0].endswith(f"run {run.thread_id}  (2 segment(s))")
    # One root, the first segment; the resumed one under it, from the request on.
    assert lines[1].split() == [
        "invoke_agent",
        "refund-desk",
        "0.0ms",
        "start",
        "->",
        "awaiting_approval",
    ]
    assert "  approval 2.0                        0.0ms  (waits for a person)" in lines
    assert "  resume refund-desk                   1.5m  resume -> succeeded" in lines
    assert "    await_approval issue_refund        1.5m  approved by bob" in lines
    assert "      execute_tool issue_refund       0.0ms  commit: ok" in lines
    assert lines[-7:] == [
        "where time went:",
        "  model                     0.0ms    0.0%",
        "  tools                     0.0ms    0.0%",
        "  policy                    0.0ms    0.0%",
        "  waiting for people         1.5m  100.0%",
        "  runtime overhead          0.0ms    0.0%",
        "  total                      1.5m",
    ]

    as_json = runner.invoke(app, ["trace", run.thread_id, "--json", *DEMO, "--db", str(db)])
    data = json.loads(as_json.output)
    assert data["time_went"]["waiting for people"] == 90.0
    (root,) = data["spans"]
    assert (root["kind"], root["name"]) == ("agent.run", "invoke_agent refund-desk")
    resumed = root["children"][-1]
    assert (resumed["kind"], resumed["parent_id"]) == ("agent.run", root["span_id"])
    assert resumed["links"][0]["span_id"] == root["span_id"]

    missing = runner.invoke(app, ["trace", "nope", *DEMO, "--db", str(db)])
    assert missing.exit_code == 1
    assert "nope" in missing.output
