"""An app whose model calls the same tool forever: only a budget stops it.

Every real execution of the tool is written to a separate file (``executions(db)``), so a
test counts executions across processes. With AGENTRT_TEST_BLOCK_AT_TURN=k the model
announces "BLOCKED turn k" on stdout when asked for turn k and then blocks on stdin, so a
test can SIGKILL the process there.

``build_timed_runtime`` is another app, for active time across processes: its clock is a
file beside the database, and its one tool spends a long spell of that clock.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from agentrt import AgentRuntime, Budget, Policy, ToolContext, tool
from agentrt.testing import ScriptedChatModel, ai, tool_call

MODEL = "test-model"
PRICE = (1.0, 2.0)
"""USD per million input and output tokens of MODEL."""
PING_COST = 0.01
TURNS = 200


def _counter(db: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(Path(db).with_name("executions.db"), isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS pings (n INTEGER PRIMARY KEY AUTOINCREMENT, turn INT)")
    return conn


def executions(db: str | Path) -> int:
    with _counter(db) as conn:
        count: int = conn.execute("SELECT count(*) FROM pings").fetchone()[0]
    return count


def again(messages: list[BaseMessage]) -> AIMessage:
    """Turn k of a model that never stops: ping once more."""
    turn = sum(isinstance(m, AIMessage) for m in messages)
    if os.environ.get("AGENTRT_TEST_BLOCK_AT_TURN") == str(turn):
        print(f"BLOCKED turn {turn}", flush=True)
        sys.stdin.readline()  # never answered: the test kills us here
    return ai("", tool_call("ping", {"turn": turn}))


def build_runtime(db: str | Path = "agentrt.db", **kwargs: Any) -> AgentRuntime:
    @tool(effect="read", cost_usd=PING_COST)
    def ping(turn: int) -> dict[str, Any]:
        """Ping once; the answer asks for another ping."""
        with _counter(db) as conn:
            conn.execute("INSERT INTO pings (turn) VALUES (?)", (turn,))
        return {"pong": turn}

    kwargs.setdefault("budget", Budget(max_tool_calls=1000))
    kwargs.setdefault("prices", {MODEL: PRICE})
    return AgentRuntime(
        ScriptedChatModel([again] * TURNS, model_name=MODEL, max_tokens=256),
        tools=[ping],
        policy=Policy.allow_all(),
        db=db,
        **kwargs,
    )


CLOCK_START = 1_800_000_000.0
SPELL = 100.0
"""Seconds of the app's clock its tool spends the first time it is called."""


def clock_file(db: str | Path) -> Path:
    """The timed app's clock: epoch seconds, as text, shared by its processes."""
    return Path(db).with_name("clock.txt")


def build_timed_runtime(db: str | Path, **kwargs: Any) -> AgentRuntime:
    """An app whose clock is a file (``clock_file``) and whose one tool, crunch, spends
    SPELL seconds of it the first time it is called (each execution counted, as ping's).

    With AGENTRT_TEST_BLOCK_IN_SPELL set, crunch then has the run's lease renewed, as the
    lease keeper does every ttl / 3 (here at once, not after a wait), announces "BLOCKED
    spell" on stdout and blocks on stdin, so a test can SIGKILL the process inside the
    tool node with the spell spent."""
    clock_path = clock_file(db)
    if not clock_path.exists():
        clock_path.write_text(repr(CLOCK_START))

    def clock() -> float:
        return float(clock_path.read_text())

    app: list[AgentRuntime] = []

    @tool(effect="write", idempotent=True)
    def crunch(job: str, ctx: ToolContext) -> dict[str, Any]:
        """Crunch a job: a long spell the first time."""
        with _counter(db) as conn:
            conn.execute("INSERT INTO pings (turn) VALUES (0)")
        if executions(db) == 1:
            clock_path.write_text(repr(clock() + SPELL))
            if os.environ.get("AGENTRT_TEST_BLOCK_IN_SPELL"):
                driver = app[0]._driver
                driver.held_leases[ctx.thread_id].due = 0.0  # type: ignore[attr-defined]
                driver.leases.renew_due()
                print("BLOCKED spell", flush=True)
                sys.stdin.readline()  # never answered: the test kills us here
        return {"job": job}

    rt = AgentRuntime(
        ScriptedChatModel([ai("", tool_call("crunch", {"job": "j1"})), "crunched"]),
        tools=[crunch],
        policy=Policy.allow_all(),
        db=db,
        clock=clock,
        **kwargs,
    )
    app.append(rt)
    return rt
