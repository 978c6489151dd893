"""A run's conversation is kept between its turns while a segment drives it, and let go
when the segment ends (agentrt.nodes.plan): however many runs go at once, each turn
extends the conversation rather than building it again from the log."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from agentrt import AgentRuntime, Policy, tool
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import GOAL, OPERATOR
from agentrt.nodes import plan
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import started_at_once

RUNS = 300
"""More runs at once than the kept conversations' old bound (256)."""


@tool(effect="read")
def look(q: str) -> str:
    """Look something up.

    Args:
        q: What to look up.
    """
    return q


class _Counted(plan.GrowingRequest):
    built = 0

    def __init__(self) -> None:
        type(self).built += 1
        super().__init__()


def test_many_runs_at_once_each_build_their_conversation_once(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plan, "GrowingRequest", _Counted)
    _Counted.built = 0
    turns = [ai("", tool_call("look", {"q": "x"})), ai("", tool_call("look", {"q": "y"})), "done"]
    with AgentRuntime(
        ScriptedChatModel(turns * RUNS), tools=[look], policy=Policy.allow_all(), db=str(db)
    ) as rt:
        runs = started_at_once(rt, "look", RUNS)
    assert [r.status.value for r in runs] == ["succeeded"] * RUNS
    assert _Counted.built == RUNS  # 3 turns a run, each conversation built from its log once
    assert not set(plan._CONVERSATIONS) & {f"t{i}" for i in range(RUNS)}  # let go at the end


def test_a_run_that_stops_at_a_gate_lets_its_conversation_go(db: Path) -> None:
    rt = refund_desk.build_runtime(db)  # the refund waits for an approver
    try:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.status.value == "awaiting_approval"
        assert run.thread_id not in plan._CONVERSATIONS  # its segment ended at the gate
    finally:
        rt.close()


def test_a_served_graph_stopped_at_a_gate_lets_its_conversation_go(db: Path) -> None:
    # No driver around it (the graph a LangGraph API server runs): the node that stops the
    # graph lets the conversation go, which the thread's next run could never reuse.
    with refund_desk.build_runtime(db) as rt:
        served = rt.served_graph(principal=OPERATOR)
        graph = served.copy(update={"checkpointer": InMemorySaver()})
        config: RunnableConfig = {"configurable": {"thread_id": "served-gate"}}
        graph.invoke({"goal": GOAL}, config)
        assert graph.get_state(config).next == ("approval",)
        assert "served-gate" not in plan._CONVERSATIONS
