"""Streaming a run: its events as they happen, from LangGraph's own stream.

A run segment is driven by one procedure (agentrt.steps) whichever way it is watched: the
driver yields its graph run as a ``GraphRun`` step, which ``drive`` and ``adrive`` simply
invoke, and ``stream`` and ``astream`` here run with LangGraph's ``stream`` instead, in
the modes ``tasks`` (a node started, a node ended with its writes and interrupts),
``messages`` (the chat model's tokens as it streams them) and ``custom`` (what a node or a
tool wrote with ``langgraph.config.get_stream_writer``). ``Translate`` turns those chunks
into ``agentrt.events.StreamEvent``: the log's own entries as a node writes them, and the
live kinds (step_started, token, tool_call, gate, budget_warning, ...).

A caller that stops iterating does not cut a node off in the middle of an effect: its run
is marked to stop before its next node (``RunDeps.stopping_threads``), the node in flight
finishes and is checkpointed, and the driver leaves the run running, let go, for
``resume`` to carry on. So while a caller streams a run, every node takes a LangGraph step
of its own (``RunDeps.streamed_threads``), the pure ones too, which otherwise run in the
step before them (agentrt.graphs.onward): one who stops reading after a tool's result
leaves the run before its verify, where a message sent to interrupt it still stops the
rest of its plan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from langchain_core.messages import AIMessageChunk
from langgraph.types import StateSnapshot

from agentrt.budget import Budget
from agentrt.events import WARN_AT, StreamEvent, StreamKind
from agentrt.nodes.deps import RunDeps
from agentrt.runs.held_writes import aholding, holding
from agentrt.steps import Step, Steps, _Stepper

__all__ = [
    "INTERRUPT_KEY",
    "SETTLED_KEYS",
    "GraphRun",
    "Translate",
    "astream",
    "astreamed",
    "ended_state",
    "final_values",
    "graph_run",
    "read_ended",
    "stream",
    "streamed",
]

_S = TypeVar("_S")
_P = ParamSpec("_P")

_MODES = ["tasks", "messages", "custom"]
INTERRUPT_KEY = "__interrupt__"
"""Where invoke's answer holds the interrupts that stopped the run (LangGraph's own key)."""
_ACTION_NODES = ("tool", "commit")
SETTLED_KEYS = ("status", "usage", "events", "stop", "output", "error")
"""What a segment's end is written from (runs.settling, and its log's secrets): all invoke
answers. LangGraph reads the keys it answers after every step, so not the whole state."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphRun(Step[Any]):
    """A run of the graph until it stops: invoked when driven, streamed when watched."""

    thread_id: str
    chunks: Callable[[], Iterator[Any]]
    """LangGraph's (mode, chunk) pairs, in the calling thread."""
    achunks: Callable[[], AsyncIterator[Any]]
    """The same on the running event loop."""
    given: tuple[Mapping[str, Any], ...] = ()
    """Log entries the run's input appends (a follow-up message): no node writes them."""


def graph_run(graph: Any, graph_input: Any, cfg: Any, owner: str | None = None) -> GraphRun:
    """Run ``graph`` until it stops, checkpointing each step (durability sync; what the
    pure nodes write waits for the next write, agentrt.runs.held_writes), each write only
    while ``owner`` (if given) still holds the run's lease."""
    thread_id = cfg["configurable"]["thread_id"]

    def invoke() -> Any:
        with holding(graph, thread_id, owner):
            return graph.invoke(graph_input, cfg, durability="sync", output_keys=SETTLED_KEYS)

    async def ainvoke() -> Any:
        async with aholding(graph, thread_id, owner):
            return await graph.ainvoke(
                graph_input, cfg, durability="sync", output_keys=SETTLED_KEYS
            )

    def chunks() -> Iterator[Any]:
        with holding(graph, thread_id, owner):
            yield from graph.stream(graph_input, cfg, durability="sync", stream_mode=_MODES)

    async def achunks() -> AsyncIterator[Any]:
        async with aholding(graph, thread_id, owner):
            async for chunk in graph.astream(
                graph_input, cfg, durability="sync", stream_mode=_MODES
            ):
                yield chunk

    return GraphRun(
        invoke,
        ainvoke,
        thread_id=thread_id,
        chunks=chunks,
        achunks=achunks,
        given=tuple(graph_input.get("events") or ()) if isinstance(graph_input, Mapping) else (),
    )


def final_values(ended: Any) -> bool:
    """True if ``ended`` is what invoke answered (the run's state as the graph stopped);
    a streamed run answers None."""
    return isinstance(ended, Mapping) and "status" in ended


def ended_state(snapshot: StateSnapshot) -> dict[str, Any]:
    """A checkpoint's state in the shape invoke answers: the values, and the gate's
    interrupts under ``__interrupt__`` when one waits. Settling from invoke's answer spares
    reading the checkpoint back, which rebuilds the whole event log from its deltas."""
    ended = dict(snapshot.values)
    if snapshot.interrupts:
        ended[INTERRUPT_KEY] = snapshot.interrupts
    return ended


def read_ended(graph: Any, cfg: Any) -> Step[dict[str, Any]]:
    """What a run ended with, read from its checkpoint (a streamed run's answer is None)."""

    async def aread() -> dict[str, Any]:
        return ended_state(await graph.aget_state(cfg))

    return Step(lambda: ended_state(graph.get_state(cfg)), aread)


def stream(steps: Steps[Any], deps: RunDeps) -> Iterator[StreamEvent]:
    """Drive ``steps`` in the calling thread, yielding each graph run's events as they
    happen. Closing the iterator early stops the run before its next node, resumable."""
    stepper = _Stepper(steps)
    while not stepper.done:
        step = stepper.step
        if not isinstance(step, GraphRun):
            stepper.do_here()
            continue
        translate = Translate(step.thread_id, list(step.given))
        chunks = step.chunks()
        deps.streamed_threads.add(step.thread_id)
        try:
            for chunk in chunks:
                yield from translate(chunk)
        except GeneratorExit:
            deps.stopping_threads.add(step.thread_id)
            try:
                try:
                    for _ in chunks:  # the node in flight ends; the next one stops
                        pass
                except BaseException as exc:
                    stepper.throw(exc)
                else:
                    stepper.send(None)
                while not stepper.done:
                    stepper.do_here()
            finally:
                deps.stopping_threads.discard(step.thread_id)
            raise
        except BaseException as exc:
            stepper.throw(exc)
        else:
            stepper.send(None)
        finally:
            deps.streamed_threads.discard(step.thread_id)


async def astream(steps: Steps[Any], deps: RunDeps) -> AsyncIterator[StreamEvent]:
    """``stream`` on the running event loop. Leave it early with ``aclose()`` (or
    ``contextlib.aclosing``) for the run to stop at once rather than when it is collected."""
    stepper = _Stepper(steps)
    while not stepper.done:
        step = stepper.step
        if not isinstance(step, GraphRun):
            try:
                result = await step.aio()
            except BaseException as exc:
                stepper.throw(exc)
            else:
                stepper.send(result)
            continue
        translate = Translate(step.thread_id, list(step.given))
        chunks = step.achunks()
        deps.streamed_threads.add(step.thread_id)
        try:
            async for chunk in chunks:
                for event in translate(chunk):
                    yield event
        except GeneratorExit:
            deps.stopping_threads.add(step.thread_id)
            try:
                try:
                    async for _ in chunks:
                        pass
                except BaseException as exc:
                    stepper.throw(exc)
                else:
                    stepper.send(None)
                while not stepper.done:
                    try:
                        result = await stepper.step.aio()
                    except BaseException as exc:
                        stepper.throw(exc)
                    else:
                        stepper.send(result)
            finally:
                deps.stopping_threads.discard(step.thread_id)
            raise
        except BaseException as exc:
            stepper.throw(exc)
        else:
            stepper.send(None)
        finally:
            deps.streamed_threads.discard(step.thread_id)


@dataclass(slots=True)
class Translate:
    """LangGraph's stream chunks of one run, as agentrt's events."""

    thread_id: str
    given: list[Mapping[str, Any]] = field(default_factory=list)
    """The input's own log entries, yielded before the first node's events."""
    _before: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    """Each running task's usage when it started, to warn on a limit it crosses."""

    def __call__(self, chunk: Any) -> list[StreamEvent]:
        mode, payload = chunk
        if mode == "messages":
            return self._token(*payload)
        if mode == "custom":
            data = payload if isinstance(payload, Mapping) else {"value": payload}
            return [self._event("custom", data)]
        if "result" not in payload:
            return self._started(payload)
        return self._ended(payload)

    def _event(
        self, kind: str, data: Mapping[str, Any], step_id: Any = None, index: int | None = None
    ) -> StreamEvent:
        return StreamEvent(
            thread_id=self.thread_id,
            type=cast(StreamKind, kind),
            data=data,
            step_id=step_id if isinstance(step_id, str) else None,
            index=index,
        )

    def _token(self, message: Any, meta: Mapping[str, Any]) -> list[StreamEvent]:
        if not isinstance(message, AIMessageChunk):
            return []
        text = message.text
        if not text:
            return []
        return [self._event("token", {"text": text, "node": meta.get("langgraph_node", "")})]

    def _started(self, task: Mapping[str, Any]) -> list[StreamEvent]:
        node = str(task.get("name"))
        state = task.get("input")
        state = state if isinstance(state, Mapping) else {}
        self._before[str(task.get("id"))] = state
        action = _action(node, state)
        step_id = action.get("step_id") if action else None
        # The first node sees the input's entries last in the log: numbered from there.
        at = len(state.get("events") or ()) - len(self.given)
        events = [
            self._event(e["type"], e.get("data") or {}, e.get("step_id"), at + i)
            for i, e in enumerate(self.given)
        ]
        self.given = []
        events.append(self._event("step_started", {"node": node}, step_id))
        if node in _ACTION_NODES and action:
            call = {
                "tool": action.get("tool"),
                "args": action.get("args", {}),
                "call_id": action.get("call_id"),
                "node": node,
            }
            events.append(self._event("tool_call", call, step_id))
        return events

    def _ended(self, task: Mapping[str, Any]) -> list[StreamEvent]:
        node = str(task.get("name"))
        state = self._before.pop(str(task.get("id")), {})
        result = task.get("result")
        writes: Mapping[str, Any] = result if isinstance(result, Mapping) else {}
        action = _action(node, state)
        step_id = action.get("step_id") if action else None
        # The node saw the log up to here, so its entries follow on from there.
        logged = len(state.get("events") or ())
        written = [e for e in writes.get("events") or () if isinstance(e, Mapping) and "type" in e]
        events = [
            self._event(e["type"], e.get("data") or {}, e.get("step_id"), logged + i)
            for i, e in enumerate(written)
        ]
        outcome = writes.get("outcome")
        if node in _ACTION_NODES and isinstance(outcome, Mapping) and action:
            got = {
                "tool": action.get("tool"),
                "kind": outcome.get("kind"),
                "content": outcome.get("content"),
                "node": node,
            }
            events.append(self._event("tool_result", got, step_id))
        events += self._warnings(state, writes)
        for asked in task.get("interrupts") or ():
            value = asked.get("value") if isinstance(asked, Mapping) else None
            if isinstance(value, Mapping) and "approvals" in value:
                events.append(self._event("gate", {"approvals": list(value["approvals"])}))
        error = task.get("error")
        ended = {"node": node, "error": None if error is None else str(error)}
        events.append(self._event("step_ended", ended, step_id))
        return events

    def _warnings(self, state: Mapping[str, Any], writes: Mapping[str, Any]) -> list[StreamEvent]:
        """A warning for each limit this step took past WARN_AT of its value."""
        after = writes.get("usage")
        if not isinstance(after, Mapping):
            return []
        before = state.get("usage") or {}
        budget = Budget.from_dict(writes.get("budget") or state.get("budget"))
        events = []
        for limit, used_of in _SPENT.items():
            cap = getattr(budget, limit)
            if cap is None or cap <= 0:
                continue
            used, was = used_of(after), used_of(before)
            if was < WARN_AT * cap <= used:
                events.append(
                    self._event("budget_warning", {"limit": limit, "used": used, "max": cap})
                )
        return events


def _action(node: str, state: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The plan step an action node works on; plan and finish have none."""
    if node in ("plan", "finish", "summarize"):
        return None
    plan = state.get("plan")
    cursor = state.get("cursor", 0)
    if not isinstance(plan, Mapping) or cursor >= len(plan.get("actions") or ()):
        return None
    found = plan["actions"][cursor]
    return found if isinstance(found, Mapping) else None


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


_SPENT: dict[str, Callable[[Mapping[str, Any]], float]] = {
    "max_tokens": lambda u: _num(u.get("input_tokens")) + _num(u.get("output_tokens")),
    "max_cost_usd": lambda u: _num(u.get("cost_usd")),
    "max_tool_calls": lambda u: _num(u.get("tool_calls")),
    "max_steps": lambda u: _num(u.get("steps")),
    "max_active_seconds": lambda u: _num(u.get("active_seconds")),
}
"""What each Budget limit counts, read from a usage record."""


def streamed(
    procedure: Callable[Concatenate[_S, _P], Steps[Any]],
) -> Callable[Concatenate[_S, _P], Iterator[StreamEvent]]:
    """A method that streams ``procedure``'s events in the caller's thread (``rt.stream``)."""

    @wraps(procedure)
    def method(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> Iterator[StreamEvent]:
        return stream(procedure(self, *args, **kwargs), _deps(self))

    _name(method, "stream" + procedure.__name__.removeprefix("_start"), procedure)
    return method


def astreamed(
    procedure: Callable[Concatenate[_S, _P], Steps[Any]],
) -> Callable[Concatenate[_S, _P], AsyncIterator[StreamEvent]]:
    """A method that streams ``procedure``'s events on the running loop (``rt.astream``)."""

    @wraps(procedure)
    def method(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> AsyncIterator[StreamEvent]:
        return astream(procedure(self, *args, **kwargs), _deps(self))

    _name(method, "astream" + procedure.__name__.removeprefix("_start"), procedure)
    return method


def _deps(runtime: Any) -> RunDeps:
    deps: RunDeps = runtime.deps
    return deps


def _name(method: Any, name: str, procedure: Any) -> None:
    """``_start`` streams as ``stream``, ``_resume`` as ``stream_resume``."""
    method.__qualname__ = method.__qualname__.rsplit(".", 1)[0] + "." + name
    method.__name__ = name
    method.__doc__ = (
        f"{procedure.__doc__}\n\nStreamed: yields the run's events (agentrt.events.StreamEvent) "
        "as they happen; stopping early leaves the run resumable."
    )
