"""An app whose model calls the same tool forever: only a budget stops it.

Every real execution of the tool is written to a separate file (``executions(db)``), so a
test counts executions across processes. With AGENTRT_TEST_BLOCK_AT_TURN=k the model
announces "BLOCKED turn k" on stdout when asked for turn k and then blocks on stdin, so a
test can SIGKILL the process there.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from agentrt import AgentRuntime, Budget, Policy, tool
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
