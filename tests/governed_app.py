"""Apps with their own graphs governed by agentrt: a hand-written StateGraph with
rt.tool_node() ("graph") and a create_agent agent with rt.middleware() ("agent"), on the
examples' tools and policy, each with its own checkpointer (a SQLite file of the app's).

Run as a process: ``python -m tests.governed_app start KIND DIR SCRIPT`` opens thread "t1"
and invokes the app until it stops; ``decide KIND DIR APPROVAL_ID [--attach]`` approves a
request as the refund approver, from another process, resuming the app's graph there when
attached. With AGENTRT_TEST_HANG=1 a refund records its call and then blocks, for a SIGKILL.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from agentrt import AgentRuntime, Budget, Decision, Policy, ToolContext, tool
from agentrt.examples.create_agent import build_agent
from agentrt.examples.own_graph import POLICY, build_graph
from agentrt.examples.refund_desk import APPROVER, OPERATOR
from agentrt.testing import ScriptedChatModel, ai, tool_call

KINDS = ("graph", "agent")
THREAD = "t1"

SCRIPTS: dict[str, list[Any]] = {
    # a refund over $50: the gate
    "large": [
        ai("", tool_call("lookup_order", {"order_id": "42"})),
        ai("", tool_call("issue_refund", {"order_id": "42", "amount": 89.0})),
        "Order 42 is refunded.",
    ],
    # a refund under $50: runs at once
    "small": [
        ai("", tool_call("issue_refund", {"order_id": "43", "amount": 24.5})),
        "Order 43 is refunded.",
    ],
    # a refund the policy denies
    "negative": [
        ai("", tool_call("issue_refund", {"order_id": "42", "amount": -5.0})),
        "I could not refund a negative amount.",
    ],
    # a read and a gated refund in one message
    "read_and_refund": [
        ai(
            "",
            tool_call("lookup_order", {"order_id": "42"}),
            tool_call("issue_refund", {"order_id": "42", "amount": 89.0}),
        ),
        "Order 42 is refunded.",
    ],
    # two tool calls, then an answer
    "two_calls": [
        ai("", tool_call("lookup_order", {"order_id": "42"})),
        ai("", tool_call("issue_refund", {"order_id": "43", "amount": 24.5})),
        "Done.",
    ],
}


def calls_path(workdir: Path) -> Path:
    return workdir / "calls.txt"


def calls(workdir: Path) -> list[str]:
    path = calls_path(workdir)
    return path.read_text().splitlines() if path.exists() else []


def lookups(workdir: Path) -> list[str]:
    path = workdir / "lookups.txt"
    return path.read_text().splitlines() if path.exists() else []


def refunds(workdir: Path) -> list[tuple[str, str, float]]:
    path = workdir / "payments.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return list(db.execute("SELECT key, order_id, amount FROM refunds ORDER BY order_id"))


def tools(workdir: Path) -> list[Any]:
    @tool(effect="read", scopes=["orders:read"])
    def lookup_order(order_id: str) -> dict[str, Any]:
        """Look up an order.

        Args:
            order_id: The order's number.
        """
        with (workdir / "lookups.txt").open("a") as f:  # every call
            f.write(f"{order_id}\n")
        return {"order_id": order_id, "total": 89.0}

    # AGENTRT_TEST_NOT_IDEMPOTENT=1: a payment system that takes no idempotency key, so a
    # call cut off mid-effect is in doubt and goes to a person.
    idempotent = os.environ.get("AGENTRT_TEST_NOT_IDEMPOTENT") != "1"

    @tool(effect="irreversible", scopes=["payments:write"], idempotent=idempotent)
    def issue_refund(order_id: str, amount: float, ctx: ToolContext) -> dict[str, Any]:
        """Refund an order.

        Args:
            order_id: The order's number.
            amount: How much, in USD.
        """
        with calls_path(workdir).open("a") as f:  # every call, before its effect
            f.write(f"{ctx.idempotency_key}\n")
        if os.environ.get("AGENTRT_TEST_HANG") == "1":
            print("effect started", flush=True)  # the test reads this, then SIGKILLs
            threading.Event().wait()  # mid-effect, until the test SIGKILLs this process
        with sqlite3.connect(workdir / "payments.db") as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS refunds (key TEXT PRIMARY KEY, order_id, amount)"
            )
            db.execute(
                "INSERT OR IGNORE INTO refunds VALUES (?, ?, ?)",
                (ctx.idempotency_key, order_id, amount),
            )
        return {"order_id": order_id, "refunded": amount}

    return [lookup_order, issue_refund]


@contextmanager
def app(
    kind: str, workdir: Path, script: str = "large", *, in_memory: bool = False
) -> Iterator[tuple[AgentRuntime, Any]]:
    """The runtime (agentrt.db) and the app's compiled graph (checkpoints.db, or in memory
    for async graphs: SqliteSaver is sync only) of ``kind``."""
    model = ScriptedChatModel(SCRIPTS[script])
    rt = AgentRuntime(
        model,
        tools=tools(workdir),
        policy=Policy.from_yaml(POLICY),
        db=workdir / "agentrt.db",
    )
    with rt, SqliteSaver.from_conn_string(str(workdir / "checkpoints.db")) as on_disk:
        saver = InMemorySaver() if in_memory else on_disk
        graph = build_graph(rt, model, saver) if kind == "graph" else build_agent(rt, model, saver)
        yield rt, graph


def start(rt: AgentRuntime, graph: Any, budget: Budget | None = None) -> dict[str, Any]:
    """Open thread t1 for the operator and invoke the app's graph until it stops."""
    config = rt.thread(principal=OPERATOR, thread_id=THREAD, budget=budget, goal="Refund")
    # Each step's checkpoint written before the next starts: the crash tests kill the
    # process mid-effect and expect to resume from the step that called the tool.
    graph.invoke({"messages": [HumanMessage("Refund the order")]}, config, durability="sync")
    return config


def main(argv: list[str]) -> None:
    command, kind, workdir = argv[0], argv[1], Path(argv[2])
    if command == "start":
        with app(kind, workdir, argv[3]) as (rt, graph):
            start(rt, graph)
    elif command == "decide":
        with app(kind, workdir) as (rt, graph):
            if "--attach" in argv:
                rt.attach(graph)
            run = rt.decide(Decision.approve(argv[3], by=APPROVER, reason="checked"))
            print(run.status.value)
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
