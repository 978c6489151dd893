"""The nodes that only decide run in the step of the node that sent the run to them.

A pure node (policy, verify: ``Node.pure``) stores nothing of its own: what it writes waits
for the run's next write (agentrt.store.held), and a crash before then costs deciding again
on resume. A LangGraph superstep of its own bought it nothing but the superstep's cost: the
whole state read into it and its writes applied to every channel, a checkpoint made and
held. So the node before it runs it at once, from the state its own update makes, and
the next after that while the route is a pure node's: tool -> verify -> policy is one step
to LangGraph, which sends the run on to where the last of them chose, and three agent.step
spans in the trace, each node's time on its own. What the step writes is what the nodes
would have written one after another; its checkpoint is the one the last of them would
have been held into.

A pure node is left to a step of its own, as every node had before, when the run stops
before it (this process stops driving the run, its lease is gone, a message interrupts it
there, its check for those fails), when it chooses a route it did not declare, and after
``CHAIN`` of them in one step (a loop of pure nodes still meets LangGraph's recursion
limit): the step ends with what was done before it, and the node runs in a step of its
own, where what happens is what happened before there was this. One that raises is not run
again: its own step raises its error at once (``failed_within``), as LangGraph's step of
it would have. And while a caller streams the run, every node takes a step of its own
(``RunDeps.streamed_threads``), so the caller can stop reading between any two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from langgraph.types import Command

from agentrt.graphs.stepping import APPENDED, changed, goto, if_cancelled, stepping, stop_check
from agentrt.nodes import Node
from agentrt.nodes.deps import RunDeps
from agentrt.state import RunState

__all__ = ["CHAIN", "failed_within", "onward"]

CHAIN = 16
"""Pure nodes one step runs at most."""


def onward(
    node: Node,
    state: RunState,
    update: dict[str, Any],
    deps: RunDeps,
    pure: Mapping[str, Node],
) -> Command[str]:
    """``node``'s Command, having begun from ``state`` and written ``update``, with the pure
    nodes (by name, ``pure``) its route leads to run first."""
    step = dict(update)
    now = _applied(state, update)
    last = node
    for _ in range(CHAIN):
        route = step.get("route")
        then = pure.get(route) if isinstance(route, str) else None
        if then is None or route not in last.routes:
            break
        written = _ran(then, now, deps)
        if written is None:
            break
        step = _joined(step, written)
        now = _applied(now, written)
        last = then
    return goto(last, changed(step, state))


def failed_within(node: Node, state: RunState, deps: RunDeps) -> Exception | None:
    """At the start of every step: what ``node`` raised where it ran in the step before, if
    it did, for its step to raise again rather than run it twice (its span, with the error,
    is there already). Whatever the node, what the step before kept is gone after it: only
    the very next step is the failed node's own, and the segment's end forgets it too (a
    step whose checkpoint was refused has no next step here: agentrt.runs.driver)."""
    failed = deps.failed_within.pop(state["thread_id"], None)
    return failed[1] if failed is not None and failed[0] == node.name else None


def _ran(node: Node, state: RunState, deps: RunDeps) -> dict[str, Any] | None:
    """What ``node`` writes from ``state``, in its own agent.step span; None if it is left
    to a step of its own (the run stops before it, it raises, it goes astray)."""
    try:
        held = stop_check(deps, state["thread_id"])
        stop = if_cancelled(node.name, state, deps)
    except Exception:  # said again in its own step, where it stops the run
        return None
    try:
        with stepping(node.name, state, deps, held) as step:
            assert node.body is not None
            step.update = stop or node.body(step.state, deps)
    except Exception as exc:  # raised again in its own step (failed_within)
        deps.failed_within[state["thread_id"]] = (node.name, exc)
        return None
    if node.routes and step.update.get("route") not in node.routes:
        return None
    return step.update


def _applied(state: RunState, update: Mapping[str, Any]) -> RunState:
    """``state`` after ``update``, as LangGraph would apply it: the log appended to."""
    now: dict[str, Any] = {**state, **update}
    now.pop("route", None)
    for key in APPENDED & update.keys():
        now[key] = [*cast(Mapping[str, Any], state).get(key, ()), *update[key]]
    return cast(RunState, now)


def _joined(step: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """One update that writes what ``step`` and then ``update`` write."""
    joined = {**step, **update}
    for key in APPENDED & update.keys() & step.keys():
        joined[key] = [*step[key], *update[key]]
    return joined
