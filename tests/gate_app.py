"""An app for human-gate tests: one plan step with three payments, two of which need a person.

The "payment system" is a SQLite file beside the runtime's database, keyed by the
idempotency key. GATE_APP_NOW (epoch seconds) fixes the runtime's clock, so a process
started by a test can act "days later".
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from agentrt import AgentRuntime, Policy, Principal, ToolContext, ToolSpec, tool
from agentrt.testing import ScriptedChatModel, ai, tool_call

GOAL = "Pay al, bo and cy what we owe them."
T0 = 1_800_000_000.0
OPS = Principal("olga", roles=["operator"], tenant="acme", scopes=["pay"])
PAYER = Principal("bob", roles=["payer"], tenant="acme")
TREASURER = Principal("tess", roles=["treasurer"], tenant="acme")

POLICY = """
version: 1
name: payouts
default: deny
rules:
  - id: small-payments
    match: {tools: [pay]}
    when: args.cents <= 1000
    decision: allow
  - id: large-payments
    match: {tools: [pay]}
    when: args.cents > 1000
    decision: require_approval
    approval: {role: payer, four_eyes: true, expires_in: 7d, on_expiry: escalate,
               escalate_to: treasurer}
    reason: Payments over $10 need a payer.
"""


def sink_path(db: str | Path) -> Path:
    return Path(db).with_name("payouts.db")


def paid(db: str | Path) -> list[tuple[str, int]]:
    """Payments the payment system holds, by payee."""
    if not sink_path(db).exists():
        return []
    with sqlite3.connect(sink_path(db)) as conn:
        return conn.execute("SELECT who, cents FROM payments ORDER BY who").fetchall()


def tools(db: str | Path) -> list[ToolSpec]:
    """The tools, shared by every version of the app."""

    @tool(effect="write", scopes=["pay"], idempotent=True, sensitive=["card"])
    def pay(who: str, cents: int, card: str, ctx: ToolContext) -> dict[str, Any]:
        """Pay someone by card.

        Args:
            who: Payee.
            cents: Amount in cents.
            card: Card number to pay to.
        """
        with sqlite3.connect(sink_path(db), isolation_level=None) as conn:
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS payments (key TEXT PRIMARY KEY, who TEXT, cents INT)"
            )
            conn.execute(
                "INSERT OR IGNORE INTO payments VALUES (?,?,?)", (ctx.idempotency_key, who, cents)
            )
        return {"paid": who, "cents": cents}

    return [pay]


def report(prefix: str) -> Any:
    def closing(messages: list[BaseMessage]) -> AIMessage:
        results = [f"{m.name}:{m.status}" for m in messages if isinstance(m, ToolMessage)]
        return AIMessage(f"{prefix} {' '.join(results)}")

    return closing


def first_turn() -> AIMessage:
    return ai(
        "Paying all three.",
        tool_call("pay", {"who": "al", "cents": 5000, "card": "4111-1111"}),
        tool_call("pay", {"who": "bo", "cents": 200, "card": "4222-2222"}),
        tool_call("pay", {"who": "cy", "cents": 9000, "card": "4333-3333"}),
    )


def clock_from_env() -> Any:
    fixed = os.environ.get("GATE_APP_NOW")
    return (lambda: float(fixed)) if fixed else time.time


def make_runtime(db: str | Path, *, instructions: str, closing: str, **kwargs: Any) -> AgentRuntime:
    """The app as one version deploys it: these tools and policy, its own planner."""
    kwargs.setdefault("clock", clock_from_env())
    kwargs.setdefault("policy", Policy.from_yaml(POLICY))
    kwargs.setdefault("model", ScriptedChatModel([first_turn(), report(closing)]))
    return AgentRuntime(tools=tools(db), db=db, instructions=instructions, **kwargs)


def build_runtime(db: str | Path = "agentrt.db", **kwargs: Any) -> AgentRuntime:
    return make_runtime(db, instructions="You pay people. v1.", closing="v1 done:", **kwargs)
