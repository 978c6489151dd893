"""The nodes that only decide (policy, verify) run in the step of the node that sent the run
to them (agentrt.graphs.onward): fewer LangGraph steps and checkpoints, the same run, the
same spans, the same stream. Where the run stops before one, or one fails or goes astray,
it is left to a step of its own, as every node had before."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphRecursionError

from agentrt import AgentRuntime, Budget, Policy, Principal, RunStatus, tool
from agentrt.graphs import build_run_graph
from agentrt.graphs.onward import CHAIN
from agentrt.graphs.run_graph import run_graph_builder
from agentrt.nodes import NODES
from agentrt.state import RunState
from agentrt.testing import ScriptedChatModel, ai, node_deps, run_state, tool_call

WHO = Principal("ops", tenant="t")
looked: list[str] = []


@tool(effect="read")
def look(sku: str) -> dict[str, Any]:
    """Look a stock unit up.

    Args:
        sku: The unit.
    """
    looked.append(sku)
    return {"sku": sku, "units": 3}


def _two_looks() -> ScriptedChatModel:
    return ScriptedChatModel(
        [
            ai("", tool_call("look", {"sku": "a"}), tool_call("look", {"sku": "b"})),
            "Both are in stock.",
        ]
    )


def _runtime(db: Path, model: ScriptedChatModel) -> AgentRuntime:
    return AgentRuntime(model, tools=[look], policy=Policy.allow_all(), db=db, budget=Budget())


def test_a_run_takes_a_step_for_each_node_that_acts_and_spans_every_node(tmp_path: Path) -> None:
    looked.clear()
    with _runtime(tmp_path / "a.db", _two_looks()) as rt:
        run = rt.start("look a and b up", principal=WHO)
        assert run.status is RunStatus.SUCCEEDED
        assert run.output == "Both are in stock."
        assert looked == ["a", "b"]
        cfg = {"configurable": {"thread_id": run.thread_id}}
        waiting = [s.next for s in rt.graph.get_state_history(cfg)]
        steps = [
            span.name for _, span in rt.trace(run.thread_id).spans() if span.kind == "agent.step"
        ]
        log = [e["type"] for e in rt.events(run.thread_id)]
    # Where each checkpoint stood, newest first: never before a node that only decides.
    assert waiting == [(), ("finish",), ("plan",), ("tool",), ("tool",), ("plan",), ("__start__",)]
    # The trace tells every node, each its own span, in the order they ran.
    assert steps == [
        "plan",
        "policy 0.0",
        "tool 0.0",
        "verify 0.0",
        "policy 0.1",
        "tool 0.1",
        "verify 0.1",
        "plan",
        "finish",
    ]
    # The log is the one a step a node writes: each decision and observation, in order.
    assert log == [
        "plan",
        "policy",
        "observation",
        "policy",
        "observation",
        "plan",
        "finish",
    ]


def test_a_stream_tells_the_nodes_run_within_a_step_as_steps_of_their_own(tmp_path: Path) -> None:
    with _runtime(tmp_path / "a.db", _two_looks()) as rt:
        events = list(rt.stream("look a and b up", principal=WHO))
        thread_id = events[0].thread_id
        log = rt.events(thread_id)
    started = [e.data["node"] for e in events if e.type == "step_started"]
    ended = [e.data["node"] for e in events if e.type == "step_ended"]
    nodes = ["plan", "policy", "tool", "verify", "policy", "tool", "verify", "plan", "finish"]
    assert started == ended == nodes
    # Each node's events between its start and its end; the log's entries each once, in order.
    order = [(e.type, e.data.get("node")) for e in events if e.type.startswith("step_")]
    assert order == [(kind, n) for n in nodes for kind in ("step_started", "step_ended")]
    told = [(e.index, e.type) for e in events if e.index is not None]
    assert told == [(i, e["type"]) for i, e in enumerate(log)]
    results = [e for e in events if e.type == "tool_result"]
    assert [r.data["content"] for r in results] == [
        '{"sku": "a", "units": 3}',
        '{"sku": "b", "units": 3}',
    ]


# The graph alone, its node bodies replaced: where a pure node is left to its own step.


def _graph(
    bodies: dict[str, Callable[[RunState, Any], dict[str, Any]]], deps: Any = None
) -> tuple[Any, Any, RunState]:
    deps = deps or node_deps()
    nodes = tuple(
        dataclasses.replace(n, body=bodies[n.name], steps=None) if n.name in bodies else n
        for n in NODES
    )
    graph = build_run_graph(deps, InMemorySaver(), nodes=nodes)
    return graph, deps, run_state(deps)


def _cfg(limit: int = 100) -> Any:
    return {"configurable": {"thread_id": "t"}, "recursion_limit": limit}


def _once(route: str) -> dict[str, Callable[[RunState, Any], dict[str, Any]]]:
    """plan once to ``route`` (then to finish), tool to verify, verify to plan."""
    planned: list[int] = []

    def plan(state: RunState, deps: Any) -> dict[str, Any]:
        planned.append(1)
        return {"route": route if len(planned) == 1 else "finish", "cursor": len(planned)}

    return {
        "plan": plan,
        "tool": lambda state, deps: {"route": "verify"},
        "verify": lambda state, deps: {"route": "plan"},
        "finish": lambda state, deps: {"status": "succeeded"},
    }


def test_a_pure_node_that_raises_raises_in_a_step_of_its_own() -> None:
    tries: list[int] = []

    def policy(state: RunState, deps: Any) -> dict[str, Any]:
        tries.append(state["cursor"])
        raise ValueError("the policy engine broke")

    graph, _, state = _graph({**_once("policy"), "policy": policy})
    with pytest.raises(ValueError, match="the policy engine broke"):
        graph.invoke(state, _cfg())
    # plan's step was kept, ending before policy; policy failed again in its own step.
    saved = graph.get_state(_cfg())
    assert saved.next == ("policy",)
    assert saved.values["cursor"] == 1
    assert tries == [1, 1]


def test_a_run_stopping_before_a_pure_node_stops_there() -> None:
    deps = node_deps()

    def tool(state: RunState, _: Any) -> dict[str, Any]:
        deps.stopping_threads.add("t")  # this process stops driving the run meanwhile
        return {"route": "verify"}

    graph, _, state = _graph({**_once("policy"), "tool": tool, "policy": _to("tool")}, deps)
    with pytest.raises(Exception, match="stops driving the run here"):
        graph.invoke(state, _cfg())
    assert graph.get_state(_cfg()).next == ("verify",)  # the tool's step is kept
    deps.stopping_threads.clear()
    assert graph.invoke(None, _cfg())["status"] == "succeeded"


def _to(route: str) -> Callable[[RunState, Any], dict[str, Any]]:
    return lambda state, deps: {"route": route}


def test_a_pure_node_that_goes_astray_is_refused_in_a_step_of_its_own() -> None:
    graph, _, state = _graph({**_once("policy"), "policy": _to("commit")})
    with pytest.raises(RuntimeError, match="node 'policy' chose route 'commit'"):
        graph.invoke(state, _cfg())
    assert graph.get_state(_cfg()).next == ("policy",)


def test_pure_nodes_that_send_the_run_round_and_round_meet_the_recursion_limit() -> None:
    spins: list[int] = []

    def policy(state: RunState, deps: Any) -> dict[str, Any]:
        spins.append(1)
        return {"route": "policy"}

    graph, _, state = _graph({**_once("policy"), "policy": policy})
    with pytest.raises(GraphRecursionError):
        graph.invoke(state, _cfg(limit=5))
    # Five steps: plan's with CHAIN policies in it, then CHAIN + 1 in each of four more.
    assert len(spins) == 5 * (CHAIN + 1) - 1


def test_a_graph_built_each_node_a_step_takes_a_step_for_every_node() -> None:
    # As a LangGraph API server serves the run graph: Studio shows each node's step.
    deps = node_deps()
    bodies = {**_once("policy"), "policy": _to("tool")}
    nodes = tuple(
        dataclasses.replace(n, body=bodies[n.name], steps=None) if n.name in bodies else n
        for n in NODES
    )
    graph = run_graph_builder(deps, nodes=nodes, each_a_step=True).compile(
        checkpointer=InMemorySaver()
    )
    graph.invoke(run_state(deps), _cfg())
    waiting = [s.next for s in graph.get_state_history(_cfg())]
    assert waiting == [
        (),
        ("finish",),
        ("plan",),
        ("verify",),
        ("tool",),
        ("policy",),
        ("plan",),
        ("__start__",),
    ]
