"""A process the resume benchmark starts: it sets up a crashed run, or resumes one.

    python resume_child.py agentrt|langgraph setup DB   # run until the 2nd tool call, die
    python resume_child.py agentrt|langgraph resume DB  # resume; the first node run
                                                          # prints time.monotonic() and exits

In ``setup`` the no-op tool kills the process (os._exit) on its second call, after the
checkpoint that says the tool node is next. ``resume`` starts from there: the first node
it runs is that tool node, which reports the moment it started and exits at once, leaving
the file as it found it so the next resume starts from the same place.

CLOCK_MONOTONIC is system-wide on Linux, so the parent can subtract its own reading taken
just before it started this process.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

RESUMED = "resumed-at "
THREAD = "bench"
ACTIONS = 3


def _tool_body(mode: str, i: int) -> dict[str, Any]:
    if mode == "resume":
        print(f"{RESUMED}{time.monotonic()!r}", flush=True)
        os._exit(0)
    if i == 1:
        os._exit(3)  # die in the middle of the second action, as a crash would
    return {"i": i, "ok": True}


def agentrt_main(mode: str, db: Path) -> None:
    from agentrt import AgentRuntime, Budget, Policy, Principal, tool
    from agentrt.testing import ScriptedChatModel, ai, tool_call

    @tool(effect="read")
    def noop(i: int) -> dict[str, Any]:
        """Return a small fixed result.

        Args:
            i: The step number.
        """
        return _tool_body(mode, i)

    script = [*(ai("", tool_call("noop", {"i": k})) for k in range(ACTIONS)), "done"]
    rt = AgentRuntime(
        ScriptedChatModel(script),
        tools=[noop],
        policy=Policy.allow_all(),
        db=db,
        budget=Budget(max_steps=ACTIONS + 1),
    )
    if mode == "setup":
        rt.start("call the no-op tool", principal=Principal("bench"), thread_id=THREAD)
    else:
        rt.resume(THREAD)
    raise SystemExit(f"the {mode} run ended without reaching the tool")


def langgraph_main(mode: str, db: Path) -> None:
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_core.tools import tool
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    from agentrt.store.sqlite.database import connect
    from agentrt.testing import ScriptedChatModel, ai, tool_call

    @tool
    def noop(i: int) -> dict[str, Any]:
        """Return a small fixed result.

        Args:
            i: The step number.
        """
        return _tool_body(mode, i)

    script = [*(ai("", tool_call("noop", {"i": k})) for k in range(ACTIONS)), "done"]
    bound = ScriptedChatModel(script).bind_tools([noop])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    builder: Any = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([noop]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    builder.add_edge("tools", "agent")
    saver = SqliteSaver(connect(db, autocommit=False))
    saver.setup()
    graph = builder.compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": THREAD}}
    if mode == "setup":
        start = {"messages": [SystemMessage("bench"), HumanMessage("call the no-op tool")]}
        graph.invoke(start, config, durability="sync")
    else:
        snapshot = graph.get_state(config)
        if snapshot.next != ("tools",):
            raise SystemExit(f"expected to resume at the tools node, not {snapshot.next!r}")
        graph.invoke(None, config, durability="sync")
    raise SystemExit(f"the {mode} run ended without reaching the tool")


if __name__ == "__main__":
    side, mode, path = sys.argv[1:4]
    (agentrt_main if side == "agentrt" else langgraph_main)(mode, Path(path))
