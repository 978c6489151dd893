"""Whose turn it is among one thread's governed calls in this process.

Parallel tool calls of one message would race for the same run row, gate and trace
segment, so a thread's calls act one at a time. They come from a sync graph's worker
threads and from async graphs' event loops alike, so a turn is taken without a worker
thread on a loop: with a few loops' default executors each only a handful of threads, a
message of more parallel calls than that would otherwise leave none to the call whose turn
it is. A cancelled waiter takes nothing (or passes on a turn given as it was cancelled),
and nothing is kept of a thread once none of its calls is in flight.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field

from agentrt.steps import Step

__all__ = ["Turns"]


class _Waiter:
    """One caller waiting: a thread (an Event) or a coroutine (a future on its loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.event = threading.Event()
        self.future: asyncio.Future[None] | None = loop.create_future() if loop else None
        self.woken = False

    def wake(self) -> bool:
        """Tell the waiter (under the Turns' mutex); False if it can no longer be told."""
        if self.loop is None:
            self.event.set()
        else:
            try:
                self.loop.call_soon_threadsafe(_resolve, self.future)
            except RuntimeError:  # its loop is closed: nobody waits there any more
                return False
        self.woken = True
        return True


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


@dataclass
class _Thread:
    """What this process holds for one thread while calls of it are in flight."""

    calls: int = 0
    held: bool = False
    turn: deque[_Waiter] = field(default_factory=deque)
    """Calls waiting for their turn, first come first."""
    quiet: list[_Waiter] = field(default_factory=list)
    """Calls waiting until no call of the thread is in flight."""


class Turns:
    """One governed call of a thread at a time, its calls counted while in flight."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._threads: dict[str, _Thread] = {}

    def __len__(self) -> int:
        """How many threads have a call in flight (what is kept)."""
        with self._mutex:
            return len(self._threads)

    def enter(self, thread_id: str) -> None:
        """A call of ``thread_id`` begins (before it takes its turn)."""
        with self._mutex:
            self._threads.setdefault(thread_id, _Thread()).calls += 1

    def leave(self, thread_id: str) -> None:
        """A call of ``thread_id`` is over (its turn given back); the last one lets the
        thread go and wakes those waiting for quiet."""
        with self._mutex:
            kept = self._threads[thread_id]
            kept.calls -= 1
            if kept.calls == 0:
                del self._threads[thread_id]
                for waiter in kept.quiet:
                    waiter.wake()

    def take(self, thread_id: str) -> Step[None]:
        """Wait for the thread's turn and take it (the caller has entered)."""
        return Step(lambda: self._wait(thread_id, "turn"), lambda: self._await(thread_id, "turn"))

    def give(self, thread_id: str) -> None:
        """Give the turn back: to the first waiter still there, or to nobody."""
        with self._mutex:
            kept = self._threads[thread_id]
            while kept.turn:
                if kept.turn.popleft().wake():
                    return  # still held: it is the waiter's now
            kept.held = False

    def quiet(self, thread_id: str) -> Step[None]:
        """Wait until no call of the thread is in flight here (the caller has left)."""
        return Step(lambda: self._wait(thread_id, "quiet"), lambda: self._await(thread_id, "quiet"))

    def _waiter(
        self, thread_id: str, why: str, loop: asyncio.AbstractEventLoop | None
    ) -> _Waiter | None:
        """A new waiter in line, or None if there is nothing to wait for."""
        with self._mutex:
            kept = self._threads.get(thread_id)
            if why == "quiet":
                if kept is None:
                    return None
                waiter = _Waiter(loop)
                kept.quiet.append(waiter)
                return waiter
            assert kept is not None, "a call takes its turn after it entered"
            if not kept.held:
                kept.held = True
                return None
            waiter = _Waiter(loop)
            kept.turn.append(waiter)
            return waiter

    def _wait(self, thread_id: str, why: str) -> None:
        waiter = self._waiter(thread_id, why, None)
        if waiter is None:
            return
        try:
            waiter.event.wait()
        except BaseException:  # a KeyboardInterrupt in the waiting thread
            self._abandon(thread_id, why, waiter)
            raise

    async def _await(self, thread_id: str, why: str) -> None:
        waiter = self._waiter(thread_id, why, asyncio.get_running_loop())
        if waiter is None:
            return
        assert waiter.future is not None
        try:
            await waiter.future
        except BaseException:  # cancelled: take nothing, or pass on what was given
            self._abandon(thread_id, why, waiter)
            raise

    def _abandon(self, thread_id: str, why: str, waiter: _Waiter) -> None:
        with self._mutex:
            kept = self._threads.get(thread_id)
            if not waiter.woken and kept is not None:
                (kept.turn if why == "turn" else kept.quiet).remove(waiter)
                return
        if why == "turn":
            self.give(thread_id)  # given as it was cancelled: the next in line has it
