"""The nodes that only decide (policy, verify) run in the step of the node that sent the run
to them (agentrt.graphs.onward): fewer LangGraph steps and checkpoints, the same run, the
same spans, the same stream. Where the run stops before one, or one fails or goes astray,
it is left to a step of its own, as every node had before."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphRecursionError

from agentrt import AgentRuntime, Budget, Policy, Principal, RunStatus, ToolContext, tool
from agentrt.graphs import build_run_graph
from agentrt.graphs.onward import CHAIN
from agentrt.graphs.run_graph import run_graph_builder
from agentrt.limits import SizeLimits
from agentrt.nodes import NODES
from agentrt.runs.lease import LeaseOwner, acquire
from agentrt.state import RunState
from agentrt.testing import ScriptedChatModel, ai, node_deps, run_state, tool_call
from tests.conftest import FakeClock

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


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A real SQLite file, or a database on a real PostgreSQL server (tests/postgres.py)."""
    if request.param == "sqlite":
        return str(tmp_path / "agentrt.db")
    return str(request.getfixturevalue("postgres_url"))


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


def test_a_streamed_run_takes_a_step_for_every_node(tmp_path: Path) -> None:
    # A caller may stop reading after any node: the run is let go before the next.
    with _runtime(tmp_path / "a.db", _two_looks()) as rt:
        events = list(rt.stream("look a and b up", principal=WHO))
        thread_id = events[0].thread_id
        cfg = {"configurable": {"thread_id": thread_id}}
        waiting = [s.next for s in rt.graph.get_state_history(cfg)]
        log = rt.events(thread_id)
    started = [e.data["node"] for e in events if e.type == "step_started"]
    nodes = ["plan", "policy", "tool", "verify", "policy", "tool", "verify", "plan", "finish"]
    assert started == nodes
    assert waiting == [(), *((n,) for n in reversed(nodes)), ("__start__",)]
    told = [(e.index, e.type) for e in events if e.index is not None]
    assert told == [(i, e["type"]) for i, e in enumerate(log)]


def looks_runtime(db: str) -> AgentRuntime:
    """The two looks' runtime, for this process and one that resumes its run."""
    return _runtime(Path(db), _two_looks())


_RESUMER = (
    "import json, sys\n"
    "from tests.test_onward import looks_runtime\n"
    "with looks_runtime(sys.argv[1]) as rt:\n"
    "    told = [[e.index, e.type] for e in rt.stream_resume('t') if e.index is not None]\n"
    "print(json.dumps(told))\n"
)


@pytest.mark.subprocess
def test_a_stream_left_at_a_tool_result_and_resumed_elsewhere_tells_every_entry_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "a.db"
    told: list[tuple[int, str]] = []
    with looks_runtime(str(db)) as rt:
        for event in rt.stream("look a and b up", principal=WHO, thread_id="t"):
            if event.index is not None:
                told.append((event.index, event.type))
            if event.type == "tool_result":
                break
        assert rt.get("t").status is RunStatus.RUNNING
    root = Path(__file__).resolve().parent.parent
    resumed = subprocess.run(
        [sys.executable, "-c", _RESUMER, str(db)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    told += [(i, kind) for i, kind in json.loads(resumed.stdout.strip().splitlines()[-1])]
    with looks_runtime(str(db)) as rt:
        assert rt.get("t").status is RunStatus.SUCCEEDED
        log = [(i, e["type"]) for i, e in enumerate(rt.events("t"))]
    assert told == log


@pytest.mark.parametrize("streamed", ["stream", "astream"])
def test_an_interrupt_after_a_caller_left_at_a_tool_result_skips_the_rest_of_the_plan(
    db_url: str, streamed: str
) -> None:
    # Left between an effect and its check, the run stops before the next policy when a
    # message interrupts it: the second action is skipped, not done.
    performed: list[int] = []

    @tool(effect="write", idempotent=True)
    def note(n: int, ctx: ToolContext) -> dict[str, Any]:
        """Note a step.

        Args:
            n: Which step.
        """
        performed.append(n)
        return {"noted": n}

    model = ScriptedChatModel([_note_two] * 10)
    with AgentRuntime(model, tools=[note], policy=Policy.allow_all(), db=db_url) as rt:
        if streamed == "stream":
            for event in rt.stream("note two", principal=WHO, thread_id="t"):
                if event.type == "tool_result":
                    break  # the first effect ran; the caller leaves
        else:

            async def leave() -> None:
                events = rt.astream("note two", principal=WHO, thread_id="t")
                async for event in events:
                    if event.type == "tool_result":
                        break
                await events.aclose()  # type: ignore[attr-defined]

            asyncio.run(leave())
        assert rt.get("t").status is RunStatus.RUNNING
        run = rt.send("t", "stop that", principal=WHO, double_texting="interrupt")
        assert (run.status, run.output) == (RunStatus.SUCCEEDED, "you said: stop that")
        log = [(e["type"], e.get("step_id"), e["data"].get("kind")) for e in rt.events("t")]
    assert performed == [1]
    assert log[:5] == [
        ("plan", None, None),
        ("policy", "0.0", None),
        ("observation", "0.0", "ok"),
        ("observation", "0.1", "skipped"),
        ("message", None, None),
    ]


def _note_two(messages: list[Any]) -> Any:
    """Two notes in one plan for "note two"; any other message is answered in words."""
    last = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    said = str(messages[last].content)
    if said == "note two" and not any(isinstance(m, AIMessage) for m in messages[last + 1 :]):
        return ai("", tool_call("note", {"n": 1}), tool_call("note", {"n": 2}))
    return f"you said: {said}"


class _Unreachable(Policy):
    """A policy that asks a service which is down: every evaluation raises."""

    asked: list[str]

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        self.asked.append(args[1])
        raise RuntimeError("policy service unreachable")


def test_a_policy_that_raises_is_asked_once_and_traced_as_one_failed_step(tmp_path: Path) -> None:
    policy = _Unreachable(default="allow")
    policy.asked = []
    model = ScriptedChatModel([ai("", tool_call("look", {"sku": "a"})), "done"])
    with AgentRuntime(model, tools=[look], policy=policy, db=tmp_path / "a.db") as rt:
        run = rt.start("look a up", principal=WHO, thread_id="t")
        steps = [
            (span.name, span.status, (span.attributes or {}).get("agentrt.retry_count"))
            for _, span in rt.trace("t").spans()
            if span.kind == "agent.step"
        ]
    assert run.status is RunStatus.FAILED
    assert "policy service unreachable" in (run.error or "")
    assert policy.asked == ["look"]
    assert steps == [("plan", "UNSET", None), ("policy 0.0", "ERROR", None)]


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
    assert tries == [1]  # raised again in its own step, not run twice


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


# A pure node's error kept for its own step never outlives the segment that ran it.

TTL = 30.0


def _fetching(db: Path, clock: FakeClock, *, stop_in_fetch: bool = False) -> AgentRuntime:
    """A read whose result is kept as an artifact, which verify reads back."""
    runtime: list[AgentRuntime] = []

    @tool(effect="read")
    def fetch(key: str) -> dict[str, str]:
        """Fetch a long record.

        Args:
            key: A key.
        """
        if stop_in_fetch:  # this process is told to stop while the read runs
            runtime[0].deps.stopping_threads.add("t")
        return {"text": "x" * 4096}

    rt = AgentRuntime(
        ScriptedChatModel([ai("", tool_call("fetch", {"key": "k"})), "fetched"]),
        tools=[fetch],
        policy=Policy.allow_all(),
        db=db,
        clock=clock,
        lease_ttl=TTL,
        limits=SizeLimits(inline_result_bytes=1024),
    )
    runtime.append(rt)
    return rt


def test_a_pure_nodes_error_in_a_step_whose_checkpoint_was_refused_is_not_raised_later(
    db: Path, clock: FakeClock
) -> None:
    # verify, in fetch's step, meets a locked database just as another process takes the
    # run's lease: the step's checkpoint is refused and this process lets the run go.
    a = _fetching(db, clock)
    read = a.store.artifact_content
    failures: list[int] = []

    def artifact_content(digest: str) -> Any:
        if not failures:
            failures.append(1)
            clock.advance(TTL + 1)
            acquire(a.store, "t", LeaseOwner.this_process("b"), TTL, now=clock())
            raise sqlite3.OperationalError("database is locked")
        return read(digest)

    a.store.artifact_content = artifact_content  # type: ignore[method-assign]
    with a:
        assert a.start("fetch k", principal=WHO, thread_id="t").status is RunStatus.RUNNING
        clock.advance(TTL + 1)
        with _fetching(db, clock, stop_in_fetch=True) as b:  # stops before verify
            assert b.resume("t").status is RunStatus.RUNNING
        a.store.artifact_content = read  # type: ignore[method-assign]
        done = a.resume("t")  # verify runs now, and passes: no error from before
    assert (done.status, done.error) == (RunStatus.SUCCEEDED, None)
