"""Concurrency benchmark: many async runs at once, each waiting on a slow model.

RUNS runs started together with ``asyncio.gather``, each of ACTIONS actions (a model turn
calling the no-op tool) and a final answer, every model call taking LATENCY seconds. agentrt
runs them with ``rt.astart`` on one runtime; the anchor is a bare LangGraph graph doing
the same nodes (model, policy, tool, verify per action; model, finish at the end), each a
superstep (agentrt runs policy and verify in the superstep before them), on
one AsyncSqliteSaver, with ``ainvoke`` and ``durability="sync"``. The figure is runs
completed per second of wall time.

The model is ``ScriptedChatModel(latency=...)``: it awaits ``asyncio.sleep`` when called
asynchronously and blocks its thread with ``time.sleep`` when called synchronously, as an
HTTP client would: so a runtime that calls its model from a worker thread pays for it in
threads, as it would in production.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from agents import (
    GOAL,
    PRINCIPAL,
    agent_loop,
    agentrt_runtime,
    config,
    script,
    start_messages,
)
from harness import QUICK, Complaints, Report, Row, paired
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from agentrt.store.sqlite.database import BUSY_TIMEOUT_MS
from agentrt.testing import ScriptedChatModel

__all__ = ["main"]

RUNS = 10 if QUICK else 500
ACTIONS = 2 if QUICK else 5
LATENCY = 0.002 if QUICK else 0.05
REPEATS = 1 if QUICK else 2
"""Pairs of samples; each is a minute or two on two shared cores, and make bench has ten."""


def _model() -> ScriptedChatModel:
    return ScriptedChatModel(script(ACTIONS), latency=LATENCY)


COMPLAINTS = Complaints()
SPANS = {"lost": 0, "held": 0}
"""Over agentrt's samples: span batches its store lost, and those a busy database made it
hold for a later write."""


async def _agentrt(db: Path) -> float:
    rt = agentrt_runtime(_model(), db, ACTIONS)
    try:
        started = time.perf_counter()
        runs = await asyncio.gather(
            *(rt.astart(GOAL, principal=PRINCIPAL, thread_id=f"t{i}") for i in range(RUNS))
        )
        seconds = time.perf_counter() - started
    finally:
        rt.close()
        exporter = rt._tracing_setup.exporter
        SPANS["lost"] += rt.export_failures
        SPANS["held"] += exporter.held if exporter is not None else 0
    bad = [r for r in runs if r.status != "succeeded" or r.usage["tool_calls"] != ACTIONS]
    if bad:
        raise RuntimeError(f"{len(bad)} agentrt runs failed, e.g. {bad[0].status}: {bad[0].error}")
    return RUNS / seconds


async def _bare(db: Path) -> float:
    import aiosqlite

    async with aiosqlite.connect(db, timeout=BUSY_TIMEOUT_MS / 1000) as conn:
        # The pragmas agentrt's async connection uses.
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA synchronous=NORMAL")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        graph = agent_loop(_model(), saver, same_shape=True)
        started = time.perf_counter()
        finals = await asyncio.gather(
            *(
                graph.ainvoke(start_messages(), config(f"t{i}"), durability="sync")
                for i in range(RUNS)
            )
        )
        seconds = time.perf_counter() - started
    short = [f for f in finals if len(f["messages"]) != 2 + 2 * ACTIONS + 1]
    if short:
        raise RuntimeError(f"{len(short)} bare runs ended early")
    return RUNS / seconds


def _run_quietly(coro: Coroutine[Any, Any, float]) -> float:
    with COMPLAINTS.counting():
        return asyncio.run(coro)


def main() -> Report:
    """Run the concurrency benchmark and return its row."""
    with tempfile.TemporaryDirectory(prefix="agentrt-bench-") as tmp:
        counter = [0]

        def db() -> Path:
            counter[0] += 1
            return Path(tmp, f"c{counter[0]}.db")

        a, b = paired(
            lambda: _run_quietly(_agentrt(db())),
            lambda: asyncio.run(_bare(db())),
            REPEATS,
            warmup=0,
        )
    row = Row.of(
        "concurrency",
        f"runs/s, {RUNS} concurrent async runs of {ACTIONS} actions, "
        f"{LATENCY * 1000:.0f} ms model latency",
        a,
        "bare LangGraph, same nodes, AsyncSqliteSaver",
        b,
        better="higher",
    )
    floor = RUNS / ((ACTIONS + 1) * LATENCY)
    notes = (
        f"If every run waited only on its {ACTIONS + 1} model calls, all {RUNS} would end "
        f"in {(ACTIONS + 1) * LATENCY:.2f} s: {floor:,.0f} runs/s is the ceiling for both. "
        "Both await the model on the event loop. agentrt's other nodes are synchronous, so "
        "LangGraph runs them in the loop's default thread pool (min(32, cpus + 4) threads), "
        "and agentrt writes each checkpoint, statements and commit, in one call on a "
        "worker thread of its own; the anchor's nodes are coroutines and its "
        "AsyncSqliteSaver commits in a second await, holding SQLite's write lock until the "
        "loop comes back to it."
    )
    notes += (
        f" Span batches the span store lost over agentrt's {REPEATS} samples: "
        f"{SPANS['lost']}; held while the database was busy and written with a later batch: "
        f"{SPANS['held']}."
    )
    print(f"  span batches lost: {SPANS['lost']}, held and written later: {SPANS['held']}")
    if COMPLAINTS.counts:
        said = COMPLAINTS.said()
        notes += (
            f" agentrt logged, over its {REPEATS} samples: {said}. Its span store and "
            "lease heartbeat write through connections of their own, which wait for "
            "SQLite's write lock behind the checkpoint writes of all the runs in flight."
        )
        print(f"  agentrt logged: {said}", flush=True)
    return Report(rows=[row], notes=notes)


if __name__ == "__main__":
    main()
