"""build_run_graph: the plan/policy/approval/tool/verify/commit/finish graph, compiled.

    START -> plan -> policy --allow----------------> tool -> verify --ok, steps left--> policy
                       |--require_approval-> approval -^      |--ok, plan done----> plan
                       |                      |--edit--> policy  |--failed--------> plan
                       |                      '--reject--> policy '--preview ok--> commit -> verify
                       |                          (next action), or plan when none is left
                       |--deny--------------------------------> plan
                       '--skipped--> policy (next action): an action no person approved, after a
                                      person refused an earlier one of the same plan
    plan --final answer--> finish -> END      (any node --budget exceeded / fatal--> finish)
    plan, tool, commit --limit reached, Budget(on_exceed="ask")--> budget_gate
    budget_gate --limit raised--> back to the node that stopped;  --refused--> finish
    tool, commit --effect in doubt--> reconcile --resolved--> verify
                                                '--retry--> tool (commit for irreversible)

Each node returns the route it chose in state["route"]; the edges below list, per node,
exactly the routes the design allows, so the drawn graph is the design.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from opentelemetry.trace import Span

from agentrt import nodes
from agentrt.budget import Budget, budget_attributes
from agentrt.graphs.deps import RunDeps
from agentrt.state import RunState, Stop, Usage

__all__ = ["ROUTES", "build_run_graph"]

ROUTES: dict[str, tuple[str, ...]] = {
    "plan": ("policy", "budget_gate", "finish"),
    "policy": ("tool", "approval", "policy", "plan", "finish"),
    "approval": ("tool", "policy", "plan", "finish"),
    "tool": ("verify", "budget_gate", "reconcile", "finish"),
    "verify": ("policy", "plan", "commit", "finish"),
    "commit": ("verify", "budget_gate", "reconcile", "finish"),
    "budget_gate": ("plan", "tool", "commit", "finish"),
    "reconcile": ("verify", "tool", "commit", "finish"),
}

NodeFn = Callable[[RunState, RunDeps], dict[str, Any]]
AsyncNodeFn = Callable[[RunState, RunDeps], Awaitable[dict[str, Any]]]


def _step(kind: str, fn: NodeFn, state: RunState, deps: RunDeps) -> dict[str, Any]:
    """Run one node inside its agent.step span, adding its time to the run's active time.

    Only node time counts: time spent waiting for a person happens between nodes.
    """
    started = deps.clock()
    with deps.tracing.step(kind, state["thread_id"], _step_id(kind, state)) as span:
        cancelled = _cancelled(kind, state, deps)
        update = cancelled if cancelled is not None else fn(state, deps)
        return _accounted(update, state, deps, started, span)


async def _astep(kind: str, fn: AsyncNodeFn, state: RunState, deps: RunDeps) -> dict[str, Any]:
    """_step for a node's async body."""
    started = deps.clock()
    with deps.tracing.step(kind, state["thread_id"], _step_id(kind, state)) as span:
        # The store's connection stays off the event loop (it may wait on SQLite's lock).
        cancelled = await asyncio.to_thread(_cancelled, kind, state, deps)
        update = cancelled if cancelled is not None else await fn(state, deps)
        return _accounted(update, state, deps, started, span)


def _cancelled(kind: str, state: RunState, deps: RunDeps) -> dict[str, Any] | None:
    """If someone asked to cancel the run while this process drives it, the update that
    ends it here, before the node's work: between steps, never inside an effect."""
    if kind == "finish":
        return None
    reason = deps.store.cancel_requested(state["thread_id"])
    if reason is None:
        return None
    return {"stop": Stop(status="cancelled", reason=reason), "route": "finish"}


def _accounted(
    update: dict[str, Any], state: RunState, deps: RunDeps, started: float, span: Span
) -> dict[str, Any]:
    """The node's update with its time added to the run's active time (and on its span)."""
    usage = Usage(**(update.get("usage") or state["usage"]))
    now = deps.clock()
    usage["active_seconds"] = usage["active_seconds"] + max(0.0, now - started)
    update["usage"] = usage
    if span.is_recording():  # with tracing off, skip working out what is left
        budget = Budget.from_dict(update.get("budget") or state.get("budget"))
        deps.tracing.set(span, budget_attributes(budget, usage, now=now))
    return update


def _step_id(kind: str, state: RunState) -> str | None:
    """The plan step an action node works on; plan and finish have none."""
    plan = state.get("plan")
    cursor = state.get("cursor", 0)
    if kind in ("plan", "finish") or not plan or cursor >= len(plan["actions"]):
        return None
    return plan["actions"][cursor]["step_id"]


def _router(source: str) -> Callable[[RunState], str]:
    allowed = ROUTES[source]

    def route(state: RunState) -> str:
        target = state.get("route")
        if target not in allowed:
            raise RuntimeError(f"node {source!r} chose route {target!r}; allowed: {allowed!r}")
        return target

    route.__name__ = f"route_after_{source}"
    return route


def _both_ways(
    name: str, sync: Callable[[RunState], Any], afn: Callable[[RunState], Awaitable[Any]]
) -> Any:
    """A node with a sync body for invoke and an async one for ainvoke.

    LangGraph wraps a plain function node in its RunnableCallable with tracing off; a
    RunnableLambda would run LangChain's callback machinery on every call, which made the
    per-node overhead benchmark 18% slower. LangGraph keeps that class private, so if it
    moves, the node falls back to the public, slower equivalent.
    """
    try:
        from langgraph._internal._runnable import RunnableCallable
    except ImportError:  # pragma: no cover - a LangGraph that moved it
        return RunnableLambda(sync, afn, name=name)
    return RunnableCallable(sync, afn, name=name, trace=False)


def build_run_graph(
    deps: RunDeps, checkpointer: BaseCheckpointSaver[Any] | None = None
) -> CompiledStateGraph[RunState, None, RunState, RunState]:
    """Compile the run graph over ``deps``, checkpointing to ``checkpointer``."""
    builder: StateGraph[RunState, None, RunState, RunState] = StateGraph(RunState)
    node_fns: dict[str, NodeFn] = {
        "plan": nodes.plan,
        "policy": nodes.policy,
        "approval": nodes.approval,
        "tool": nodes.tool,
        "verify": nodes.verify,
        "commit": nodes.commit,
        "budget_gate": nodes.budget_gate,
        "reconcile": nodes.reconcile,
        "finish": nodes.finish,
    }
    # Nodes with an async body of their own, which the async runtime (ainvoke) uses; the
    # others run in the event loop's thread pool there. The planner waits on a remote model
    # for seconds: as a coroutine it holds no thread while it waits.
    async_fns: dict[str, AsyncNodeFn] = {"plan": nodes.aplan}
    for name, fn in node_fns.items():
        sync = partial(_step, name, fn, deps=deps)
        afn = async_fns.get(name)
        builder.add_node(
            name,
            sync if afn is None else _both_ways(name, sync, partial(_astep, name, afn, deps=deps)),
            # Only the planner talks to a remote service worth retrying at node level;
            # tools have their own error contract.
            retry_policy=deps.model_retry if name == "plan" else None,
        )
    builder.add_edge(START, "plan")
    for source, targets in ROUTES.items():
        builder.add_conditional_edges(source, _router(source), {t: t for t in targets})
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer)
