"""One procedure, two ways to run it: a generator of steps, driven sync or async.

The ledger's exactly-once logic and the runner's retry loop are written once, as
generators that yield each thing they need done (read the store, call the tool, sleep
before a retry) and get its result back. ``drive`` does each step in the calling thread;
``adrive`` awaits it, with blocking work (SQLite) sent to a worker thread so the event
loop is never held. Nothing decides twice, so the sync and async paths cannot drift apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

__all__ = ["Step", "Steps", "adrive", "blocking", "drive"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Step(Generic[T]):
    """One thing a procedure needs done, in the form for each driver."""

    sync: Callable[[], T]
    """Does it in the calling thread."""
    aio: Callable[[], Awaitable[T]]
    """Does it without blocking the running event loop."""


Steps: TypeAlias = Generator[Step[Any], Any, T]
"""A procedure: yields steps, is sent each step's result (or thrown its error), returns T."""


def blocking(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Step[T]:
    """A blocking call (a store method): as it is when sync, in a worker thread when async."""
    return Step(lambda: fn(*args, **kwargs), lambda: asyncio.to_thread(fn, *args, **kwargs))


def drive(steps: Steps[T]) -> T:
    """Run a procedure in the calling thread; its result, or the error it lets out."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            value, error = step.sync(), None
        except BaseException as exc:  # handed to the procedure, which may handle it
            value, error = None, exc


async def adrive(steps: Steps[T]) -> T:
    """Run a procedure on the running event loop; like ``drive``, awaiting each step."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            value, error = await step.aio(), None
        except BaseException as exc:  # cancellation too: the procedure sees it at its step
            value, error = None, exc
