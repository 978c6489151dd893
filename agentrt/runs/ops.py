"""One implementation of each operation, driven either synchronously or on an event loop.

An operation (start a run, resume it, decide, sweep) is written once, as a generator that
yields what it needs done and receives the result:

- ``Call(fn, *args)``: blocking work (the store, a lease, settling the row). The sync
  driver calls it in place; the async driver runs it in a worker thread, so the event loop
  never waits on SQLite's lock while hundreds of runs share it.
- ``Invoke(graph, input, config)``: run the graph (``invoke`` or ``ainvoke``, so the async
  planner awaits its model without holding a thread).
- ``Snapshot(graph, config)``: the thread's state (``get_state`` or ``aget_state``).

An exception raised by the work is thrown back into the generator at its ``yield``, so the
operation's own try/finally (releasing a lease, ending a span) reads as plain code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar

__all__ = [
    "Call",
    "Invoke",
    "Operation",
    "Snapshot",
    "asynchronous",
    "run_async",
    "run_sync",
    "synchronous",
]

_T = TypeVar("_T")
_S = TypeVar("_S")
_P = ParamSpec("_P")


@dataclass(frozen=True, slots=True)
class Call:
    """Blocking work: ``fn(*args, **kwargs)``."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] | None = None

    @classmethod
    def of(cls, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Call:
        return cls(fn, args, kwargs or None)


@dataclass(frozen=True, slots=True)
class Invoke:
    """Run ``graph`` on ``input`` for the thread in ``config``, checkpointing each step."""

    graph: Any
    input: Any
    config: Any


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of the thread in ``config``."""

    graph: Any
    config: Any


Op = Call | Invoke | Snapshot
Operation = Generator[Op, Any, _T]


class _Stepper:
    """Where a driven operation is: the op it waits on, or the value it returned."""

    def __init__(self, operation: Operation[Any]) -> None:
        self._operation = operation
        self.done = False
        self.value: Any = None
        self.op: Op = Call(lambda: None)
        self.send(None)

    def send(self, result: Any) -> None:
        """Give the operation what its op returned; move to its next op."""
        self._advance(lambda: self._operation.send(result))

    def throw(self, error: BaseException) -> None:
        """Raise what its op raised at the operation's yield; move to its next op."""
        self._advance(lambda: self._operation.throw(error))

    def outcome(self, do: Callable[[Op], Any]) -> None:
        """Do the current op in this thread and hand its result (or error) on."""
        try:
            result = do(self.op)
        except BaseException as exc:  # incl. KeyboardInterrupt: the operation cleans up
            self.throw(exc)
        else:
            self.send(result)

    def _advance(self, resume: Callable[[], Op]) -> None:
        try:
            self.op = resume()
        except StopIteration as finished:
            self.done, self.value = True, finished.value


def run_sync(operation: Operation[_T]) -> _T:
    """Drive ``operation`` in this thread."""
    step = _Stepper(operation)
    while not step.done:
        step.outcome(_do_sync)
    return step.value  # type: ignore[no-any-return]


async def run_async(operation: Operation[_T]) -> _T:
    """Drive ``operation`` on the running event loop."""
    step = _Stepper(operation)
    while not step.done:
        try:
            result = await _do_async(step.op)
        except BaseException as exc:  # incl. cancellation: the operation cleans up first
            step.throw(exc)
        else:
            step.send(result)
    return step.value  # type: ignore[no-any-return]


def _do_sync(op: Op) -> Any:
    if isinstance(op, Call):
        return op.fn(*op.args, **(op.kwargs or {}))
    if isinstance(op, Invoke):
        return op.graph.invoke(op.input, op.config, durability="sync")
    return op.graph.get_state(op.config)


async def _do_async(op: Op) -> Any:
    if isinstance(op, Call):
        return await asyncio.to_thread(op.fn, *op.args, **(op.kwargs or {}))
    if isinstance(op, Invoke):
        return await op.graph.ainvoke(op.input, op.config, durability="sync")
    return await op.graph.aget_state(op.config)


def synchronous(
    operation: Callable[Concatenate[_S, _P], Operation[_T]],
) -> Callable[Concatenate[_S, _P], _T]:
    """A method that drives ``operation`` in the caller's thread (``rt.start``)."""

    @wraps(operation)
    def method(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return run_sync(operation(self, *args, **kwargs))

    _name(method, operation.__name__.lstrip("_"))
    return method


def asynchronous(
    operation: Callable[Concatenate[_S, _P], Operation[_T]],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _T]]:
    """A coroutine method that drives ``operation`` on the running loop (``rt.astart``)."""

    @wraps(operation)
    async def method(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await run_async(operation(self, *args, **kwargs))

    _name(method, "a" + operation.__name__.lstrip("_"))
    method.__doc__ = f"{operation.__doc__}\n\nThe same operation, on the running event loop."
    return method


def _name(method: Any, name: str) -> None:
    """Name a derived method as the class names it (``_start`` becomes ``start``)."""
    method.__qualname__ = method.__qualname__.rsplit(".", 1)[0] + "." + name
    method.__name__ = name
