"""Workers: `agentrt worker` processes claim the runs other processes wrote and drive them.

Real processes on a real SQLite file and a real PostgreSQL (tests/postgres.py), stopped
with real SIGTERM and SIGKILL. The app (tests/worker_app.py) writes every tool call, with
the pid that made it, to a sink: an effect is a key, a call is a row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentrt import AgentRuntime, Decision
from agentrt.cli.said import say_from_handler
from agentrt.errors import ConfigError
from agentrt.records import AppIdentity, LeaseRecord, NewRun
from agentrt.runs.apps import lacks, may_drive
from agentrt.runs.workers import WorkerSettings
from tests import worker_app
from tests.conftest import FakeClock
from tests.postgres import PostgresServer
from tests.serving import worker

APP = "tests.worker_app:build_runtime"


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database of each kind; the sink beside the test's files."""
    monkeypatch.setenv("WORKER_APP_SINK", str(tmp_path / "sink.db"))
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "agentrt.db")


@pytest.fixture
def pg(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("WORKER_APP_SINK", str(tmp_path / "sink.db"))
    return postgres_url


@pytest.fixture
def rt(db: str) -> Iterator[AgentRuntime]:
    with worker_app.build_runtime(db) as runtime:
        yield runtime


def sink(db: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    with worker_app.connect_sink(db) as conn:  # its tables, though no call came yet
        return conn.execute(sql, params).fetchall()


def calls_by_thread(db: str) -> dict[str, list[tuple[str, int]]]:
    """Each run's tool calls in order: (what, pid)."""
    found: dict[str, list[tuple[str, int]]] = {}
    for thread, what, pid in sink(db, "SELECT thread, what, pid FROM calls ORDER BY n"):
        found.setdefault(str(thread), []).append((str(what), int(pid)))  # type: ignore[call-overload]
    return found


def wait_until(
    check: Callable[[], bool], what: str, timeout: float = 60.0, every: float = 0.05
) -> float:
    """Seconds until ``check()`` holds (other processes move the runs; nothing to wait on)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not within {timeout} s: {what}")
        time.sleep(every)
    return time.monotonic() - started


def statuses(rt: AgentRuntime, thread_ids: list[str]) -> list[str]:
    return [rt.get(t).status.value for t in thread_ids]


def all_succeeded(rt: AgentRuntime, thread_ids: list[str]) -> Callable[[], bool]:
    return lambda: statuses(rt, thread_ids) == ["succeeded"] * len(thread_ids)


def create(rt: AgentRuntime, goal: str, n: int) -> list[str]:
    return [rt.create(goal, principal=worker_app.OPS).thread_id for _ in range(n)]


# in one process -------------------------------------------------------------------------------


def test_worker_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="concurrency must be 1 or more runs, got 0"):
        WorkerSettings(concurrency=0)
    with pytest.raises(ConfigError, match="poll must be a number of seconds > 0 or None"):
        WorkerSettings(poll=-1)


def test_a_stopping_worker_leaves_its_run_resumable_at_the_next_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_APP_SINK", str(tmp_path / "sink.db"))
    db = str(tmp_path / "agentrt.db")
    with worker_app.build_runtime(db) as first:
        thread_id = create(first, "note 3", 1)[0]
        pool = first.worker(concurrency=1, poll=0.05)
        # The worker is told to stop while the run's first tool call is under way.
        original = worker_app._effect
        monkeypatch.setattr(worker_app, "_effect", lambda *a: (original(*a), pool.stop())[0])
        pool.run()  # returns once the run has stopped
        left = first.get(thread_id)
        assert (left.status.value, left.cancel_requested, left.error) == ("running", None, None)
        assert first.store.lease_of(thread_id) is None
        # It finished the step it was in (the call and its checkpoint), no more.
        assert [w for w, _ in calls_by_thread(db)[thread_id]] == ["note 1"]
        monkeypatch.setattr(worker_app, "_effect", original)
    with worker_app.build_runtime(db) as second:
        assert second.resume(thread_id).status.value == "succeeded"
    assert [w for w, _ in calls_by_thread(db)[thread_id]] == ["note 1", "note 2", "note 3"]


def test_a_stopped_worker_stops_its_own_runs_and_no_other(rt: AgentRuntime) -> None:
    # A worker's stop is its runs': the runtime it belongs to goes on driving runs, in
    # process and through a new worker.
    pool = rt.worker(concurrency=1, poll=0.05)
    runner = threading.Thread(target=pool.run)
    runner.start()
    pool.stop()
    runner.join(timeout=60)
    assert not runner.is_alive()
    assert rt.start("note 1", principal=worker_app.OPS).status.value == "succeeded"
    thread_id = create(rt, "note 1", 1)[0]
    second = rt.worker(concurrency=1, poll=0.05)
    runner = threading.Thread(target=second.run)
    runner.start()
    try:
        wait_until(lambda: rt.get(thread_id).status.value == "succeeded", "the new worker's run")
    finally:
        second.stop()
        runner.join(timeout=60)
    assert second.driven == 1  # driven once, to its end: not claimed and let go again
    assert rt._driver.stopping_threads == set()


def test_a_run_whose_driving_fails_is_held_off_not_claimed_again_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What failed outside the graph (an unreadable checkpoint, say) fails again at once:
    # claimed again on the spot, the run was taken over thousands of times a second.
    clock = FakeClock()
    with worker_app.build_runtime(str(tmp_path / "agentrt.db"), clock=clock) as rt:
        (broken,) = create(rt, "note 1", 1)
        tried: list[float] = []
        looks: list[float] = []

        resume_input = rt._driver.resume_input

        def unreadable(graph: Any, thread_id: str, owner: Any) -> Any:
            if thread_id != broken:
                return resume_input(graph, thread_id, owner)
            tried.append(clock.now)
            raise RuntimeError("checkpoint unreadable")

        claim_runs = rt.store.claim_runs

        def counted(*args: Any, **kwargs: Any) -> Any:
            looks.append(clock.now)
            return claim_runs(*args, **kwargs)

        rt._driver.resume_input = unreadable  # type: ignore[method-assign]
        rt.store.claim_runs = counted  # type: ignore[method-assign]
        pool = rt.worker(concurrency=2, poll=0.01)
        runner = threading.Thread(target=pool.run)
        runner.start()
        try:
            wait_until(lambda: len(tried) >= 1, "the first try")
            seen = len(looks)
            wait_until(lambda: len(looks) >= seen + 20, "twenty more looks")
            assert len(tried) == 1  # held off: not claimed again, by this worker or another
            held = rt.store.lease_of(broken)
            assert held is not None
            assert held.expires_at == clock.now + 1.0
            clock.advance(1.0)
            wait_until(lambda: len(tried) == 2, "the second try, once held off for 1 s")
            held = rt.store.lease_of(broken)
            assert held is not None
            assert held.expires_at == clock.now + 2.0  # doubled
            # A run that works meanwhile is driven as ever.
            (fine,) = create(rt, "note 1", 1)
            wait_until(lambda: rt.get(fine).status.value == "succeeded", "another run")
        finally:
            pool.stop()
            runner.join(timeout=60)
    assert len(tried) == 2
    said = [r.getMessage() for r in caplog.records if "driving run" in r.getMessage()]
    assert said == [
        f"worker: driving run {broken!r} failed; it may be claimed again in 1 s",
        f"worker: driving run {broken!r} failed; it may be claimed again in 2 s",
    ]


def test_a_run_started_in_process_is_never_claimed(rt: AgentRuntime) -> None:
    # A worker looking all the time: a run written unleased would be claimed between its
    # row and the start's own lease, and the start would meet RunBusy.
    pool = rt.worker(concurrency=2, poll=0.001)
    runner = threading.Thread(target=pool.run)
    runner.start()
    try:
        runs = [rt.start("note 1", principal=worker_app.OPS) for _ in range(5)]
    finally:
        pool.stop()
        runner.join()
    assert [r.status.value for r in runs] == ["succeeded"] * 5
    assert pool.driven == 0  # the starting process drove each one


def test_an_app_records_its_name_or_the_names_of_its_tools(tmp_path: Path) -> None:
    db = str(tmp_path / "agentrt.db")
    with (
        worker_app.build_runtime(db) as notes,
        worker_app.build_shredder(db) as shredder,
        worker_app.build_runtime(db, app="notes-desk") as named,
    ):
        assert notes.app == AppIdentity(name=None, tools=frozenset({"note", "pay"}))
        assert shredder.app == AppIdentity(name=None, tools=frozenset({"shred"}))
        assert named.app == AppIdentity(name="notes-desk", tools=frozenset({"note", "pay"}))
        # A name is what a named app's runs record; an unnamed app's record its tools.
        for rt, recorded in ((notes, (None, ("note", "pay"))), (named, ("notes-desk", None))):
            made = rt.store.get_run(rt.create("note 1", principal=worker_app.OPS).thread_id)
            assert made is not None
            assert (made.app, made.tools) == recorded
    for bad in ("", "   ", " notes", "notes\n", "x" * 201, 7, b"notes"):
        with pytest.raises(ConfigError, match=r"app must be the app's name, .* got "):
            worker_app.build_runtime(db, app=bad)


def test_who_may_drive_a_run_is_its_name_its_tools_or_anyone() -> None:
    notes = AppIdentity(name=None, tools=frozenset({"note", "pay"}))
    desk = AppIdentity(name="notes-desk", tools=frozenset({"note", "pay"}))
    row = {"thread_id": "t", "goal": "g", "principal": {}, "budget": {}, "usage": {}}
    runs = {
        "before": NewRun(**row),
        "named": NewRun(**row, app="notes-desk"),
        "subset": NewRun(**row, tools=("note",)),
        "superset": NewRun(**row, tools=("archive", "note", "pay")),
        "none": NewRun(**row, tools=()),
    }
    assert {k: may_drive(notes, r) for k, r in runs.items()} == {
        "before": True,
        "named": False,  # only workers of its name
        "subset": True,
        "superset": False,  # it may call archive, which this app has not
        "none": True,
    }
    assert {k: lacks(notes, r) for k, r in runs.items() if lacks(notes, r)} == {
        "named": "the app 'notes-desk'",
        "superset": "the tool 'archive'",
    }
    # A named app drives an unnamed app's run whose tools it has: that run asked no more.
    assert [k for k, r in runs.items() if may_drive(desk, r)] == [
        "before",
        "named",
        "subset",
        "none",
    ]
    assert lacks(AppIdentity(name=None, tools=frozenset()), runs["superset"]) == (
        "the tools 'archive', 'note', 'pay'"
    )


def test_a_worker_claims_only_the_runs_its_app_may_drive(
    rt: AgentRuntime, db: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Apps on one database (agentrt.runs.apps): the shredder's worker drives its own run
    # and one made before runs recorded their app; the notes app's runs (whose tools the
    # shredder has not) wait for a worker that has them, also one whose process here died
    # (taken over at once on SQLite), and a named app's run waits for its name's workers.
    theirs = create(rt, "note 2", 1)[0]
    before = rt.store.create_run(
        dataclasses.replace(
            rt._driver.run_row("note 1", principal=worker_app.OPS), app=None, tools=None
        )
    )
    assert before is not None
    orphan = create(rt, "note 2", 1)[0]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is gone now
    host = socket.gethostname()
    gone = LeaseRecord(f"{host}:{dead.pid}:gone", host, dead.pid, rt.store.clock() + 300)
    assert rt.store.take_lease(orphan, gone, expected=None)
    with worker_app.build_shredder(db, app="desk") as desk:
        named = create(desk, "shred", 1)[0]
    with worker_app.build_shredder(db) as shredder:
        mine = shredder.create("shred", principal=worker_app.OPS).thread_id
        pool = shredder.worker(concurrency=1, poll=0.05)
        caplog.set_level("INFO", logger="agentrt")
        runner = threading.Thread(target=pool.run)
        runner.start()
        try:
            wait_until(all_succeeded(shredder, [before.thread_id, mine]), "the shredder's runs")
        finally:
            pool.stop()
            runner.join(timeout=60)
    assert statuses(rt, [theirs, orphan, named]) == ["pending"] * 3
    assert (rt.store.lease_of(theirs), rt.store.lease_of(orphan)) == (None, gone)
    assert set(calls_by_thread(db)) == {before.thread_id, mine}
    # Said at start: the runs waiting for a driver it may not claim, by what they need
    # (the one whose process died is leased: the takeover's, not counted). Tools it lacks
    # may be this app's runs from a version with one more tool: said as a warning.
    (said,) = [r for r in caplog.records if "need what this app" in r.getMessage()]
    assert said.levelname == "WARNING"
    assert said.getMessage().endswith(
        "has not: the app 'desk' (1); the tools 'note', 'pay' (1); they wait for a worker "
        "whose app has it"
    ), said.getMessage()


def test_a_version_with_one_more_tool_goes_on_with_the_runs_of_the_one_before(db: str) -> None:
    # The common deploy: one app on its database, its next version adds a tool (or an MCP
    # server now lists one more). The runs of the version before, one waiting at a gate
    # (for days, say), one new, need no tool the new version lacks: once the old workers
    # are gone, the new version's workers carry them on. A rollback's workers leave the
    # new version's runs (which may call the new tool) alone.
    with worker_app.build_runtime(db) as old:
        waiting = old.start("pay 500", principal=worker_app.OPS)
        assert waiting.status.value == "awaiting_approval"
        gate = waiting.pending_approval
        assert gate is not None
        fresh = create(old, "note 1", 1)[0]
        old_app = old.app
    with worker_app.build_next_version(db) as new:
        assert new.app.tools == old_app.tools | {"archive"}
        new.decide(Decision.approve(gate.id, by=worker_app.PAYER), resume=False)
        pool = new.worker(concurrency=2, poll=0.05)
        runner = threading.Thread(target=pool.run)
        runner.start()
        try:
            wait_until(all_succeeded(new, [waiting.thread_id, fresh]), "the old version's runs")
        finally:
            pool.stop()
            runner.join(timeout=60)
        assert pool.driven == 2
        newer = create(new, "note 1", 1)[0]
    with worker_app.build_runtime(db) as rolled_back:
        lease = LeaseRecord("h:1:w", "h", 1, rolled_back.store.clock() + 30)
        now = rolled_back.store.clock()
        claim = rolled_back.store.claim_runs(lease, now=now, limit=5, app=rolled_back.app)
        assert claim.thread_ids == ()
        assert rolled_back.get(newer).status.value == "pending"
    assert sorted(w for calls in calls_by_thread(db).values() for w, _ in calls) == [
        "note 1",
        "pay 500",
    ]


# worker processes ---------------------------------------------------------------------------

pytestmark = pytest.mark.subprocess


def test_a_worker_process_drives_the_runs_another_process_wrote(
    rt: AgentRuntime, db: str, tmp_path: Path
) -> None:
    with worker(APP, db, tmp_path / "worker.log", args=("--concurrency", "4")) as w:
        notes = create(rt, "note 2", 4)
        paying = create(rt, "pay 500", 1)[0]
        wait_until(all_succeeded(rt, notes), "the notes ran")
        wait_until(lambda: rt.get(paying).status.value == "awaiting_approval", "the gate")
        gate = rt.get(paying).pending_approval
        assert gate is not None
        decided = rt.decide(Decision.approve(gate.id, by=worker_app.PAYER), resume=False)
        assert decided.status.value == "awaiting_approval"  # recorded; the worker goes on
        wait_until(all_succeeded(rt, [paying]), "the decided run went on")
        assert w.terminate() == 0
        pids = {pid for calls in calls_by_thread(db).values() for _, pid in calls}
        assert pids == {w.pid}
    assert "Traceback" not in w.text(), w.text()
    assert sorted(w for calls in calls_by_thread(db).values() for w, _ in calls) == sorted(
        ["note 1", "note 2"] * 4 + ["pay 500"]
    )


def test_workers_racing_for_runs_drive_each_one_once(
    rt: AgentRuntime, db: str, tmp_path: Path
) -> None:
    args = ("--concurrency", "4")
    env = {"WORKER_APP_LATENCY": "0.01"}
    with (
        worker(APP, db, tmp_path / "a.log", args=args, env=env) as a,
        worker(APP, db, tmp_path / "b.log", args=args, env=env) as b,
        worker(APP, db, tmp_path / "c.log", args=args, env=env) as c,
    ):
        runs = create(rt, "note 2", 40)
        wait_until(all_succeeded(rt, runs), "every run ended", timeout=120)
        assert [a.terminate(), b.terminate(), c.terminate()] == [0, 0, 0]
    calls = calls_by_thread(db)
    # Driven twice, a run's calls would repeat (the ledger calls an idempotent tool again).
    assert {t: [w for w, _ in c] for t, c in calls.items()} == {
        t: ["note 1", "note 2"] for t in runs
    }
    assert all(len({pid for _, pid in c}) == 1 for c in calls.values())
    assert len({c[0][1] for c in calls.values()}) > 1  # the work was shared


def in_progress(db: str, runs: list[str]) -> Callable[[], bool]:
    return lambda: set(calls_by_thread(db)) >= set(runs)


def test_sigterm_stops_each_run_at_its_next_step_resumable(tmp_path: Path) -> None:
    db = str(tmp_path / "agentrt.db")
    env = {"WORKER_APP_LATENCY": "0.3", "WORKER_APP_SINK": str(tmp_path / "sink.db")}
    with worker_app.build_runtime(db) as rt:
        runs = create(rt, "note 3", 3)
        with worker(APP, db, tmp_path / "a.log", env=env, args=("--concurrency", "3")) as a:
            wait_until(in_progress(db, runs), "each run made its first call")
            assert a.terminate() == 0
        assert "Traceback" not in a.text(), a.text()
        for thread_id in runs:  # not cancelled, not failed: where it stopped, let go
            run = rt.get(thread_id)
            assert (run.status.value, run.cancel_requested) == ("running", None)
            assert rt.store.lease_of(thread_id) is None
        with worker(APP, db, tmp_path / "b.log", env=env) as b:
            wait_until(all_succeeded(rt, runs), "the second worker finished them")
            assert b.terminate() == 0
    calls = calls_by_thread(tmp_path / "agentrt.db")
    for thread_id in runs:  # every call once: the stop fell between steps
        assert [w for w, _ in calls[thread_id]] == ["note 1", "note 2", "note 3"]
        assert {pid for _, pid in calls[thread_id]} == {a.pid, b.pid}


def test_a_handlers_line_is_written_while_the_loop_is_inside_a_write_to_stderr() -> None:
    # The handler may interrupt a log line half written: stderr's buffer is then held, and a
    # write through it raises "reentrant call" out of the handler into the worker's loop.
    read_end, write_end = os.pipe()
    said: list[BaseException | None] = []

    def handler(signum: int, frame: object) -> None:
        try:
            say_from_handler("agentrt worker: SIGUSR1: stopping")
            said.append(None)
        except BaseException as exc:  # what the handler raised is the finding
            said.append(exc)

    class Stderr(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def fileno(self) -> int:
            return write_end

        def write(self, b: Any) -> int:
            if not said:  # the signal lands while BufferedWriter.write holds its lock
                os.kill(os.getpid(), signal.SIGUSR1)
            return os.write(write_end, bytes(b))

    stream = io.TextIOWrapper(io.BufferedWriter(Stderr()), line_buffering=True)  # as stderr is
    before = signal.signal(signal.SIGUSR1, handler)
    try:
        with contextlib.redirect_stderr(stream):
            print("a log line", file=sys.stderr)
        assert said == [None]  # the handler ran inside that write, and raised nothing

        # The old way, typer.echo(err=True) through the same stream, is what raised:
        def through_the_stream(signum: int, frame: object) -> None:
            said.append(None)
            print("through the stream", file=sys.stderr)

        said.clear()
        signal.signal(signal.SIGUSR1, through_the_stream)
        with contextlib.redirect_stderr(stream), pytest.raises(RuntimeError, match="reentrant"):
            print("another log line", file=sys.stderr)
    finally:
        signal.signal(signal.SIGUSR1, before)
        os.close(write_end)
    with os.fdopen(read_end) as written:
        text = written.read()
    assert text.splitlines()[:2] == ["agentrt worker: SIGUSR1: stopping", "a log line"]


def test_a_sigterm_while_the_worker_starts_is_obeyed_once_it_is_up(tmp_path: Path) -> None:
    db = str(tmp_path / "agentrt.db")
    gate = tmp_path / "open"
    env = {"WORKER_APP_OPEN_GATE": str(gate)}
    with worker_app.build_runtime(db) as rt:
        (run,) = create(rt, "note 1", 1)
        with worker(APP, db, tmp_path / "a.log", env=env, started=False) as a:
            waiting = Path(f"{gate}.waiting")
            wait_until(waiting.exists, "the worker is opening its app")
            a.process.terminate()  # while the app opens: before the worker exists
            gate.touch()
            assert a.process.wait(timeout=60) == 0
        assert "agentrt worker: ready" in a.text(), a.text()
        assert "SIGTERM: stopping" in a.text(), a.text()
        assert rt.get(run).status.value == "pending"  # nothing claimed
    assert calls_by_thread(db) == {}


# A worker whose own lock sends its process SIGTERM the first time the loop's thread takes
# it: a signal that comes (a `kill <pid>`, a supervisor's) while the loop holds it. The rest
# is the real `agentrt worker`.
_SIGTERM_WHILE_LOCKED = """
import os, signal, sys, threading
from agentrt.runs import workers


class SignalWhileHeld:
    def __init__(self):
        self._inner = threading.Lock()
        self._sent = False

    def __enter__(self):
        self._inner.acquire()
        if not self._sent and threading.current_thread() is threading.main_thread():
            self._sent = True
            os.kill(os.getpid(), signal.SIGTERM)
        return self

    def __exit__(self, *exc):
        self._inner.release()


made = workers.Worker.__init__


def init(self, *args, **kwargs):
    made(self, *args, **kwargs)
    self._lock = SignalWhileHeld()


workers.Worker.__init__ = init
from agentrt.cli import main

sys.argv = ["agentrt", "worker", "--app", sys.argv[1], "--db", sys.argv[2]]
main()
"""


def test_a_sigterm_while_the_worker_loop_holds_its_lock_still_stops_it(tmp_path: Path) -> None:
    # The handler runs on the loop's thread, between any two of its steps: were stop() to
    # wait for the loop's lock there, it would wait for ever.
    from tests.serving import ROOT

    db = str(tmp_path / "agentrt.db")
    with worker_app.build_runtime(db):
        pass
    env = {**os.environ, "WORKER_APP_SINK": str(tmp_path / "sink.db")}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _SIGTERM_WHILE_LOCKED, APP, db],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"the worker hung after a SIGTERM came while it held its lock: {hung.stderr!r}")
    assert (done.returncode, "SIGTERM: stopping" in done.stderr) == (0, True), done.stderr
    assert "worker: stopped, 0 runs carried on" in done.stderr


def test_a_worker_of_another_app_leaves_its_runs_to_their_own(pg: str, tmp_path: Path) -> None:
    # Two apps on one database (or an old and a new version of one during a deploy): the
    # shredder's worker drives its own run, and leaves the notes app's older run (whose
    # tool it has not) to the notes app's workers.
    with worker_app.build_runtime(pg) as rt:
        theirs = create(rt, "note 2", 1)[0]
        with (
            worker("tests.worker_app:build_shredder", pg, tmp_path / "b.log") as b,
            worker_app.build_shredder(pg) as shredder,
        ):
            mine = shredder.create("shred", principal=worker_app.OPS).thread_id
            # Claims go oldest first: once its own later run has ended, it has looked.
            wait_until(all_succeeded(shredder, [mine]), "the shredder's own run")
            assert b.terminate() == 0
        assert calls_by_thread(pg) == {mine: [("shred all", b.pid)]}
        run = rt.get(theirs)
        assert (run.status.value, run.output) == ("pending", None)
        with worker(APP, pg, tmp_path / "a.log") as a:  # its own app's worker takes it
            wait_until(all_succeeded(rt, [theirs]), "the notes app's worker drove its run")
            assert a.terminate() == 0
    assert "the tools 'note', 'pay' (1)" in b.text(), b.text()  # said as it started


def test_a_follow_up_kept_for_an_idle_worker_wakes_it_at_once(pg: str, tmp_path: Path) -> None:
    # `serve --no-worker` keeps a follow-up for a worker (POST /runs/{id}/messages,
    # rt.keep_message). The database tells a listening worker of it, as of a new run or a
    # decision: it looks on its own only every --poll seconds (a minute here).
    with (
        worker_app.build_runtime(pg) as rt,
        worker(APP, pg, tmp_path / "a.log", args=("--poll", "60")) as a,
    ):
        first = create(rt, "note 1", 1)[0]
        wait_until(all_succeeded(rt, [first]), "a new run, at once", timeout=15)
        wait_until(lambda: rt.store.lease_of(first) is None, "the worker let the run go")
        kept = rt.keep_message(first, "once more", principal=worker_app.OPS)
        assert kept.status == "queued"
        wait_until(
            lambda: rt.messages(first)[-1].status == "succeeded",
            "the follow-up kept for the worker was answered",
            timeout=15,
        )
        assert a.terminate() == 0


def test_after_sigterm_another_worker_takes_the_runs_over_at_once(pg: str, tmp_path: Path) -> None:
    # Runs long enough (8 notes of 0.8 s) to outlast b's start on a loaded machine, where
    # 0.4 s a note let a finish a run before b was up.
    env = {"WORKER_APP_LATENCY": "0.8"}
    with worker_app.build_runtime(pg) as rt:
        runs = create(rt, "note 8", 3)
        with worker(APP, pg, tmp_path / "a.log", env=env, args=("--concurrency", "3")) as a:
            wait_until(in_progress(pg, runs), "each run made its first call")
            # b looks on its own only every minute, and a's leases last 30 s: only the
            # database's word that a's runs were let go can bring b to them sooner.
            with worker(APP, pg, tmp_path / "b.log", env=env, args=("--poll", "60")) as b:
                assert a.terminate() == 0
                took = wait_until(all_succeeded(rt, runs), "b finished a's runs")
                assert b.terminate() == 0
    assert took < 15
    calls = calls_by_thread(pg)
    for thread_id in runs:
        assert [w for w, _ in calls[thread_id]] == [f"note {k}" for k in range(1, 9)]
        assert {pid for _, pid in calls[thread_id]} == {a.pid, b.pid}


def test_a_killed_workers_runs_are_taken_over_when_its_leases_expire(
    pg: str, tmp_path: Path
) -> None:
    # Slow turns: a's runs outlast b's start-up, seconds on a loaded machine.
    env = {"WORKER_APP_LATENCY": "0.8", "WORKER_APP_LEASE_TTL": "2"}
    with worker_app.build_runtime(pg) as rt:
        runs = create(rt, "note 8", 3)
        with worker(APP, pg, tmp_path / "a.log", env=env, args=("--concurrency", "3")) as a:
            wait_until(in_progress(pg, runs), "each run made its first call")
            with worker(APP, pg, tmp_path / "b.log", env=env, args=("--poll", "60")) as b:
                a.kill()
                killed = time.monotonic()
                wait_until(
                    lambda: (
                        rt.store.lease_of(runs[0]) is None
                        or any(
                            (held := rt.store.lease_of(t)) is not None and str(b.pid) in held.owner
                            for t in runs
                        )
                    ),
                    "b claimed a run",
                    timeout=15,
                )
                took = time.monotonic() - killed
                wait_until(all_succeeded(rt, runs), "b finished a's runs")
                assert b.terminate() == 0
    # Taken over when a's last leases ran out (2 s from its last renewal), not at b's
    # next look a minute later; and not at once either (a dead pid is no proof on a
    # database that other hosts share).
    assert 0.3 < took < 6
    calls = calls_by_thread(pg)
    effects = sink(pg, "SELECT thread, what FROM effects ORDER BY thread, what")
    assert effects == sorted((t, f"note {k}") for t in runs for k in range(1, 9))
    assert all({pid for _, pid in calls[t]} == {a.pid, b.pid} for t in runs)


def test_workers_carry_on_across_a_postgres_restart(
    pg: str, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    if not postgres_server.owned:
        pytest.skip("the server is not the tests' own: it cannot be restarted")
    env = {"WORKER_APP_LATENCY": "0.05"}
    with worker_app.build_runtime(pg) as rt:
        runs = create(rt, "note 3", 16)
        with (
            worker(APP, pg, tmp_path / "a.log", env=env, args=("--concurrency", "4")) as a,
            worker(APP, pg, tmp_path / "b.log", env=env, args=("--concurrency", "4")) as b,
        ):
            wait_until(lambda: len(sink(pg, "SELECT key FROM calls")) >= 8, "some calls")
            postgres_server.restart()
            wait_until(all_succeeded(rt, runs), "every run ended", timeout=120)
            assert (a.process.poll(), b.process.poll()) == (None, None)  # still working
            assert [a.terminate(), b.terminate()] == [0, 0]
    effects = sink(pg, "SELECT thread, what FROM effects ORDER BY thread, what")
    assert effects == sorted((t, f"note {k}") for t in runs for k in (1, 2, 3))


def test_two_api_servers_and_two_workers_share_one_postgres(pg: str, tmp_path: Path) -> None:
    from tests.serving import serve, wait_for

    with worker_app.build_runtime(pg) as rt:
        ops, payer, stranger = (
            rt.keys.create(p)[1] for p in (worker_app.OPS, worker_app.PAYER, worker_app.STRANGER)
        )
    api_only = ("--no-worker",)
    with (
        serve(APP, pg, args=api_only) as one,
        serve(APP, pg, args=api_only) as two,
        worker(APP, pg, tmp_path / "a.log") as a,
        worker(APP, pg, tmp_path / "b.log") as b,
        one.client(ops) as ops_one,
        two.client(ops) as ops_two,
        two.client(payer) as payer_two,
        two.client(stranger) as stranger_two,
    ):
        started = ops_one.post("/runs", json={"goal": "pay 500"})
        assert started.status_code == 202, started.text
        thread_id = started.json()["thread_id"]
        assert (started.json()["status"], started.json()["driving"]) == ("pending", False)
        gated = wait_for(ops_two, thread_id, {"awaiting_approval"})
        (request,) = gated["pending_approvals"]  # type: ignore[misc]
        # Another tenant sees nothing of it, on either server.
        assert stranger_two.get(f"/runs/{thread_id}").status_code == 404
        assert thread_id not in stranger_two.get("/runs").text
        assert stranger_two.get("/approvals").json()["approvals"] == []
        assert (
            stranger_two.post(
                f"/approvals/{request['id']}/decision", json={"outcome": "approve"}
            ).status_code
            == 404
        )
        queue = payer_two.get("/approvals").json()["approvals"]
        assert [r["id"] for r in queue] == [request["id"]]
        decided = payer_two.post(
            f"/approvals/{request['id']}/decision", json={"outcome": "approve"}
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["run"]["driving"] is False  # recorded; a worker goes on
        done = wait_for(ops_one, thread_id, {"succeeded", "failed"})
        assert done["status"] == "succeeded", done
        noted = ops_two.post("/runs", json={"goal": "note 2"}).json()["thread_id"]
        assert wait_for(ops_one, noted, {"succeeded", "failed"})["status"] == "succeeded"
        assert ops_one.get(f"/runs/{noted}/trace").status_code == 200
        assert [r["thread_id"] for r in ops_two.get("/runs").json()["runs"]] == [noted, thread_id]
        for server in (ops_one, ops_two):
            assert server.get("/healthz").json()["runs_in_hand"] == 0
        assert [a.terminate(), b.terminate()] == [0, 0]
    # Only the workers made calls: the servers drove nothing.
    pids = {pid for calls in calls_by_thread(pg).values() for _, pid in calls}
    assert pids <= {a.pid, b.pid}
    assert len(pids) >= 1
