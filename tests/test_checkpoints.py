"""The checkpoint saver async runs use: whole transactions off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import wait
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import empty_checkpoint

from agentrt import AgentRuntime, Policy, Principal, RunStatus
from agentrt.store.sqlite.checkpoints import Checkpoints
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.test_concurrency import echo


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def test_an_async_checkpoint_write_commits_while_the_event_loop_is_blocked(db: Path) -> None:
    # The starvation this saver exists for: a write whose commit waits for the event loop
    # holds SQLite's write lock for as long as the loop is busy, and every other
    # connection to the file (spans, lease heartbeats, the store) waits behind it.
    saver = Checkpoints(db)
    saver.setup()
    observer = sqlite3.connect(db, timeout=0)

    async def drive() -> int:
        write = asyncio.ensure_future(saver.aput(_config("t1"), empty_checkpoint(), {}, {}))
        await asyncio.sleep(0)  # the write is handed to the saver's worker
        # Block the loop until the worker has done everything asked of it so far.
        wait([saver._worker.submit(int)], timeout=30)
        observer.execute("BEGIN IMMEDIATE")  # the write lock is free: nothing half-done
        (rows,) = observer.execute("SELECT count(*) FROM checkpoints").fetchone()
        observer.execute("ROLLBACK")
        await write
        return int(rows)

    try:
        assert asyncio.run(drive()) == 1
    finally:
        observer.close()
        saver.close()


def test_async_reads_and_deletes_match_the_sync_ones(db: Path) -> None:
    model = ScriptedChatModel([ai("", tool_call("echo", {"i": 1})), "done"])
    with AgentRuntime(model, tools=[echo], policy=Policy.allow_all(), db=db) as rt:
        run = asyncio.run(rt.astart("echo", principal=Principal("p"), thread_id="t1"))
    assert run.status is RunStatus.SUCCEEDED

    saver = Checkpoints(db)
    config = _config("t1")

    async def read() -> tuple[Any, list[Any], list[Any], Any]:
        latest = await saver.aget_tuple(config)
        every = [c async for c in saver.alist(config)]
        two = [c async for c in saver.alist(config, limit=2)]
        events = await saver.aget_delta_channel_history(config=config, channels=["events"])
        return latest, every, two, events

    try:
        latest, every, two, events = asyncio.run(read())
        assert latest == saver.get_tuple(config)
        assert every == list(saver.list(config))
        assert len(every) > 2
        assert two == every[:2]
        assert events == saver.get_delta_channel_history(config=config, channels=["events"])
        written = [e["type"] for _, _, batch in events["events"]["writes"] for e in batch]
        assert "plan" in written

        asyncio.run(saver.adelete_thread("t1"))
        assert saver.get_tuple(config) is None
    finally:
        saver.close()


def test_a_closed_saver_finishes_the_writes_asked_for(db: Path) -> None:
    saver = Checkpoints(db)
    saver.setup()

    async def write_then_close() -> None:
        write = asyncio.ensure_future(saver.aput(_config("t1"), empty_checkpoint(), {}, {}))
        await asyncio.sleep(0)
        saver.close()
        await write

    asyncio.run(write_then_close())
    reader = Checkpoints(db)
    try:
        assert reader.get_tuple(_config("t1")) is not None
    finally:
        reader.close()
