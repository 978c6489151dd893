"""Threads that go on, across real processes: a follow-up sent from another process; a
process SIGKILLed inside a follow-up, then resumed; a queued message outliving the process
that drove its thread, answered by a worker; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentrt import AgentRuntime, RunBusy, RunStatus
from agentrt.records import LeaseRecord, MessageOpening, NewMessage
from agentrt.runs.lease import LeaseOwner
from tests import threads_app
from tests.test_workers import wait_until
from tests.threads_app import OPS, calls, effects

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.threads_app:build_runtime"

pytestmark = pytest.mark.subprocess

# A killed process's lease: on SQLite its dead pid frees it at once, on PostgreSQL it expires.
SHORT_LEASE = {"THREADS_APP_LEASE_TTL": "1"}

SEND = (
    "import json, sys\n"
    "from tests.threads_app import OPS, build_runtime\n"
    "rt = build_runtime(sys.argv[1])\n"
    "run = rt.send(sys.argv[2], sys.argv[3], principal=OPS, double_texting=sys.argv[4])\n"
    "print(json.dumps({'status': run.status, 'output': run.output, 'message': run.message,"
    " 'pid': __import__('os').getpid()}))\n"
)
START = (
    "import sys\n"
    "from tests.threads_app import OPS, build_runtime\n"
    "build_runtime(sys.argv[1]).start(sys.argv[3], principal=OPS, thread_id=sys.argv[2])\n"
)


def python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finished(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The thread's database; the app's sink is a SQLite file in tmp_path either way."""
    if request.param == "sqlite":
        yield str(tmp_path / "agentrt.db")
    else:
        url: str = request.getfixturevalue("postgres_url")
        os.environ["THREADS_APP_SINK_DIR"] = str(tmp_path)
        try:
            yield url
        finally:
            os.environ.pop("THREADS_APP_SINK_DIR", None)


def test_a_follow_up_sent_from_another_process_continues_the_thread(db: str) -> None:
    with threads_app.build_runtime(db) as rt:
        first = rt.start("note 1", principal=OPS)
        assert first.output == "noted 1"
    code, out, err = finished(python(SEND, db, first.thread_id, "note 2", "reject"))
    assert code == 0, err
    sent = json.loads(out)
    assert (sent["status"], sent["output"], sent["message"]) == ("succeeded", "noted 2", 1)
    assert sent["pid"] != os.getpid()
    with threads_app.build_runtime(db) as rt:
        assert [(m.index, m.status, m.output) for m in rt.messages(first.thread_id)] == [
            (0, "succeeded", "noted 1"),
            (1, "succeeded", "noted 2"),
        ]
        assert rt.trace(first.thread_id).segments()[-1].name == "send agentrt"
    assert effects(db) == ["note 1/1", "note 1/2", "note 2/2"]


def test_sigkill_inside_a_follow_up_then_resume_finishes_it_effects_once(db: str) -> None:
    with threads_app.build_runtime(db) as rt:
        first = rt.start("hello", principal=OPS)
    proc = python(SEND, db, first.thread_id, "crash", "reject", env=SHORT_LEASE)
    code, _, err = finished(proc)
    assert code == -signal.SIGKILL, err
    with threads_app.build_runtime(db) as rt:
        wait_until(lambda: _free_or_gone(rt, first.thread_id), "the dead lease can be taken")
        left = rt.get(first.thread_id)
        assert (left.status, left.message) == (RunStatus.RUNNING, 1)
        assert [m.status for m in rt.messages(first.thread_id)] == ["succeeded", "running"]
        resumed = rt.resume(first.thread_id)  # the dead sender's lease is taken over
        assert (resumed.status, resumed.message, resumed.output) == (
            RunStatus.SUCCEEDED,
            1,
            "crunched",
        )
        assert [(m.status, m.output) for m in rt.messages(first.thread_id)] == [
            ("succeeded", "you said: hello"),
            ("succeeded", "crunched"),
        ]
    assert [what for _, what in calls(db)] == ["crunch", "crunch"]  # the same key, again
    assert effects(db) == ["crunch"]


def test_a_queued_message_outlives_its_threads_driver_and_a_worker_answers_it(
    db: str,
) -> None:
    holder = python(START, db, "t-held", "hold", env={"THREADS_APP_HOLD": "1", **SHORT_LEASE})
    assert holder.stdout is not None
    assert holder.stdout.readline() == "HOLDING\n", holder.stderr.read() if holder.stderr else ""
    with threads_app.build_runtime(db) as rt:
        # Its driver lives: the message waits, kept in the database.
        kept = rt.send("t-held", "note 1", principal=OPS, double_texting="enqueue")
        assert (kept.status, kept.message) == (RunStatus.RUNNING, 0)
        with pytest.raises(RunBusy):
            rt.resume("t-held")
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=30)
    assert holder.returncode == -signal.SIGKILL
    with threads_app.build_runtime(db) as rt:
        assert [m.status for m in rt.messages("t-held")] == ["running", "queued"]
        pool = rt.worker(concurrency=1, poll=0.02)
        runner = threading.Thread(target=pool.run)
        runner.start()
        try:
            wait_until(
                lambda: [m.status for m in rt.messages("t-held")] == ["succeeded", "succeeded"],
                "the worker answered both messages",
            )
        finally:
            pool.stop()
            runner.join(30)
        assert [(m.index, m.output) for m in rt.messages("t-held")] == [
            (0, "held"),
            (1, "noted 1"),
        ]
    assert effects(db) == ["hold", "note 1/1"]


def test_a_message_kept_for_a_finished_thread_is_answered_by_a_worker_process(
    db: str, tmp_path: Path
) -> None:
    from tests.serving import worker

    with threads_app.build_runtime(db) as rt:
        first = rt.start("hello", principal=OPS)
        kept = rt.send(first.thread_id, "note 1", principal=OPS, resume=False)
        assert (kept.status, kept.message) == (RunStatus.SUCCEEDED, 0)
        assert [m.status for m in rt.messages(first.thread_id)] == ["succeeded", "queued"]
        with worker(APP, db, tmp_path / "worker.log"):
            wait_until(
                lambda: (
                    rt.get(first.thread_id).message == 1
                    and rt.get(first.thread_id).status is RunStatus.SUCCEEDED
                ),
                "a worker process took the message",
            )
        assert rt.get(first.thread_id).output == "noted 1"
    assert {pid for pid in _pids(db)} != {os.getpid()}


def _pids(db: str) -> set[int]:
    import sqlite3

    with sqlite3.connect(threads_app.sink_path(db)) as conn:
        return {pid for (pid,) in conn.execute("SELECT pid FROM calls")}


def test_a_message_taken_by_a_process_that_died_before_driving_it_is_answered(
    db: str,
) -> None:
    with threads_app.build_runtime(db) as rt:
        first = rt.start("hello", principal=OPS)
        # What a sender that died right after taking the message leaves: the row at the
        # new message, leased to a process that is gone; the graph never given it.
        queued = rt.store.add_message(
            NewMessage(thread_id=first.thread_id, text="note 1", principal=OPS.to_dict())
        )
        assert queued is not None
        record = rt.store.get_run(first.thread_id)
        assert record is not None
        host = LeaseOwner.this_process("x").host
        gone = LeaseRecord(f"{host}:{2**22 + 7}:gone", host, 2**22 + 7, rt.store.clock() + 0.5)
        opened = rt.store.open_message(
            first.thread_id,
            MessageOpening(
                from_status=record.status,
                from_message=0,
                index=queued.index,
                closing="succeeded",
                output=record.output,
                spent=record.usage,
                usage_before=record.usage,
                lease=gone,
            ),
        )
        assert opened is not None
        assert opened.status is RunStatus.RUNNING
    with threads_app.build_runtime(db) as rt:
        assert _resumed_once_free(rt, first.thread_id) == (RunStatus.SUCCEEDED, 1, "noted 1")
    assert effects(db) == ["note 1/1"]


def test_an_interrupting_message_taken_by_a_process_that_died_says_what_it_interrupted(
    db: str,
) -> None:
    with threads_app.build_runtime(db) as rt:
        first = rt.start("pay 500", principal=OPS)
        assert first.status is RunStatus.AWAITING_APPROVAL
        _taken_by_a_dead_process(rt, first.thread_id, "note 1")
    with threads_app.build_runtime(db) as rt:
        assert _resumed_once_free(rt, first.thread_id) == (RunStatus.SUCCEEDED, 1, "noted 1")
        [message] = _message_events(rt, first.thread_id)
        assert message["interrupted"] == 0
        assert [m.status for m in rt.messages(first.thread_id)] == ["interrupted", "succeeded"]
    assert effects(db) == ["note 1/1"]


def _taken_by_a_dead_process(rt: AgentRuntime, thread_id: str, text: str) -> None:
    """What a sender that died right after taking an interrupting message leaves: the
    stretch before written down as interrupted, the row at the new message, leased to a
    process that is gone; the graph never given it."""
    from agentrt.runs.messages import opening_for

    queued = rt.store.add_message(
        NewMessage(thread_id=thread_id, text=text, principal=OPS.to_dict(), interrupt=True)
    )
    assert queued is not None
    record = rt.store.get_run(thread_id)
    assert record is not None
    host = LeaseOwner.this_process("x").host
    gone = LeaseRecord(f"{host}:{2**22 + 7}:gone", host, 2**22 + 7, rt.store.clock() + 0.5)
    values = rt.graph.get_state({"configurable": {"thread_id": thread_id}}).values
    opening = opening_for(
        rt.store, record, values, index=queued.index, lease=gone, now=rt.store.clock()
    )
    assert rt.store.open_message(thread_id, opening) is not None


def _message_events(rt: AgentRuntime, thread_id: str) -> list[dict[str, object]]:
    return [e["data"] for e in rt.events(thread_id) if e["type"] == "message"]


def test_a_message_taken_before_the_first_checkpoint_by_a_process_that_died_is_answered(
    db: str,
) -> None:
    with threads_app.build_runtime(db) as rt:
        made = rt.create("note 1", principal=OPS)  # pending: no checkpoint yet
        _taken_by_a_dead_process(rt, made.thread_id, "hello")
    with threads_app.build_runtime(db) as rt:
        # The message is answered, not the goal it interrupted.
        assert _resumed_once_free(rt, made.thread_id) == (RunStatus.SUCCEEDED, 1, "you said: hello")
        assert _message_events(rt, made.thread_id) == [
            {"index": 1, "text": "hello", "by": OPS.id, "interrupted": 0}
        ]
    assert effects(db) == []


def test_a_message_never_given_to_the_graph_is_what_the_next_one_interrupts(db: str) -> None:
    with threads_app.build_runtime(db) as rt:
        first = rt.start("pay 500", principal=OPS)
        _taken_by_a_dead_process(rt, first.thread_id, "note 1")
    with threads_app.build_runtime(db) as rt:
        wait_until(lambda: _free_or_gone(rt, first.thread_id), "the dead lease can be taken")
        run = rt.send(first.thread_id, "note 2", principal=OPS, double_texting="interrupt")
        assert (run.status, run.message, run.output) == (RunStatus.SUCCEEDED, 2, "noted 2")
        [event] = _message_events(rt, first.thread_id)
        assert (event["index"], event["interrupted"]) == (2, 1)


def _resumed_once_free(rt: AgentRuntime, thread_id: str) -> tuple[RunStatus, int, str | None]:
    """Resume the run once the dead sender's lease can be taken: its status, message, output."""
    wait_until(lambda: _free_or_gone(rt, thread_id), "the dead lease can be taken")
    resumed = rt.resume(thread_id)
    return resumed.status, resumed.message, resumed.output


def _free_or_gone(rt: AgentRuntime, thread_id: str) -> bool:
    """A dead owner's lease is taken at once on one host; on PostgreSQL once it expires."""
    lease = rt.store.lease_of(thread_id)
    return lease is None or rt.store.one_host or lease.expires_at <= rt.store.clock()
