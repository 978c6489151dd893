"""An app for the worker tests: runs of two effects, driven by `agentrt worker` processes.

A run's goal says what it does. "note N" makes N model turns, each calling ``note`` (an
idempotent write: the "system" dedupes on the idempotency key), then answers. "pay C"
makes one turn calling ``pay`` with C cents, which needs a payer's approval above 100.

Every call of either tool is written to a sink, a SQLite file named by WORKER_APP_SINK
(beside a SQLite database when unset), with the pid of the process that made it: the
tests count effects (one row a key), calls (every attempt) and who made them.
WORKER_APP_LATENCY sets the model's seconds per answer; WORKER_APP_LEASE_TTL the lease;
WORKER_APP_OPEN_GATE a file the app waits for before it opens (a slow start).

``build_shredder`` is another app on the same database: its own tool (``shred``, its
calls in the same sink) and model, as a second team's agent or a version that changed.
``build_next_version`` is this app's next version, with one more tool (``archive``).
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from agentrt import AgentRuntime, Policy, Principal, ToolContext, tool
from agentrt.testing import ScriptedChatModel, ai, tool_call

OPS = Principal("olga", roles=["operator"], tenant="acme")
PAYER = Principal("bob", roles=["payer"], tenant="acme")
STRANGER = Principal("eve", roles=["operator", "payer"], tenant="globex")

POLICY = """
version: 1
name: workers
default: allow
rules:
  - id: large-payments
    match: {tools: [pay]}
    when: args.cents > 100
    decision: require_approval
    approval: {role: payer}
"""


def sink_path(db: str | Path) -> Path:
    given = os.environ.get("WORKER_APP_SINK")
    return Path(given) if given else Path(db).with_name("sink.db")


def connect_sink(db: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(sink_path(db), isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, thread TEXT, what TEXT)"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS calls "
        "(n INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, thread TEXT, what TEXT, pid INTEGER)"
    )
    return conn


def _effect(db: str | Path, ctx: ToolContext, what: str) -> None:
    with connect_sink(db) as conn:
        conn.execute(
            "INSERT INTO calls (key, thread, what, pid) VALUES (?,?,?,?)",
            (ctx.idempotency_key, ctx.thread_id, what, os.getpid()),
        )
        conn.execute(
            "INSERT OR IGNORE INTO effects VALUES (?,?,?)",
            (ctx.idempotency_key, ctx.thread_id, what),
        )


def _goal(messages: list[BaseMessage]) -> str:
    return next(str(m.content) for m in messages if isinstance(m, HumanMessage))


def _turn(messages: list[BaseMessage]) -> AIMessage | str:
    """The next answer, from the goal and how many turns came before."""
    goal = _goal(messages)
    done = sum(isinstance(m, AIMessage) for m in messages)
    if paying := re.fullmatch(r"pay (\d+)", goal):
        return ai("", tool_call("pay", {"cents": int(paying[1])})) if done == 0 else "paid"
    notes = int(re.fullmatch(r"note (\d+)", goal)[1])  # type: ignore[index]
    return ai("", tool_call("note", {"step": done + 1})) if done < notes else "noted"


def build_runtime(
    db: str | Path = "agentrt.db", *, more_tools: Sequence[Any] = (), **options: Any
) -> AgentRuntime:
    @tool(effect="write", idempotent=True)
    def note(step: int, ctx: ToolContext) -> dict[str, Any]:
        """Note a step; the system dedupes on the idempotency key."""
        _effect(db, ctx, f"note {step}")
        return {"noted": step}

    @tool(effect="write", idempotent=True)
    def pay(cents: int, ctx: ToolContext) -> dict[str, Any]:
        """Pay; the payment system dedupes on the idempotency key."""
        _effect(db, ctx, f"pay {cents}")
        return {"paid": cents}

    opening = os.environ.get("WORKER_APP_OPEN_GATE")
    if opening:  # a slow start: say so, then wait until the test lets the app open
        Path(opening + ".waiting").touch()
        while not Path(opening).exists():
            time.sleep(0.02)
    latency = float(os.environ.get("WORKER_APP_LATENCY", "0"))
    model = ScriptedChatModel([_turn] * 12, latency=latency)
    options.setdefault("lease_ttl", float(os.environ.get("WORKER_APP_LEASE_TTL", "30")))
    return AgentRuntime(
        model, tools=[note, pay, *more_tools], policy=Policy.from_yaml(POLICY), db=db, **options
    )


def build_next_version(db: str | Path = "agentrt.db", **options: Any) -> AgentRuntime:
    """This app as its next version deploys it: one more tool, all else the same."""

    @tool(effect="write", idempotent=True)
    def archive(doc: str, ctx: ToolContext) -> dict[str, str]:
        """Archive a document."""
        _effect(db, ctx, f"archive {doc}")
        return {"archived": doc}

    return build_runtime(db, more_tools=[archive], **options)


def build_shredder(db: str | Path = "agentrt.db", **options: Any) -> AgentRuntime:
    @tool(effect="write", idempotent=True)
    def shred(doc: str, ctx: ToolContext) -> dict[str, str]:
        """Shred a document."""
        _effect(db, ctx, f"shred {doc}")
        return {"shredded": doc}

    model = ScriptedChatModel([ai("", tool_call("shred", {"doc": "all"})), "shredded"] * 6)
    return AgentRuntime(model, tools=[shred], policy=Policy.allow_all(), db=db, **options)
