"""Many runs driven at once on one runtime, from one event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from agentrt import AgentRuntime, Budget, Policy, Principal, RunStatus, tool
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import started_at_once


@tool(effect="read")
def echo(i: int) -> dict[str, Any]:
    """Echo the number back.

    Args:
        i: Any number.
    """
    return {"i": i}


def test_concurrent_astart_runs_all_finish(db: Path) -> None:
    # Runs on one loop share the file's write lock with the store's writes: none may wait
    # on the other past busy_timeout ("database is locked").
    script = [ai("", tool_call("echo", {"i": k})) for k in range(3)]
    model = ScriptedChatModel([*script, "done"])
    with AgentRuntime(
        model, tools=[echo], policy=Policy.allow_all(), db=db, budget=Budget(max_steps=5)
    ) as rt:
        runs = started_at_once(rt, "echo three numbers", 24)
        assert [(r.thread_id, r.status, r.output, r.usage["tool_calls"]) for r in runs] == [
            (f"t{i}", RunStatus.SUCCEEDED, "done", 3) for i in range(24)
        ]
        assert {r.status for r in rt.runs(limit=100)} == {RunStatus.SUCCEEDED}


_ASYNC_CALL: ContextVar[bool] = ContextVar("async_call", default=False)


class _AnswersWhenAllWait(ScriptedChatModel):
    """Answers a turn only once ``parties`` async calls wait for it at the same time; a
    synchronous call is an error, since it would hold a thread while the model thinks."""

    parties: int = 1
    _barrier: asyncio.Barrier | None = PrivateAttr(default=None)

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        if not _ASYNC_CALL.get():
            raise AssertionError("the async runtime asked the model synchronously")
        return super()._generate(*args, **kwargs)

    async def _agenerate(self, *args: Any, **kwargs: Any) -> Any:
        if self._barrier is None:
            self._barrier = asyncio.Barrier(self.parties)
        async with asyncio.timeout(30):
            await self._barrier.wait()
        _ASYNC_CALL.set(True)
        return await super()._agenerate(*args, **kwargs)


def test_async_runs_waiting_on_their_model_hold_no_thread(db: Path) -> None:
    runs = 8
    model = _AnswersWhenAllWait([ai("", tool_call("echo", {"i": 1})), "done"], parties=runs)
    with AgentRuntime(model, tools=[echo], policy=Policy.allow_all(), db=db) as rt:

        async def drive() -> list[Any]:
            # Two threads for the other nodes; eight runs inside the model at once.
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(2))
            return await asyncio.gather(
                *(rt.astart("echo", principal=Principal("p")) for _ in range(runs))
            )

        finished = asyncio.run(drive())
    assert [(r.status, r.output) for r in finished] == [(RunStatus.SUCCEEDED, "done")] * runs
