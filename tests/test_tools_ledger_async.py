"""The ledger's async path: the same exactly-once procedure as the sync one, off the loop.

Every scenario runs through both entry points (``execute`` and ``aexecute``) and must end
the same, in the calls made and in the records kept. On the async path no store call runs
on the caller's event loop, and async tools run on the tool loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import RetryPolicy

from agentrt import AgentRuntime
from agentrt.errors import LeaseLost
from agentrt.principal import Principal
from agentrt.runs.lease import LeaseOwner, acquire
from agentrt.store import Store
from agentrt.testing import ScriptedChatModel
from agentrt.tools import (
    EffectInDoubt,
    Ledger,
    LoopThread,
    ToolContext,
    ToolError,
    ToolRunner,
    ToolSpec,
    effect_key,
    tool,
)
from agentrt.tools.execution import ToolFailure
from agentrt.tools.ledger import LedgerResult, RecordedFailure

ARGS = {"order_id": "o1"}
CTX = ToolContext(
    thread_id="t1",
    step_id="1.0",
    idempotency_key=effect_key("t1", "1.0", "charge", ARGS),
    principal=Principal("p"),
)
KEY = CTX.idempotency_key


class Spy:
    """The store, noting the thread each call ran in."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.threads: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def noted(*args: Any, **kwargs: Any) -> Any:
            self.threads.append((name, threading.get_ident()))
            return method(*args, **kwargs)

        return noted


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    """A runtime's own store, whatever its backend, with run t1 in it."""
    with AgentRuntime(ScriptedChatModel([]), db=db) as rt:
        rt.create("g", principal=Principal("p"), thread_id="t1")  # the effects' run row
        yield rt.store


@pytest.fixture
def tool_loop() -> Iterator[LoopThread]:
    lt = LoopThread("test-ledger")
    yield lt
    lt.close()


Execute = Callable[[Ledger, ToolSpec, ToolRunner], LedgerResult]


@pytest.fixture(params=["execute", "aexecute"])
def execute(request: pytest.FixtureRequest) -> Execute:
    if request.param == "execute":
        return lambda ledger, spec, runner: ledger.execute(spec, ARGS, CTX, runner)

    def run(ledger: Ledger, spec: ToolSpec, runner: ToolRunner) -> LedgerResult:
        return asyncio.run(ledger.aexecute(spec, ARGS, CTX, runner))

    return run


def charge_tool(
    *, idempotent: bool = False, fail: Exception | None = None, **options: Any
) -> tuple[ToolSpec, list[asyncio.AbstractEventLoop]]:
    calls: list[asyncio.AbstractEventLoop] = []

    @tool(name="charge", effect="write", idempotent=idempotent, **options)
    async def charge(order_id: str, ctx: ToolContext) -> dict[str, Any]:
        """Charge an order."""
        calls.append(asyncio.get_running_loop())
        if fail is not None:
            raise fail
        return {"charged": order_id, "n": len(calls)}

    return charge, calls


def test_a_done_key_is_not_called_again(
    store: Store, tool_loop: LoopThread, execute: Execute
) -> None:
    spec, calls = charge_tool()
    runner = ToolRunner(loop=tool_loop)
    first = execute(Ledger(store), spec, runner)
    again = execute(Ledger(store), spec, runner)
    assert (first, again) == (
        LedgerResult({"charged": "o1", "n": 1}, replayed=False),
        LedgerResult({"charged": "o1", "n": 1}, replayed=True),
    )
    assert calls == [tool_loop.loop]
    record = store.get_effect(KEY)
    assert record is not None
    assert (record.status, record.attempts, record.result) == ("done", 1, {"charged": "o1", "n": 1})


def test_a_failure_is_recorded_and_raised_again_without_a_call(
    store: Store, tool_loop: LoopThread, execute: Execute
) -> None:
    spec, calls = charge_tool(fail=ToolError("card declined"))
    runner = ToolRunner(loop=tool_loop)
    with pytest.raises(ToolFailure) as first:
        execute(Ledger(store), spec, runner)
    with pytest.raises(RecordedFailure) as again:
        execute(Ledger(store), spec, runner)
    assert (str(first.value), first.value.kind) == ("card declined", "permanent")
    assert (str(again.value), again.value.kind) == ("card declined", "permanent")
    assert len(calls) == 1


def test_a_started_non_idempotent_key_is_in_doubt_and_nothing_is_called(
    store: Store, execute: Execute
) -> None:
    spec, calls = charge_tool()
    store.start_effect(
        key=KEY, thread_id="t1", step_id="1.0", tool="charge", args_digest="d", seen=0
    )
    with pytest.raises(EffectInDoubt) as info:
        execute(Ledger(store), spec, ToolRunner())
    assert (info.value.key, info.value.attempt, calls) == (KEY, 1, [])
    record = store.get_effect(KEY)
    assert record is not None
    assert record.status == "started"


def test_a_started_idempotent_key_is_called_again_until_the_crash_limit(
    store: Store, execute: Execute
) -> None:
    spec, calls = charge_tool(idempotent=True)
    store.start_effect(
        key=KEY, thread_id="t1", step_id="1.0", tool="charge", args_digest="d", seen=0
    )
    assert not execute(Ledger(store), spec, ToolRunner()).replayed
    record = store.get_effect(KEY)
    assert record is not None
    assert (record.status, record.attempts, len(calls)) == ("done", 2, 1)


def test_a_timed_out_non_idempotent_call_is_cancelled_and_left_in_doubt(
    store: Store, tool_loop: LoopThread, execute: Execute
) -> None:
    cancelled = threading.Event()

    @tool(name="charge", effect="write", timeout=0.05)
    async def charge(order_id: str) -> str:
        """Charge an order, slowly."""
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return order_id

    with pytest.raises(EffectInDoubt) as info:
        execute(Ledger(store), charge, ToolRunner(loop=tool_loop))
    assert "did not finish within its timeout of 0.05s" in str(info.value)
    assert cancelled.is_set()
    record = store.get_effect(KEY)
    assert record is not None
    assert (record.status, record.error_kind) == ("started", "timeout")


def test_transient_failures_are_retried_with_the_injected_waits(
    store: Store, execute: Execute
) -> None:
    failures = [ToolError("busy", kind="transient")] * 2
    waits: list[float] = []

    @tool(name="charge", effect="write", retry=RetryPolicy(max_attempts=3, jitter=False))
    async def charge(order_id: str) -> str:
        """Charge an order."""
        if failures:
            raise failures.pop()
        return order_id

    result = execute(Ledger(store), charge, ToolRunner(sleep=waits.append))
    assert (result.result, result.retries, waits) == ("o1", 2, [0.5, 1.0])


def test_the_async_path_keeps_store_calls_off_the_callers_loop(
    store: Store, tool_loop: LoopThread
) -> None:
    spec, calls = charge_tool()
    spy = Spy(store)
    ledger = Ledger(spy)  # type: ignore[arg-type]

    async def scenario() -> tuple[int, LedgerResult]:
        here = threading.get_ident()
        return here, await ledger.aexecute(spec, ARGS, CTX, ToolRunner(loop=tool_loop))

    caller_thread, result = asyncio.run(scenario())
    assert result.result == {"charged": "o1", "n": 1}
    assert [name for name, _ in spy.threads] == ["get_effect", "start_effect", "finish_effect"]
    assert caller_thread not in {thread for _, thread in spy.threads}
    assert calls == [tool_loop.loop]


def test_a_sync_tool_on_the_async_path_runs_in_a_worker_thread(store: Store) -> None:
    threads: list[int] = []

    @tool(name="charge", effect="write")
    def charge(order_id: str) -> str:
        """Charge an order."""
        threads.append(threading.get_ident())
        return order_id

    async def scenario() -> int:
        await Ledger(store).aexecute(charge, ARGS, CTX)
        return threading.get_ident()

    assert asyncio.run(scenario()) not in threads
    assert len(threads) == 1


def _execute_as(via: str, owner: str | None) -> Execute:
    if via == "execute":
        return lambda ledger, spec, runner: ledger.execute(spec, ARGS, CTX, runner, owner=owner)
    return lambda ledger, spec, runner: asyncio.run(
        ledger.aexecute(spec, ARGS, CTX, runner, owner=owner)
    )


@pytest.mark.parametrize("via", ["execute", "aexecute"])
def test_under_a_lease_another_holds_nothing_is_reserved_or_called(
    store: Store, tool_loop: LoopThread, via: str
) -> None:
    # A process paused past its lease wakes in its tool node after another took the run
    # over: the ledger reserves nothing for it, and the tool is not called.
    mine = LeaseOwner("a", host="here", pid=1)
    theirs = LeaseOwner("b", host="here", pid=2)
    acquire(store, "t1", theirs, 30.0, now=store.clock())
    spec, calls = charge_tool()
    runner = ToolRunner(loop=tool_loop)
    with pytest.raises(LeaseLost) as lost:
        _execute_as(via, mine.label)(Ledger(store), spec, runner)
    assert (lost.value.thread_id, lost.value.owner, calls) == ("t1", mine.label, [])
    assert store.get_effect(KEY) is None
    done = _execute_as(via, theirs.label)(Ledger(store), spec, runner)  # the holder's call
    assert (done.replayed, len(calls)) == (False, 1)


@pytest.mark.parametrize("via", ["execute", "aexecute"])
def test_a_key_done_between_the_read_and_the_reservation_is_not_called_again(
    store: Store, tool_loop: LoopThread, via: str
) -> None:
    # Read: nothing; then another call of the same step reserves, calls and records it
    # before this one reserves. The reservation is refused, and the record answers.
    spec, calls = charge_tool()
    runner = ToolRunner(loop=tool_loop)
    _execute_as(via, None)(Ledger(store), spec, runner)

    class ReadTooEarly(Spy):
        def get_effect(self, key: str) -> Any:
            self.threads.append(("get_effect", 0))
            return None if len(self.threads) == 1 else self.store.get_effect(key)

    again = _execute_as(via, None)(Ledger(ReadTooEarly(store)), spec, runner)
    assert (again.replayed, again.result, len(calls)) == (True, {"charged": "o1", "n": 1}, 1)
    record = store.get_effect(KEY)
    assert record is not None
    assert (record.status, record.attempts) == ("done", 1)
