"""The tool loop: one long-lived event loop in a background thread, where async tools run.

A client session that belongs to an event loop (an MCP session, an HTTP connection pool, an
asyncio.Lock) works only on the loop it was made on. Runs are driven from many places: a
sync ``rt.start`` with no loop at all, a worker thread of LangGraph's pool, FastAPI's or
Jupyter's loop. So every async tool call, and every toolset's start, listing and close, is
sent to this one loop, whichever thread or loop asks, and a session made at start-up is
still usable on the thousandth call.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import os
import threading
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread", "LoopTimeout", "default_loop"]

T = TypeVar("T")


class LoopTimeout(TimeoutError):
    """A coroutine on the tool loop outlived its timeout and was cancelled there."""

    def __init__(self, timeout: float, *, left_running: bool = False) -> None:
        self.timeout = timeout
        self.left_running = left_running
        """True if it did not stop within the loop's cancel_grace after being cancelled (it
        swallowed the cancellation): the caller stopped waiting, the coroutine goes on."""
        tail = (
            "; it ignored the cancellation and is left running on the tool loop"
            if left_running
            else ""
        )
        super().__init__(f"did not finish within {timeout:g}s and was cancelled{tail}")


class LoopThread:
    """An event loop running forever in a daemon thread, fed from any thread or loop.

    ``run(coro, timeout)`` blocks the calling thread until the coroutine has run on this
    loop (from a thread with no loop, or one whose loop is running, as in Jupyter);
    ``await arun(coro, timeout)`` does the same without blocking the caller's loop. At its
    timeout the coroutine is cancelled on this loop (it sees CancelledError and may clean
    up) before LoopTimeout is raised. The caller's context variables (the current span)
    go with the call. ``close()`` cancels what is still running and ends the thread.
    """

    def __init__(self, name: str = "agentrt-tools", *, cancel_grace: float = 5.0) -> None:
        self.name = name
        """The thread's name, as it shows in a stack dump."""
        self.cancel_grace = cancel_grace
        """Seconds a cancelled coroutine gets to stop before the caller stops waiting."""
        self.pid = os.getpid()
        """The process that made it: after a fork the child has the object, not the thread."""
        self._loop = asyncio.new_event_loop()
        self._closed = False
        self._state = threading.Lock()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name=name, daemon=True)
        self._thread.start()
        ready.wait()

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(ready.set)
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop itself (to compare, or to make loop-bound objects for it)."""
        return self._loop

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def thread_ident(self) -> int | None:
        """The loop's thread id: code there must await (``arun``), never block (``run``)."""
        return self._thread.ident

    def run(self, aw: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``aw`` on this loop and wait for its result in the calling thread."""
        self._check_usable(aw)
        if threading.get_ident() == self._thread.ident:
            _discard(aw)
            raise RuntimeError(
                f"LoopThread {self.name!r}: run() was called on the loop's own thread, where "
                "it would wait for itself forever; use `await loop.arun(...)` there"
            )
        done = self._submit(aw, timeout)
        wait = None if timeout is None else timeout + self.cancel_grace
        try:
            return done.result(wait)
        except BaseException as exc:
            if done.done():
                raise  # the coroutine's own outcome (LoopTimeout included)
            done.cancel()  # our wait ran out, or this thread was interrupted: stop it there
            if isinstance(exc, TimeoutError) and timeout is not None:
                raise LoopTimeout(timeout, left_running=True) from None
            raise

    async def arun(self, aw: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``aw`` on this loop and await its result from any loop (this one included)."""
        self._check_usable(aw)
        if asyncio.get_running_loop() is self._loop:
            return await _bounded(aw, timeout, contextvars.copy_context())
        waiting = asyncio.wrap_future(self._submit(aw, timeout))
        if timeout is None:
            return await waiting  # a cancelled caller cancels the call on the tool loop too
        try:
            return await asyncio.wait_for(waiting, timeout + self.cancel_grace)
        except TimeoutError:
            if waiting.cancelled():  # the grace ran out, not the coroutine's own TimeoutError
                raise LoopTimeout(timeout, left_running=True) from None
            raise

    def _submit(self, aw: Awaitable[T], timeout: float | None) -> concurrent.futures.Future[T]:
        context = contextvars.copy_context()
        return asyncio.run_coroutine_threadsafe(_bounded(aw, timeout, context), self._loop)

    def _check_usable(self, aw: Awaitable[Any]) -> None:
        if self._closed or os.getpid() != self.pid:
            _discard(aw)
            why = "is closed" if self._closed else "belongs to the process this one forked from"
            raise RuntimeError(
                f"LoopThread {self.name!r} {why}; make a new LoopThread (or use "
                "agentrt.tools.loop.default_loop()) to run tools"
            )

    def close(self) -> None:
        """Cancel what still runs on the loop, wait for it up to cancel_grace, end the thread.

        Safe to call twice. Close the toolsets (their sessions) first: they close on this loop.
        """
        with self._state:
            if self._closed:
                return
            self._closed = True
        if os.getpid() != self.pid:
            return  # a forked child has no thread to stop
        if threading.get_ident() == self._thread.ident:
            raise RuntimeError(f"LoopThread {self.name!r}: close() from its own thread")
        shutdown = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        # A tool stuck past its cancellation: the daemon thread is abandoned, not waited on.
        with contextlib.suppress(Exception):
            shutdown.result(self.cancel_grace * 2 + 1)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.cancel_grace)
        if not self._thread.is_alive():
            self._loop.close()

    async def _shutdown(self) -> None:
        this = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not this]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=self.cancel_grace)
        await self._loop.shutdown_asyncgens()
        # A sync call stuck in the executor: its thread ends with the process.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._loop.shutdown_default_executor(), self.cancel_grace)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running"
        return f"LoopThread({self.name!r}, {state})"


async def _bounded(aw: Awaitable[T], timeout: float | None, context: contextvars.Context) -> T:
    """``aw`` as a task in the caller's context, cancelled (and waited for) at ``timeout``."""
    task = asyncio.get_running_loop().create_task(_awaited(aw), context=context)
    if timeout is None:
        return await task
    try:
        return await asyncio.wait_for(task, timeout)
    except TimeoutError:
        if task.cancelled():  # our timeout; a TimeoutError the coroutine raised passes as is
            raise LoopTimeout(timeout) from None
        raise


async def _awaited(aw: Awaitable[T]) -> T:
    return await aw


def _discard(aw: Awaitable[Any]) -> None:
    """Close a coroutine that will never run, so it does not warn 'never awaited'."""
    if isinstance(aw, Coroutine):
        aw.close()


_default: LoopThread | None = None
_default_lock = threading.Lock()


def default_loop() -> LoopThread:
    """The process-wide tool loop, made on first use (again after a fork, or a close).

    For runners and registries built without a loop of their own; a runtime should own
    its own LoopThread and close it with itself.
    """
    global _default  # noqa: PLW0603 - one per process, made lazily
    with _default_lock:
        if _default is None or _default.closed or _default.pid != os.getpid():
            if _default is None:
                atexit.register(_close_default)
            _default = LoopThread("agentrt-tools-default")
        return _default


def _close_default() -> None:
    if _default is not None:
        _default.close()
