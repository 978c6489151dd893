"""The agents the benchmarks drive: agentrt's, and the bare LangGraph ones they compare with.

Both sides get the same scripted model (``ScriptedChatModel``: n turns that each call the
no-op tool once, then a final answer), the same no-op tool, the same conversation (system
instructions plus the goal), and the same SQLite pragmas, so what differs is the machinery.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool as lc_tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from agentrt import AgentRuntime, Budget, Policy, Principal, tool
from agentrt.graphs import DEFAULT_INSTRUCTIONS
from agentrt.store.sqlite.database import connect
from agentrt.testing import ai, tool_call

__all__ = [
    "GOAL",
    "PRINCIPAL",
    "MessagesState",
    "agent_loop",
    "agentrt_runtime",
    "close_saver",
    "config",
    "noop",
    "noop_lc",
    "script",
    "sqlite_saver",
    "start_messages",
    "timed_start",
]

GOAL = "call the no-op tool until told to stop"
PRINCIPAL = Principal("bench")
# LangGraph counts supersteps against the recursion limit; long runs need headroom.
RECURSION_LIMIT = 1_000_000


@tool(effect="read")
def noop(i: int) -> dict[str, Any]:
    """Return a small fixed-shape result; the benchmarks measure the runtime, not tools.

    Args:
        i: The step number, echoed back so each observation differs as in a real run.
    """
    return {"i": i, "ok": True}


@lc_tool
def noop_lc(i: int) -> dict[str, Any]:
    """Return a small fixed-shape result; the benchmarks measure the runtime, not tools.

    Args:
        i: The step number, echoed back so each observation differs as in a real run.
    """
    return {"i": i, "ok": True}


# Both sides must call the tool by the same name.
noop_lc.name = "noop"


def script(actions: int) -> list[Any]:
    """``actions`` turns calling the no-op tool once each, then a final answer."""
    return [*(ai("", tool_call("noop", {"i": k})) for k in range(actions)), "done"]


def agentrt_runtime(model: BaseChatModel, db: Path | str, actions: int) -> AgentRuntime:
    """agentrt with the no-op tool, a policy that allows it, and room for ``actions``."""
    return AgentRuntime(
        model,
        tools=[noop],
        policy=Policy.allow_all(),
        db=db,
        budget=Budget(max_steps=actions + 1),
    )


def timed_start(rt: AgentRuntime, actions: int) -> float:
    """Seconds one ``rt.start`` takes; closes ``rt``; checks the run did all its actions."""
    try:
        started = time.perf_counter()
        run = rt.start(GOAL, principal=PRINCIPAL)
        seconds = time.perf_counter() - started
    finally:
        rt.close()
    if run.status != "succeeded" or run.usage["tool_calls"] != actions:
        raise RuntimeError(f"the agentrt run ended {run.status.value}: {run.error}")
    return seconds


def sqlite_saver(db: Path) -> Any:
    """LangGraph's SqliteSaver on a connection with agentrt's pragmas."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    saver = SqliteSaver(connect(db, autocommit=False))
    saver.setup()
    return saver


def close_saver(saver: Any) -> None:
    """Close the connection ``sqlite_saver`` opened."""
    conn: sqlite3.Connection = saver.conn
    conn.close()


class MessagesState(TypedDict):
    """The usual state of a LangGraph agent: the conversation, reduced by add_messages."""

    messages: Annotated[list[AnyMessage], add_messages]


def start_messages() -> dict[str, Any]:
    """The conversation agentrt's planner starts from, for the bare agent to start from."""
    return {"messages": [SystemMessage(DEFAULT_INSTRUCTIONS), HumanMessage(GOAL)]}


def agent_loop(
    model: BaseChatModel,
    checkpointer: BaseCheckpointSaver[Any] | None,
    *,
    same_shape: bool = False,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The hand-written minimal LangGraph agent: a model node and a ToolNode, in a loop.

    ``same_shape`` adds empty policy and verify nodes around the ToolNode and a finish
    node, so the graph runs the supersteps agentrt's does (plan, policy, tool, verify per
    action; plan, finish at the end). Nodes are async where they await, so the async
    anchor gets the concurrency LangGraph offers.
    """
    bound = model.bind_tools([noop_lc])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    async def aagent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    def empty(state: MessagesState) -> None:
        return None

    async def aempty(state: MessagesState) -> None:
        return None

    builder: StateGraph[Any, Any, Any, Any] = StateGraph(MessagesState)
    builder.add_node("agent", RunnableLambda(agent, afunc=aagent))
    builder.add_node("tools", ToolNode([noop_lc]))
    builder.add_edge(START, "agent")
    if not same_shape:
        builder.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
        builder.add_edge("tools", "agent")
        return builder.compile(checkpointer=checkpointer)
    for name in ("policy", "verify", "finish"):
        builder.add_node(name, RunnableLambda(empty, afunc=aempty, name=name))
    builder.add_conditional_edges("agent", tools_condition, {"tools": "policy", END: "finish"})
    builder.add_edge("policy", "tools")
    builder.add_edge("tools", "verify")
    builder.add_edge("verify", "agent")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer)


def config(thread_id: str) -> Any:
    """The run config for ``thread_id``, with room for long runs."""
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": RECURSION_LIMIT}
