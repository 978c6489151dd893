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
    plan --prompt past Summarize.at_tokens--> summarize (older turns condensed) --> plan

Each node module declares itself (agentrt.nodes.spec.Node): its body, the routes it may
take, its retry policy. The graph is derived from those declarations alone: each node
returns the route it chose as "route" in its update, and its wrapper sends the run there
(a Command) only if the node declared that route, so the drawn graph is the design. The
nodes that only decide (policy, verify) run in the step of the node that sent the run to
them (agentrt.graphs.onward): one LangGraph step for tool -> verify -> policy, each node
its own span. A node's step itself (its span, its time, its checks before it begins) is
agentrt.graphs.stepping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, RetryPolicy

from agentrt.graphs.onward import failed_within, onward
from agentrt.graphs.stepping import goto, if_cancelled, stepping, stop_check
from agentrt.models import default_model_retry
from agentrt.nodes import NODES, Node
from agentrt.nodes.deps import RunDeps
from agentrt.state import RunState
from agentrt.steps import Step, Steps, adrive, blocking, drive
from agentrt.store.held import HoldsWrites

__all__ = ["ROUTES", "build_run_graph", "run_graph_builder"]

_T = TypeVar("_T")

ROUTES: dict[str, tuple[str, ...]] = {n.name: n.routes for n in NODES if n.routes}
"""Per node, the routes it may take (finish has none: the run ends)."""


def _body(node: Node, state: RunState, deps: RunDeps, pure: Mapping[str, Node]) -> Command[str]:
    failed = failed_within(node, state, deps)
    held = stop_check(deps, state["thread_id"])  # a run stopping here stops, failed or not
    if failed is not None:
        raise failed
    with stepping(node.name, state, deps, held) as step:
        assert node.body is not None
        step.update = if_cancelled(node.name, step.state, deps) or node.body(step.state, deps)
    if _goes_on(step.update, state, deps, pure):
        return onward(node, state, step.update, deps, pure)
    return goto(node, step.update)


def _goes_on(
    update: dict[str, Any], state: RunState, deps: RunDeps, pure: Mapping[str, Node]
) -> bool:
    """The node's route is a pure node's, to run in this step (agentrt.graphs.onward): not
    while a caller streams the run, where every node is a step of its own."""
    return update.get("route") in pure and state["thread_id"] not in deps.streamed_threads


def _steps(
    node: Node, state: RunState, deps: RunDeps, pure: Mapping[str, Node]
) -> Steps[Command[str]]:
    failed_within(node, state, deps)  # not a pure node's step: what was kept is let go
    held = stop_check(deps, state["thread_id"])
    with stepping(node.name, state, deps, held) as step:
        assert node.steps is not None
        now = step.state
        step.update = yield from _checked(node.name, now, deps, node.steps(now, deps))
    if _goes_on(step.update, state, deps, pure):
        onwards: Command[str] = yield blocking(onward, node, state, step.update, deps, pure)
        return onwards
    return goto(node, step.update)


def _checked(
    kind: str, state: RunState, deps: RunDeps, steps: Steps[dict[str, Any]]
) -> Steps[dict[str, Any]]:
    """The node's steps after the cancel check, which reads the store and so stays off the
    event loop: done in the same worker-thread trip as the node's first blocking call when
    it starts with one (plan, tool), one hand-off fewer a node. Cancelled, the node's steps
    are closed before any of their work is done."""
    try:
        first = next(steps)
    except StopIteration as done:  # the node needed nothing done (a budget stop)
        stopped: dict[str, Any] | None = yield blocking(if_cancelled, kind, state, deps)
        return stopped or done.value
    stop: dict[str, Any] | None
    if not first.threaded:
        stop = yield blocking(if_cancelled, kind, state, deps)
        if stop is not None:
            steps.close()
            return stop
        return (yield from _rest(steps, first))

    def check_then_call() -> tuple[dict[str, Any] | None, Any, Exception | None]:
        stop = if_cancelled(kind, state, deps)  # its error is the segment's, as before
        if stop is not None:
            return stop, None, None
        try:
            return None, first.sync(), None
        except Exception as exc:  # the node's own call failed: the node sees it
            return None, None, exc

    try:
        stop, result, error = yield blocking(check_then_call)
    except BaseException:
        steps.close()
        raise
    if stop is not None:
        steps.close()
        return stop
    if error is not None:
        return (yield from _rest(steps, None, partial(steps.throw, error)))
    return (yield from _rest(steps, None, partial(steps.send, result)))


def _rest(
    steps: Steps[_T], step: Step[Any] | None, advance: Callable[[], Step[Any]] | None = None
) -> Steps[_T]:
    """What ``yield from steps`` does, for steps already started: from ``step`` it waits
    on, or from ``advance`` (handing on its first step's outcome)."""
    while True:
        if advance is not None:
            try:
                step = advance()
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        assert step is not None
        try:
            sent = yield step
        except BaseException as exc:  # handed on, as yield from does
            advance = partial(steps.throw, exc)
        else:
            advance = partial(steps.send, sent)


def _runnable(node: Node, deps: RunDeps, pure: Mapping[str, Node]) -> Any:
    """The node as LangGraph runs it: a plain function, or, for a body written as steps, a
    sync body for invoke and an async one for ainvoke.

    LangGraph wraps a plain function node in its RunnableCallable with tracing off; a
    RunnableLambda would run LangChain's callback machinery on every call, which made the
    per-node overhead benchmark 18% slower. LangGraph keeps that class private, so if it
    moves, the node falls back to the public, slower equivalent.
    """
    if node.steps is None:
        return partial(_body, node, deps=deps, pure=pure)

    def sync(state: RunState) -> Command[str]:
        return drive(_steps(node, state, deps, pure))

    async def aio(state: RunState) -> Command[str]:
        return await adrive(_steps(node, state, deps, pure))

    try:
        from langgraph._internal._runnable import RunnableCallable
    except ImportError:  # pragma: no cover - a LangGraph that moved it
        return RunnableLambda(sync, aio, name=node.name)
    return RunnableCallable(sync, aio, name=node.name, trace=False)


def run_graph_builder(
    deps: RunDeps,
    *,
    nodes: Sequence[Node] = NODES,
    input_schema: type[Any] | None = None,
    output_schema: type[Any] | None = None,
    each_a_step: bool = False,
) -> StateGraph[RunState, None, Any, Any]:
    """The run graph over ``deps`` from the nodes' declarations, not yet compiled: a graph
    served by a LangGraph API server (agentrt.governed.served) adds its own first node.
    ``input_schema`` and ``output_schema``: what the graph takes and answers (None: the
    whole RunState). ``each_a_step``: every node a LangGraph step of its own, the pure ones
    too (by default they run in the step of the node before them: agentrt.graphs.onward)."""
    builder: StateGraph[RunState, None, Any, Any] = StateGraph(
        RunState, input_schema=input_schema, output_schema=output_schema
    )
    pure: dict[str, Node] = {}
    if not each_a_step:
        pure = {n.name: n for n in nodes if n.pure and n.body is not None}
    for node in nodes:
        builder.add_node(
            node.name,
            _runnable(node, deps, pure),
            retry_policy=_retry_policy(node, deps),
            # Where its Command may go: what LangGraph draws and checks the graph by.
            destinations=node.routes or None,
        )
        if node.entry:
            builder.add_edge(START, node.name)
        if not node.routes:
            builder.add_edge(node.name, END)
    return builder


def _retry_policy(node: Node, deps: RunDeps) -> RetryPolicy | None:
    """A node's in-step retries: for one that calls a model ("model"), the runtime's
    model_retry, worked out from the planner's model; but a summarizer of its own
    (Summarize.model) is retried as its own client calls for (default_model_retry): one
    that retries itself gets no retries on top, one that does not gets its attempts."""
    if node.retry != "model":
        return None
    writer = deps.summarize.model if deps.summarize is not None else deps.model
    if node.name == "summarize" and writer is not deps.model:
        return default_model_retry(writer)
    return deps.model_retry


def build_run_graph(
    deps: RunDeps,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    *,
    nodes: Sequence[Node] = NODES,
) -> CompiledStateGraph[RunState, None, RunState, RunState]:
    """Compile the run graph over ``deps`` from the nodes' declarations, checkpointing to
    ``checkpointer``. ``nodes`` replaces the declarations (a test, a benchmark)."""
    if isinstance(checkpointer, HoldsWrites):  # the nodes store held decisions before acting
        deps = replace(deps, checkpoints=checkpointer)
    compiled: CompiledStateGraph[RunState, None, RunState, RunState] = run_graph_builder(
        deps, nodes=nodes
    ).compile(checkpointer=checkpointer)
    return compiled
