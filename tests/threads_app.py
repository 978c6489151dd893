"""An app for the tests of threads that go on: each message says what its answer does.

The model answers the thread's latest message (the person's last turn), whatever came
before it, so any process that opens the database answers any message alike:

- "note N": N turns each calling ``note`` (an idempotent write), then "noted N".
- "pay C": one turn calling ``pay`` with C cents (over 100 needs a payer's approval),
  then "paid C".
- "hold": one turn calling ``hold``, then "held". In a process started with
  THREADS_APP_HOLD set, ``hold`` says ``HOLDING`` on stdout and waits for a line on stdin
  before it returns (a process the test keeps inside a tool); elsewhere it returns at once.
- "crash": one turn calling ``crunch``, an idempotent write whose first call kills its own
  process with SIGKILL (after it is written down), then "crunched".
- anything else: answered at once, "you said: <message>".

THREADS_APP_LEASE_TTL sets the lease (a process killed on PostgreSQL, where a dead pid
says nothing, is taken over once its lease expires).

Every call of a tool is written to a sink beside the database (``sink.db``), with the
thread, what was done, the idempotency key and the pid: the tests count effects (one a
key) and calls (THREADS_APP_SINK_DIR: where, for a database that is not a file).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import sys
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
name: threads
default: allow
rules:
  - id: large-payments
    match: {tools: [pay]}
    when: args.cents > 100
    decision: require_approval
    approval: {role: payer}
"""


def sink_path(db: str | Path) -> Path:
    """Beside a SQLite database; for PostgreSQL, in THREADS_APP_SINK_DIR."""
    given = os.environ.get("THREADS_APP_SINK_DIR")
    return Path(given) / "sink.db" if given else Path(db).with_name("sink.db")


def _sink(db: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(sink_path(db), isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS calls "
        "(n INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, thread TEXT, what TEXT, pid INTEGER)"
    )
    return conn


def _call(db: str | Path, ctx: ToolContext, what: str) -> int:
    """Write the call down; how many calls with its key there were before it."""
    with _sink(db) as conn:
        before = conn.execute(
            "SELECT count(*) FROM calls WHERE key=?", (ctx.idempotency_key,)
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO calls (key, thread, what, pid) VALUES (?,?,?,?)",
            (ctx.idempotency_key, ctx.thread_id, what, os.getpid()),
        )
    return int(before)


def calls(db: str | Path) -> list[tuple[str, str]]:
    """Every tool call, oldest first: (thread, what)."""
    if not sink_path(db).exists():
        return []
    with _sink(db) as conn:
        return conn.execute("SELECT thread, what FROM calls ORDER BY n").fetchall()


def effects(db: str | Path) -> list[str]:
    """What was done, once a key, oldest first."""
    if not sink_path(db).exists():
        return []
    with _sink(db) as conn:
        rows = conn.execute("SELECT what FROM calls GROUP BY key ORDER BY min(n)").fetchall()
    return [what for (what,) in rows]


def _latest(messages: list[BaseMessage]) -> tuple[str, int]:
    """The person's last turn, and how many answers the model gave since."""
    last = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    done = sum(isinstance(m, AIMessage) for m in messages[last + 1 :])
    return str(messages[last].content), done


def _turn(messages: list[BaseMessage]) -> AIMessage | str:
    said, done = _latest(messages)
    if noting := re.fullmatch(r"note (\d+)", said):
        n = int(noting[1])
        return ai("", tool_call("note", {"step": done + 1, "of": n})) if done < n else f"noted {n}"
    once = {"pay": "paid", "hold": "held", "crash": "crunched"}
    if paying := re.fullmatch(r"pay (\d+)", said):
        return ai("", tool_call("pay", {"cents": int(paying[1])})) if done == 0 else "paid"
    if said in once:
        tool_name = "crunch" if said == "crash" else said
        return ai("", tool_call(tool_name, {"job": said})) if done == 0 else once[said]
    return f"you said: {said}"


def build_runtime(db: str | Path = "agentrt.db", **options: Any) -> AgentRuntime:
    @tool(effect="write", idempotent=True)
    def note(step: int, of: int, ctx: ToolContext) -> dict[str, Any]:
        """Note a step; the system dedupes on the idempotency key."""
        _call(db, ctx, f"note {step}/{of}")
        return {"noted": step}

    @tool(effect="write", idempotent=True)
    def pay(cents: int, ctx: ToolContext) -> dict[str, Any]:
        """Pay; the payment system dedupes on the idempotency key."""
        _call(db, ctx, f"pay {cents}")
        return {"paid": cents}

    @tool(effect="read")
    def hold(job: str, ctx: ToolContext) -> dict[str, Any]:
        """Hold until the test says go on."""
        _call(db, ctx, "hold")
        if os.environ.get("THREADS_APP_HOLD"):
            print("HOLDING", flush=True)
            sys.stdin.readline()
        return {"held": job}

    @tool(effect="write", idempotent=True)
    def crunch(job: str, ctx: ToolContext) -> dict[str, Any]:
        """Crunch; the first call dies with its process, after it was written down."""
        if _call(db, ctx, "crunch") == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"crunched": job}

    model = ScriptedChatModel([_turn] * 100)
    options.setdefault("lease_ttl", float(os.environ.get("THREADS_APP_LEASE_TTL", "30")))
    return AgentRuntime(
        model, tools=[note, pay, hold, crunch], policy=Policy.from_yaml(POLICY), db=db, **options
    )
