"""Another process holding SQLite's write lock past busy_timeout: writes keep trying, and a
run that still cannot write waits to be retried (resumable), it never fails for it.

The lock is held by a real second process; busy_timeout is shortened so the test does not
wait ten seconds per try, and the tries are counted (and the lock let go) through the
store's sleep between tries instead of the wall clock.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentrt import AgentRuntime, Policy, Principal, RunStatus, ToolContext, tool
from agentrt.store.sqlite import database as store_sqlite
from agentrt.testing import ScriptedChatModel, ai, tool_call

pytestmark = pytest.mark.subprocess

HOLD = (
    "import sqlite3, sys\n"
    "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "conn.execute('BEGIN IMMEDIATE')\n"
    "print('held', flush=True)\n"
    "sys.stdin.readline()\n"
    "conn.execute('COMMIT')\n"
)


class Holder:
    """A second process that holds the database's write lock until let go."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(db)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        if self.proc.poll() is None:
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
            self.proc.wait(30)
        self.proc.stdin.close()
        self.proc.stdout.close()


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    made: list[Holder] = []
    yield made
    for holder in made:
        holder.release()


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_sqlite, "BUSY_TIMEOUT_MS", 100)


def counting_sleep(monkeypatch: pytest.MonkeyPatch, then: Callable[[int], None]) -> list[float]:
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        then(len(pauses))

    monkeypatch.setattr(store_sqlite, "_sleep", sleep)
    return pauses


def app(db: Path, on_call: Callable[[str], Any]) -> AgentRuntime:
    @tool(effect="write", idempotent=True)
    def note(text: str, ctx: ToolContext) -> dict[str, str]:
        """Write a note.

        Args:
            text: The note.
        """
        on_call(ctx.idempotency_key)
        return {"noted": text}

    model = ScriptedChatModel([ai("", tool_call("note", {"text": "hi"})), "noted"])
    return AgentRuntime(model, tools=[note], policy=Policy.allow_all(), db=db)


P = Principal("p", tenant="acme")


def test_a_lock_held_past_busy_timeout_is_waited_out(
    db: Path, holders: list[Holder], monkeypatch: pytest.MonkeyPatch, short_busy_timeout: None
) -> None:
    def let_go_at_the_third_try(tries: int) -> None:
        if tries == 3:
            holders[0].release()

    pauses = counting_sleep(monkeypatch, let_go_at_the_third_try)
    with app(db, on_call=lambda key: holders.append(Holder(db))) as rt:
        run = rt.start("note it", principal=P)
    # The checkpoint after the tool call waited for the lock three times, then went on.
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "noted")
    assert len(pauses) == 3


def test_a_run_that_still_cannot_write_waits_to_retry_and_resumes(
    db: Path, holders: list[Holder], monkeypatch: pytest.MonkeyPatch, short_busy_timeout: None
) -> None:
    monkeypatch.setattr(store_sqlite, "LOCK_PATIENCE", 0.5)

    # Tries 1-3 are the ledger's write after the call, which then gives up; the 4th is the
    # run's status write, and the lock is let go there, as a stuck holder finally would.
    def let_go_once_the_step_gave_up(tries: int) -> None:
        if tries == 4:
            holders[0].release()

    pauses = counting_sleep(monkeypatch, let_go_once_the_step_gave_up)
    keys: list[str] = []

    def lock_it(key: str) -> None:
        keys.append(key)
        if len(keys) == 1:
            holders.append(Holder(db))

    with app(db, on_call=lock_it) as rt:
        run = rt.start("note it", principal=P, thread_id="t")
        assert len(pauses) == 4
        assert run.status is RunStatus.WAITING_RETRY, run.error
        assert run.error is not None
        assert run.error.startswith(
            "waiting to retry: the database stayed locked by another process (database is locked)"
        )
        assert run.retry_at is not None

        done = rt.resume("t")
    assert (done.status, done.output, done.error) == (RunStatus.SUCCEEDED, "noted", None)
    # The step ran again from its checkpoint; its result was never recorded, so the
    # idempotent tool was called again, with the same key.
    assert len(keys) == 2
    assert keys[0] == keys[1]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_service_sweep_carries_on_a_run_once_its_wait_to_retry_is_over(
    db: Path, anyio_backend: str
) -> None:
    import sqlite3

    from agentrt.service import create_app
    from agentrt.service.app import sweep_once
    from tests.conftest import FakeClock

    clock = FakeClock()
    locked = sqlite3.OperationalError("database is locked")
    # The first turn fails (the planner retries only model errors: the store already
    # waited out the lock), then it answers.
    model = ScriptedChatModel([locked, "done"])
    rt = AgentRuntime(model, db=db, clock=clock, tracing=None)
    app = create_app(rt, sweep_every=None, resume_stopped=False)
    async with app.router.lifespan_context(app):
        run = await rt.astart("go", principal=P, thread_id="t")
        assert run.status is RunStatus.WAITING_RETRY
        assert run.retry_at == clock.now + 5.0

        service = app.state.agentrt
        await sweep_once(service)  # not yet due: nothing to do
        await service.worker.wait("t")
        assert rt.get("t").status is RunStatus.WAITING_RETRY

        clock.advance(5.0)
        await sweep_once(service)
        await service.worker.wait("t")
    done = rt.get("t")
    rt.close()
    assert (done.status, done.output, done.usage["retry_waited_seconds"]) == (
        RunStatus.SUCCEEDED,
        "done",
        5.0,
    )
