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
(a Command) only if the node declared that route, so the drawn graph is the design.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Annotated, Any, TypeVar, cast, get_origin, get_type_hints

from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, RetryPolicy
from opentelemetry.trace import Span

from agentrt.budget import Budget, budget_attributes
from agentrt.errors import LeaseLost
from agentrt.models import default_model_retry
from agentrt.nodes import ACTING_NODES, NODES, PURE_NODES, Node
from agentrt.nodes.common import next_action
from agentrt.nodes.deps import HeldLease, RunDeps, StepStopped
from agentrt.nodes.plan import answer_recorded, forget_conversation
from agentrt.nodes.reconcile import in_doubt
from agentrt.nodes.stop_watch import stops_asked
from agentrt.nodes.tool import only_reads
from agentrt.nodes.verify import verify
from agentrt.runs.messages import INTERRUPT_BEFORE
from agentrt.state import Event, RunState, Stop, Unset, Usage
from agentrt.steps import Step, Steps, adrive, blocking, drive
from agentrt.store.held import HoldsWrites
from agentrt.tracing.shown import log_secrets

__all__ = ["ROUTES", "build_run_graph", "run_graph_builder"]

_T = TypeVar("_T")

ROUTES: dict[str, tuple[str, ...]] = {n.name: n.routes for n in NODES if n.routes}
"""Per node, the routes it may take (finish has none: the run ends)."""


@dataclass(slots=True)
class _Step:
    state: RunState
    """The state the node works from (its active time counted on, see _counting)."""
    update: dict[str, Any] = field(default_factory=dict)


@contextmanager
def _stepping(kind: str, state: RunState, deps: RunDeps, held: HeldLease | None) -> Iterator[_Step]:
    """One node inside its agent.step span, adding its time to the run's active time.

    Only node time counts: time spent waiting for a person happens between nodes. The
    run's lease (``held``) is told, in memory, when the node begins and what the run's
    active time is when it ends: its renewals write that onto the run's row, the node in
    flight's time so far included, so a process killed inside the node leaves it there.
    """
    started = deps.clock()
    step = _Step(_counting(state, held, started))
    # An error that ends the node is masked too with what the run's log holds.
    tracing = deps.tracing
    known = partial(log_secrets, state.get("events", ()), tracing.redactor, tracing.sensitive_of)
    with tracing.step(kind, state["thread_id"], _step_id(kind, state), known=known) as span:
        try:
            yield step
        except BaseException:
            # The graph stops here (a gate's interrupt, a failure): the run goes on from its
            # log read back anew, which the kept conversation is never matched against.
            forget_conversation(state["thread_id"])
            if held is not None:  # the node's time is not counted, as in its checkpoint
                held.counted = (step.state["usage"]["active_seconds"], None)
            raise
        update = _accounted(step.update, step.state, deps, started, span)
        if held is not None:
            held.counted = (update["usage"]["active_seconds"], None)
        # Against the checkpoint's state: active time counted on is written even when the
        # node added none.
        step.update = _changed(update, state)


def _counting(state: RunState, held: HeldLease | None, started: float) -> RunState:
    """The state a node beginning at ``started`` works from, noted on the run's lease.

    A segment killed inside a node left on the run's row what it spent there (the lease's
    renewals wrote it; the driver gave it to ``held``), which no checkpoint holds: the run
    counts on from the larger of the two, so a resume never hands that time out again,
    and the node's budget checks see it. Only a live driver renews, so no time when no
    process held the run is in it."""
    if held is None:
        return state
    active = state["usage"]["active_seconds"]
    counted = held.counted
    if counted is not None and counted[0] > active:
        active = counted[0]
        state = cast(RunState, {**state, "usage": {**state["usage"], "active_seconds": active}})
    held.counted = (active, started)  # one value swapped: the renewing thread reads it whole
    return state


def _body(node: Node, state: RunState, deps: RunDeps) -> Command[str]:
    held = _stop_check(deps, state["thread_id"])
    with _stepping(node.name, state, deps, held) as step:
        assert node.body is not None
        step.update = _cancelled(node.name, step.state, deps) or node.body(step.state, deps)
    return _goto(node, step.update)


def _steps(node: Node, state: RunState, deps: RunDeps) -> Steps[Command[str]]:
    held = _stop_check(deps, state["thread_id"])
    with _stepping(node.name, state, deps, held) as step:
        assert node.steps is not None
        now = step.state
        step.update = yield from _checked(node.name, now, deps, node.steps(now, deps))
    return _goto(node, step.update)


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
        stopped: dict[str, Any] | None = yield blocking(_cancelled, kind, state, deps)
        return stopped or done.value
    cancelled: dict[str, Any] | None
    if not first.threaded:
        cancelled = yield blocking(_cancelled, kind, state, deps)
        if cancelled is not None:
            steps.close()
            return cancelled
        return (yield from _rest(steps, first))

    def check_then_call() -> tuple[dict[str, Any] | None, Any, Exception | None]:
        cancelled = _cancelled(kind, state, deps)  # its error is the segment's, as before
        if cancelled is not None:
            return cancelled, None, None
        try:
            return None, first.sync(), None
        except Exception as exc:  # the node's own call failed: the node sees it
            return None, None, exc

    try:
        cancelled, result, error = yield blocking(check_then_call)
    except BaseException:
        steps.close()
        raise
    if cancelled is not None:
        steps.close()
        return cancelled
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


def _goto(node: Node, update: dict[str, Any]) -> Command[str]:
    """The node's update, sent on to the route it chose, which must be one it declared.

    The node names its next node itself (a Command) rather than through a conditional
    edge: LangGraph runs a conditional edge on a fresh copy of every channel of the state,
    which cost more than the rest of an empty node's machinery. The route is not written
    to the state: the Command carries it (LangGraph checkpoints where it goes), and a
    channel written at every node costs every checkpoint a version and a write.
    """
    target = update.pop("route", None)
    if not node.routes:
        return Command(update=update)
    if target not in node.routes:
        raise RuntimeError(f"node {node.name!r} chose route {target!r}; allowed: {node.routes!r}")
    return Command(update=update, goto=target)


_UNSET = object()


def _changed(update: dict[str, Any], state: RunState) -> dict[str, Any]:
    """The update without the values the state already holds.

    LangGraph gives every channel written a new version and a checkpoint write, whatever
    the value; no node of this graph waits on a channel's version (each is sent on by its
    Command), so a value written again is only cost: a node resets its action's verdict,
    outcome and gate each time, mostly to what they already are. A channel written through
    a reducer (the event log) is appended to: only an empty batch is dropped there.
    """
    return {
        key: value
        for key, value in update.items()
        if key == "route" or (value != [] if key in _APPENDED else state.get(key, _UNSET) != value)
    }


_APPENDED = frozenset(
    key
    for key, hint in get_type_hints(RunState, include_extras=True).items()
    if get_origin(hint) is Annotated and not isinstance(hint.__metadata__[0], Unset)
)
"""The channels a write appends to (through a reducer) rather than replaces: the log."""


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


def _stop_check(deps: RunDeps, thread_id: str) -> HeldLease | None:
    """Before a node's work: if this process stops driving the run, or has lost its lease,
    stop here. The node has not run, so the checkpoint before it is where the run goes on,
    in whichever process resumes it (or holds its lease now). The lease the run's segment
    holds here, if any, which goes on."""
    if thread_id in deps.stopping_threads:
        raise StepStopped("this process stops driving the run here; resume carries it on")
    held = deps.held_leases.get(thread_id)
    if held is not None and held.lost:
        raise LeaseLost(thread_id, held.owner)
    return held


def _cancelled(kind: str, state: RunState, deps: RunDeps) -> dict[str, Any] | None:
    """If someone asked to cancel the run while this process drives it, the update that
    ends it here, before the node's work: between steps, never inside an effect. Before a
    node that acts on a pure node's decision, that decision is stored first
    (agentrt.store.held), in the same trip; not before a read, which is no effect. Before
    verify, the effect just done is told first (its observation), so the run's log holds
    every effect that acted before it ends, and a call left in doubt is told as such."""
    if kind == "finish":
        return None
    if kind in ACTING_NODES and deps.checkpoints is not None and not only_reads(kind, state, deps):
        deps.checkpoints.flush(state["thread_id"])
    thread_id = state["thread_id"]
    mark = deps.store.stop_mark()
    if not deps.stop_watch.due(thread_id, mark, always_unmarked=kind not in _LOOKS_WHEN_DUE):
        return None
    asked = stops_asked()
    reason, interrupt = deps.store.stop_requests(thread_id)
    if reason is None:
        if interrupt and kind in INTERRUPT_BEFORE and not _answered(state, deps):
            # A message was sent to interrupt the run: it stops here, where nothing is half
            # done, and whoever drives it next takes the message (agentrt.runs.messages).
            raise StepStopped("a new message interrupts the run; it is taken next")
        if interrupt:  # waiting for a node it may stop before: every node looks till then
            deps.stop_watch.forget(thread_id)
        else:
            deps.stop_watch.looked(thread_id, asked, mark)
        return None
    told: list[Event] = []
    if kind == "verify" and state.get("outcome") is not None:
        # verify only reads what the tool returned: its log lines are what the run would
        # have said of the effect at its next step (none for a preview, which acted on
        # nothing); the rest of its update (the cursor, the next route) goes nowhere.
        told = verify(state, deps).get("events", [])
    # A call in doubt (before reconcile, say) is never settled once the run ends: its log
    # and error say so, rather than end as if nothing had acted.
    doubted, doubt = in_doubt(deps.store, thread_id, state)
    if doubt is not None:
        reason = f"{reason}; {doubt}"
    stop: dict[str, Any] = {"stop": Stop(status="cancelled", reason=reason), "route": "finish"}
    if told or doubted:
        stop["events"] = [*told, *doubted]
    return stop


def _answered(state: RunState, deps: RunDeps) -> bool:
    """The run's next plan step has its answer recorded already (plan.answer_recorded)."""
    return answer_recorded(deps.store, state["thread_id"], state["usage"]["steps"])


_LOOKS_WHEN_DUE = PURE_NODES - INTERRUPT_BEFORE
"""Before these (verify), on a store with no stop mark, a run looks for a stop request
only when one may be new (agentrt.nodes.stop_watch): a pure node where no interrupt stops
the run. Before policy, where one does, it always looks there: a message sent to stop the
rest of a plan is seen before its next action, from whichever process it came. With a
mark, every node looks only when the mark moved (or the look is stale)."""


def _step_id(kind: str, state: RunState) -> str | None:
    """The plan step an action node works on; plan and finish have none."""
    action = None if kind in ("plan", "finish") else next_action(state)
    return None if action is None else action["step_id"]


def _runnable(node: Node, deps: RunDeps) -> Any:
    """The node as LangGraph runs it: a plain function, or, for a body written as steps, a
    sync body for invoke and an async one for ainvoke.

    LangGraph wraps a plain function node in its RunnableCallable with tracing off; a
    RunnableLambda would run LangChain's callback machinery on every call, which made the
    per-node overhead benchmark 18% slower. LangGraph keeps that class private, so if it
    moves, the node falls back to the public, slower equivalent.
    """
    if node.steps is None:
        return partial(_body, node, deps=deps)

    def sync(state: RunState) -> Command[str]:
        return drive(_steps(node, state, deps))

    async def aio(state: RunState) -> Command[str]:
        return await adrive(_steps(node, state, deps))

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
) -> StateGraph[RunState, None, Any, Any]:
    """The run graph over ``deps`` from the nodes' declarations, not yet compiled: a graph
    served by a LangGraph API server (agentrt.governed.served) adds its own first node.
    ``input_schema`` and ``output_schema``: what the graph takes and answers (None: the
    whole RunState)."""
    builder: StateGraph[RunState, None, Any, Any] = StateGraph(
        RunState, input_schema=input_schema, output_schema=output_schema
    )
    for node in nodes:
        builder.add_node(
            node.name,
            _runnable(node, deps),
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
