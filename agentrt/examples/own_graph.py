"""agentrt inside your own LangGraph graph: a model node and agentrt's governed tool node.

The graph is yours: its state, its model node, its checkpointer. ``rt.tool_node()`` takes
the place of LangGraph's ``ToolNode``, and every tool call then passes the refund desk's
policy, waits for a refund approver where a rule says so (a row in agentrt's review queue),
counts against the thread's budget and runs through the exactly-once ledger, traced.

Run it offline (a scripted model): ``python -m agentrt.examples.own_graph``.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import tools_condition

from agentrt import AgentRuntime, Decision, Policy, ToolContext, tool
from agentrt.examples.refund_desk import APPROVER, OPERATOR
from agentrt.testing import ScriptedChatModel, ai, tool_call

__all__ = [
    "POLICY",
    "State",
    "build_graph",
    "build_runtime",
    "main",
    "refund_tools",
    "scripted_model",
]

POLICY = """
version: 1
name: refunds-in-my-graph
default: deny
rules:
  - id: reads
    match: {effects: [read]}
    decision: allow
    reason: Looking things up has no side effect.
  - id: not-positive
    match: {tools: [issue_refund]}
    when: "!(args.amount > 0.0)"
    decision: deny
    reason: A refund is an amount above zero.
  - id: small-refunds
    match: {tools: [issue_refund]}
    when: args.amount <= 50.0
    decision: allow
    reason: Refunds up to $50 need no approval.
  - id: large-refunds
    match: {tools: [issue_refund]}
    when: args.amount > 50.0
    decision: require_approval
    approval: {role: refund-approver, four_eyes: true, expires_in: 3d}
    reason: Refunds over $50 need a refund approver.
"""
"""The refund desk's rules for the two tools (refunds over $50 wait for a refund approver)."""


class State(TypedDict):
    """The app's own state: a conversation."""

    messages: Annotated[list[AnyMessage], add_messages]


def refund_tools(payments: Path) -> list[Any]:
    """lookup_order (a read) and issue_refund (idempotent: the payment system keys each
    refund by the idempotency key agentrt hands it)."""

    @tool(effect="read", scopes=["orders:read"])
    def lookup_order(order_id: str) -> dict[str, Any]:
        """Look up an order.

        Args:
            order_id: The order's number.
        """
        return {"order_id": order_id, "total": 89.0, "status": "delivered"}

    @tool(effect="irreversible", scopes=["payments:write"], idempotent=True)
    def issue_refund(order_id: str, amount: float, ctx: ToolContext) -> dict[str, Any]:
        """Refund an order.

        Args:
            order_id: The order's number.
            amount: How much to refund, in USD.
        """
        with sqlite3.connect(payments) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS refunds (key TEXT PRIMARY KEY, order_id, amount)"
            )
            db.execute(
                "INSERT OR IGNORE INTO refunds VALUES (?, ?, ?)",
                (ctx.idempotency_key, order_id, amount),
            )
        return {"order_id": order_id, "refunded": amount}

    return [lookup_order, issue_refund]


def scripted_model() -> ScriptedChatModel:
    """Looks the order up, refunds it, says so."""
    return ScriptedChatModel(
        [
            ai("", tool_call("lookup_order", {"order_id": "42"})),
            ai("", tool_call("issue_refund", {"order_id": "42", "amount": 89.0})),
            "Order 42 is refunded.",
        ]
    )


def build_runtime(db: str | Path, model: BaseChatModel | None = None) -> AgentRuntime:
    """The runtime whose tools, policy and database the graph's tool node uses."""
    payments = Path(db).with_name(Path(db).stem + ".payments.db")
    return AgentRuntime(
        model or scripted_model(),
        tools=refund_tools(payments),
        policy=Policy.from_yaml(POLICY, source=__name__),
        db=db,
    )


def build_graph(
    rt: AgentRuntime, model: BaseChatModel, checkpointer: Any
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The app's graph: model -> tools -> model, with agentrt's tool node."""
    tools = rt.tool_node()
    bound = model.bind_tools(list(tools.tools_by_name.values()))

    def call_model(state: State) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    graph = StateGraph(State)
    graph.add_node("model", call_model)
    graph.add_node("tools", tools)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=checkpointer)


def main(workdir: Path) -> str:
    """Refund order 42 through the app's graph, approved by a refund approver."""
    model = scripted_model()
    with (
        build_runtime(workdir / "agentrt.db", model) as rt,
        SqliteSaver.from_conn_string(str(workdir / "checkpoints.db")) as saver,
    ):
        graph = build_graph(rt, model, saver)
        rt.attach(graph)  # rt.decide resumes the graph
        config = rt.thread(principal=OPERATOR, thread_id="refund-42")
        graph.invoke({"messages": [HumanMessage("Refund order 42")]}, config)
        (request,) = rt.approvals(tenant="acme")
        print(f"waiting: {request.tool} {request.args} for a {request.required_role}")
        run = rt.decide(Decision.approve(request.id, by=APPROVER))
        answer = graph.get_state(config).values["messages"][-1].content
        print(f"{run.status.value}: {answer}")
        # Without rt.attach, the app resumes the graph itself, and may hand the decision
        # in: graph.invoke(Command(resume=Decision.approve(...)), config).
        return str(answer)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tmp))
