"""Overhead benchmark: what agentrt's machinery costs per action and per node.

Per action: one agentrt run (``rt.start``) with a scripted model and a no-op read tool,
against the hand-written minimal LangGraph agent (a model node and a ToolNode in a loop)
on the same SqliteSaver (agentrt's pragmas, ``durability="sync"``), with the same model
calls and tool calls. agentrt's time includes everything ``start`` does: the runs row, the
lease, policy and verify per action, the closing status write.

Per node: agentrt's run graph with its node bodies replaced by empty ones (so what is left
is the node wrapper, the routes and the RunState channels), against a bare graph of the
same shape (plan -> policy -> tool -> verify, then plan -> finish) whose nodes are empty
functions over a one-key state, each a superstep (agentrt runs policy and verify in the
superstep before them, as in a run: agentrt.graphs.onward); in memory, then checkpointing
every superstep on SqliteSaver (both sides), then with agentrt on its own checkpointer as
AgentRuntime runs the graph (values stored compact, the pure nodes' writes held for the
next write).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import typing
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, TypedDict

from agents import (
    GOAL,
    PRINCIPAL,
    agent_loop,
    agentrt_runtime,
    close_saver,
    config,
    script,
    sqlite_saver,
    start_messages,
    timed_start,
)
from harness import QUICK, Report, Row, paired
from langgraph.graph import END, START, StateGraph

from agentrt.graphs import build_run_graph
from agentrt.nodes import NODES, Node
from agentrt.runs.held_writes import holding
from agentrt.runs.record import initial_state as _initial_run_state
from agentrt.runs.streaming import SETTLED_KEYS
from agentrt.state import RunState
from agentrt.store.sqlite.checkpoints import Checkpoints
from agentrt.testing import ScriptedChatModel

__all__ = ["main", "per_action", "per_node"]

ACTIONS = 3 if QUICK else 20
"""Tool-calling turns per run (plus one closing answer)."""
LONG_ACTIONS = 6 if QUICK else 200
"""The same, for a long run: what is paid once a run (the runs row, the lease, building the
conversation) weighs less there, what grows with the run more."""
CYCLES = 3 if QUICK else 50
"""plan -> policy -> tool -> verify cycles per run of the per-node graphs."""
REPEATS = 2 if QUICK else 7


def _tmp_db(tmp: Path, counter: list[int]) -> Path:
    counter[0] += 1
    return tmp / f"run-{counter[0]}.db"


def per_action(tmp: Path, actions: int = ACTIONS, repeats: int = REPEATS) -> Row:
    """ms per action: agentrt's start() against the bare agent loop's invoke()."""
    counter = [0]
    tmp = tmp / f"{actions}-actions"  # each row's files apart: the anchor's thread id is fixed
    tmp.mkdir()

    def ours() -> float:
        rt = agentrt_runtime(ScriptedChatModel(script(actions)), _tmp_db(tmp, counter), actions)
        return timed_start(rt, actions) * 1000 / actions

    def anchor() -> float:
        model = ScriptedChatModel(script(actions))
        saver = sqlite_saver(_tmp_db(tmp, counter))
        try:
            graph = agent_loop(model, saver)
            started = time.perf_counter()
            final = graph.invoke(start_messages(), config("bench"), durability="sync")
            seconds = time.perf_counter() - started
        finally:
            close_saver(saver)
        # system + goal, then per action an AI message and a tool message, then the answer
        if len(final["messages"]) != 2 + 2 * actions + 1:
            raise RuntimeError(f"the bare agent made {len(final['messages'])} messages")
        model.assert_complete()
        return seconds * 1000 / actions

    a, b = paired(ours, anchor, repeats)
    return Row.of(
        "per action",
        f"ms per action ({actions}-action run, sync checkpoints)",
        a,
        "bare LangGraph: model node + ToolNode",
        b,
    )


# Per node ---------------------------------------------------------------------------------


def _stub_nodes(cycles: int) -> dict[str, Callable[[RunState, Any], dict[str, Any]]]:
    """Empty node bodies that only choose the route agentrt's graph needs."""
    planned = [0]

    def plan(state: RunState, deps: Any) -> dict[str, Any]:
        planned[0] += 1
        return {"route": "policy" if planned[0] <= cycles else "finish"}

    return {
        "plan": plan,
        "policy": lambda state, deps: {"route": "tool"},
        "tool": lambda state, deps: {"route": "verify"},
        "verify": lambda state, deps: {"route": "plan"},
        "finish": lambda state, deps: {"status": "succeeded"},
    }


def _empty_agentrt_nodes(cycles: int) -> tuple[Node, ...]:
    """agentrt's node declarations (routes, retry, entry) with the empty bodies."""
    stubs = _stub_nodes(cycles)
    return tuple(
        dataclasses.replace(n, body=stubs[n.name], steps=None) if n.name in stubs else n
        for n in NODES
    )


def _initial_state() -> RunState:
    # What AgentRuntime starts a run from, made from the fields of a runs row.
    row = SimpleNamespace(thread_id="bench", goal=GOAL, principal=PRINCIPAL.to_dict(), budget={})
    return _initial_run_state(row)


class _Bare(TypedDict):
    n: int


def _bare_graph(cycles: int, checkpointer: Any) -> Any:
    planned = [0]

    def plan(state: _Bare) -> None:
        planned[0] += 1

    def empty(state: _Bare) -> None:
        return None

    builder: StateGraph[Any, Any, Any, Any] = StateGraph(_Bare)
    builder.add_node("plan", plan)
    for name in ("policy", "tool", "verify", "finish"):
        builder.add_node(name, empty)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges(
        "plan", lambda s: "policy" if planned[0] <= cycles else "finish", ["policy", "finish"]
    )
    builder.add_edge("policy", "tool")
    builder.add_edge("tool", "verify")
    builder.add_edge("verify", "plan")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer)


def _durability(saver: Any) -> dict[str, Any]:
    # durability= without a checkpointer trips LangGraph (it waits on a save never made).
    return {"durability": "sync"} if saver is not None else {}


Saver = Literal["none", "sqlite", "agentrt"]
"""What agentrt's side of a per-node row checkpoints to: nothing, LangGraph's SqliteSaver
(the anchor's), or agentrt's own checkpointer as AgentRuntime runs the graph (values
stored compact, the pure nodes' writes held for the next write: agentrt.runs.held_writes)."""


def _saver(kind: Saver, db: Path) -> Any:
    if kind == "sqlite":
        return sqlite_saver(db)
    if kind == "agentrt":
        saver = Checkpoints(db)
        saver.setup()
        return saver
    return None


def _close(saver: Any) -> None:
    if isinstance(saver, Checkpoints):
        saver.close()
    elif saver is not None:
        close_saver(saver)


def per_node(tmp: Path, *, saver: Saver) -> Row:
    """µs per node: agentrt's wrappers and state around empty nodes, against bare ones."""
    supersteps = 4 * CYCLES + 2
    counter = [0]
    # A runtime only to hand build_run_graph real deps (store, tracer, clock).
    rt = agentrt_runtime(ScriptedChatModel(["unused"]), tmp / "deps.db", 1)

    def ours() -> float:
        checkpointer = _saver(saver, _tmp_db(tmp, counter))
        try:
            graph = build_run_graph(rt.deps, checkpointer, nodes=_empty_agentrt_nodes(CYCLES))
            started = time.perf_counter()
            with holding(graph, "bench"):  # a checkpointer that holds nothing ignores it
                final = graph.invoke(
                    _initial_state(),
                    config("bench"),
                    output_keys=SETTLED_KEYS,  # as a run's segment invokes it
                    **_durability(checkpointer),
                )
            seconds = time.perf_counter() - started
        finally:
            _close(checkpointer)
        if final["status"] != "succeeded":
            raise RuntimeError(f"the stubbed run graph ended {final['status']!r}")
        return seconds * 1e6 / supersteps

    def anchor() -> float:
        checkpointer = _saver("none" if saver == "none" else "sqlite", _tmp_db(tmp, counter))
        try:
            graph = _bare_graph(CYCLES, checkpointer)
            started = time.perf_counter()
            graph.invoke({"n": 0}, config("bench"), **_durability(checkpointer))
            seconds = time.perf_counter() - started
        finally:
            _close(checkpointer)
        return seconds * 1e6 / supersteps

    try:
        a, b = paired(ours, anchor, REPEATS)
    finally:
        rt.close()
    where = {
        "none": "no checkpointer",
        "sqlite": "SqliteSaver, sync",
        "agentrt": "agentrt's checkpointer against SqliteSaver, sync",
    }[saver]
    return Row.of(
        "per node",
        f"µs per node, empty nodes ({supersteps} supersteps, {where})",
        a,
        "bare LangGraph graph of the same shape",
        b,
    )


def main() -> Report:
    """Run the overhead benchmarks and return their rows."""
    with tempfile.TemporaryDirectory(prefix="agentrt-bench-") as tmp:
        rows = [
            per_action(Path(tmp)),
            per_action(Path(tmp), LONG_ACTIONS, repeats=2 if QUICK else 3),
            per_node(Path(tmp), saver="none"),
            per_node(Path(tmp), saver="sqlite"),
            per_node(Path(tmp), saver="agentrt"),
        ]
    notes = (
        f"Per action: {ACTIONS} (and {LONG_ACTIONS}) actions a run, each a model turn "
        "calling the no-op tool, then a final answer; both sides use `ScriptedChatModel` "
        "and checkpoint every superstep into SQLite with the same pragmas. agentrt runs 4 "
        "nodes an action (plan, policy, tool, verify) in 2 supersteps, as the bare agent runs "
        "its 2 (model, tools): policy and verify run in the superstep before them. It also "
        "writes its runs row, lease and closing status. Per node: node "
        "bodies are empty on both sides (the anchor's four a superstep each, agentrt's in "
        "two), so the difference is agentrt's node wrapper "
        "(span, clock, usage, budget attributes, the cancel check, the route it sends the "
        f"run on) and its {len(typing.get_type_hints(RunState))}-key RunState (a "
        "DeltaChannel event log among them), invoked as a run's segment invokes it (answering "
        "the keys a segment's end is written from, which LangGraph reads after each step "
        "that writes one). agentrt runs with its defaults, so each node's "
        "agent.step span is written to the SQLite span store; bench/tracing.py measures that "
        "part on its own."
    )
    return Report(rows=rows, notes=notes)


if __name__ == "__main__":
    main()
