"""One node's step of the run graph: its span, its time, its checks before it begins, and
the Command that sends the run on to the route it chose."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, cast, get_origin, get_type_hints

from langgraph.types import Command
from opentelemetry.trace import Span

from agentrt.budget import Budget, budget_attributes
from agentrt.errors import LeaseLost
from agentrt.nodes import ACTING_NODES, PURE_NODES, Node
from agentrt.nodes.common import next_action
from agentrt.nodes.deps import HeldLease, RunDeps, StepStopped
from agentrt.nodes.plan import answer_recorded, forget_conversation
from agentrt.nodes.reconcile import in_doubt
from agentrt.nodes.stop_watch import stops_asked
from agentrt.nodes.tool import only_reads
from agentrt.nodes.verify import verify
from agentrt.runs.messages import INTERRUPT_BEFORE
from agentrt.state import Event, RunState, Stop, Unset, Usage
from agentrt.tracing.shown import log_secrets

__all__ = ["APPENDED", "changed", "goto", "if_cancelled", "stepping", "stop_check"]


@dataclass(slots=True)
class _Step:
    state: RunState
    """The state the node works from (its active time counted on, see _counting)."""
    update: dict[str, Any] = field(default_factory=dict)


@contextmanager
def stepping(kind: str, state: RunState, deps: RunDeps, held: HeldLease | None) -> Iterator[_Step]:
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
        step.update = changed(update, state)


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


def goto(node: Node, update: dict[str, Any]) -> Command[str]:
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


def changed(update: dict[str, Any], state: RunState) -> dict[str, Any]:
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
        if key == "route" or (value != [] if key in APPENDED else state.get(key, _UNSET) != value)
    }


APPENDED = frozenset(
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


def stop_check(deps: RunDeps, thread_id: str) -> HeldLease | None:
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


def if_cancelled(kind: str, state: RunState, deps: RunDeps) -> dict[str, Any] | None:
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
