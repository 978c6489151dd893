"""One procedure, two ways to run it: a generator of steps, driven sync or async.

agentrt's procedures that do blocking work and must also run on an event loop (driving a
run segment, the ledger's exactly-once logic, a tool's retry loop, the tool node) are
written once, as generators that yield each thing they need done (read the store, call
the tool, run the graph, sleep before a retry) and get its result back. ``drive`` does
each step in the calling thread; ``adrive`` awaits it, with blocking work (SQLite) sent to
a worker thread so the event loop is never held. Nothing decides twice, so the sync and
async paths cannot drift apart. An error a step raises is thrown back into the procedure
at its ``yield``, so its own try/finally (releasing a lease, ending a span) reads as plain
code; cancellation too, so a cancelled async procedure still cleans up. A worker thread
runs on whatever the loop does, so a step whose work must be cleaned up after (taking a
run's lease) is ``unbroken``: the procedure hears of a cancel once that work is over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from functools import wraps
from typing import Any, Concatenate, Generic, ParamSpec, TypeAlias, TypeVar

__all__ = [
    "Step",
    "Steps",
    "adrive",
    "asynchronous",
    "blocking",
    "drive",
    "synchronous",
    "to_thread_unbroken",
    "unbroken",
]

T = TypeVar("T")
_S = TypeVar("_S")
_P = ParamSpec("_P")


@dataclass(frozen=True, slots=True)
class Step(Generic[T]):
    """One thing a procedure needs done, in the form for each driver."""

    sync: Callable[[], T]
    """Does it in the calling thread."""
    aio: Callable[[], Awaitable[T]]
    """Does it without blocking the running event loop."""
    threaded: bool = False
    """A blocking call that ``aio`` sends to a worker thread: another blocking call may
    share that thread's trip (each trip costs the event loop a hand-off)."""


Steps: TypeAlias = Generator[Step[Any], Any, T]
"""A procedure: yields steps, is sent each step's result (or thrown its error), returns T."""


def blocking(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Step[T]:
    """A blocking call (a store method): as it is when sync, in a worker thread when async."""
    return Step(lambda: fn(*args, **kwargs), lambda: asyncio.to_thread(fn, *args, **kwargs), True)


def unbroken(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Step[T]:
    """A blocking call that a cancel does not cut short (taking or letting go a run's
    lease, writing where a run stopped): when async, the cancel is thrown in at its
    ``yield`` once the call is over, so the procedure's cleanup comes after the call's
    write, never beside it, and a lease it took is there to let go."""
    # Not ``threaded``: a trip shared with another call could be cut short by a cancel.
    return Step(lambda: fn(*args, **kwargs), lambda: to_thread_unbroken(fn, *args, **kwargs))


async def to_thread_unbroken(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``asyncio.to_thread``, but a cancel waits for the call to end before it is raised
    (also a cancel that comes again and again, as anyio's cancel scopes send it). The
    thread would go on either way; cut short, its caller would not know what it did, and
    a call not yet begun would never run."""
    call = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    cancelled: asyncio.CancelledError | None = None
    while not call.done():
        try:
            await asyncio.wait((call,))
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        if not call.cancelled():
            call.exception()  # seen: the cancel is what the caller is told
        raise cancelled
    return call.result()


class _Stepper:
    """Where a driven procedure is: the step it waits on, or the value it returned."""

    def __init__(self, steps: Steps[Any]) -> None:
        self._steps = steps
        self.done = False
        self.value: Any = None
        self.step: Step[Any] = blocking(lambda: None)
        self.send(None)

    def send(self, result: Any) -> None:
        """Give the procedure what its step returned; move to its next step."""
        self._advance(lambda: self._steps.send(result))

    def throw(self, error: BaseException) -> None:
        """Raise what its step raised at the procedure's yield; move to its next step."""
        self._advance(lambda: self._steps.throw(error))

    def do_here(self) -> None:
        """Do the current step in this thread and hand its result (or error) on."""
        try:
            result = self.step.sync()
        except BaseException as exc:  # incl. KeyboardInterrupt: the procedure cleans up
            self.throw(exc)
        else:
            self.send(result)

    def _advance(self, resume: Callable[[], Step[Any]]) -> None:
        try:
            self.step = resume()
        except StopIteration as finished:
            self.done, self.value = True, finished.value


def drive(steps: Steps[T]) -> T:
    """Run a procedure in the calling thread; its result, or the error it lets out."""
    stepper = _Stepper(steps)
    while not stepper.done:
        stepper.do_here()
    return stepper.value  # type: ignore[no-any-return]


async def adrive(steps: Steps[T]) -> T:
    """Run a procedure on the running event loop; like ``drive``, awaiting each step."""
    stepper = _Stepper(steps)
    while not stepper.done:
        try:
            result = await stepper.step.aio()
        except BaseException as exc:  # cancellation too: the procedure sees it at its step
            stepper.throw(exc)
        else:
            stepper.send(result)
    return stepper.value  # type: ignore[no-any-return]


def synchronous(
    procedure: Callable[Concatenate[_S, _P], Steps[T]],
) -> Callable[Concatenate[_S, _P], T]:
    """A method that drives ``procedure`` in the caller's thread (``rt.start``)."""

    @wraps(procedure)
    def method(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> T:
        return drive(procedure(self, *args, **kwargs))

    _name(method, procedure.__name__.lstrip("_"))
    return method


def asynchronous(
    procedure: Callable[Concatenate[_S, _P], Steps[T]],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, T]]:
    """A coroutine method that drives ``procedure`` on the running loop (``rt.astart``)."""

    @wraps(procedure)
    async def method(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> T:
        return await adrive(procedure(self, *args, **kwargs))

    _name(method, "a" + procedure.__name__.lstrip("_"))
    method.__doc__ = f"{procedure.__doc__}\n\nThe same operation, on the running event loop."
    return method


def _name(method: Any, name: str) -> None:
    """Name a derived method as the class names it (``_start`` becomes ``start``)."""
    method.__qualname__ = method.__qualname__.rsplit(".", 1)[0] + "." + name
    method.__name__ = name
