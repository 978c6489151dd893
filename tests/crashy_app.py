"""An app for crash tests: three side effects into a separate "payment system" file.

With AGENTRT_TEST_BLOCK_AT=model|tool|verify, the process announces "BLOCKED <where>" on
stdout and then blocks on stdin, so the test can SIGKILL it at a known point inside a node.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from agentrt import AgentRuntime, Policy, ToolContext, tool
from agentrt.testing import ScriptedChatModel, ai, tool_call


def _block(where: str) -> None:
    if os.environ.get("AGENTRT_TEST_BLOCK_AT") == where:
        print(f"BLOCKED {where}", flush=True)
        sys.stdin.readline()  # never answered: the test kills us here


def sink_path(db: str | Path) -> Path:
    return Path(db).with_name("payments.db")


def _sink(db: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(sink_path(db), isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS charges (key TEXT PRIMARY KEY, who TEXT, cents INT)")
    conn.execute("CREATE TABLE IF NOT EXISTS calls (n INTEGER PRIMARY KEY, who TEXT)")
    return conn


def build_runtime(db: str | Path = "agentrt.db") -> AgentRuntime:
    def charged(args: dict[str, Any], result: Any) -> bool:
        _block("verify")
        return True

    @tool(effect="write", idempotent=True, verify=charged)
    def charge(who: str, cents: int, ctx: ToolContext) -> dict[str, Any]:
        """Charge a customer; the payment system dedupes on the idempotency key."""
        with _sink(db) as conn:
            conn.execute("INSERT INTO calls (who) VALUES (?)", (who,))
        _block("tool")
        with _sink(db) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO charges VALUES (?,?,?)", (ctx.idempotency_key, who, cents)
            )
        return {"charged": who, "cents": cents}

    def second_turn(messages: list[BaseMessage]) -> AIMessage:
        _block("model")
        return ai(
            "",
            tool_call("charge", {"who": "bo", "cents": 200}),
            tool_call("charge", {"who": "cy", "cents": 300}),
        )

    model = ScriptedChatModel(
        [ai("", tool_call("charge", {"who": "al", "cents": 100})), second_turn, "charged three"]
    )
    return AgentRuntime(model, tools=[charge], policy=Policy.allow_all(), db=db)
