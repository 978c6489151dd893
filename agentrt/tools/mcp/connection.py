"""One live session with an MCP server, held open on the tool loop.

The SDK's Client is an async context manager whose task groups (anyio) must be entered and
left by one task. Tool calls come from many tasks, so a task of the connection's own (the
holder) enters the Client, says it is ready, and leaves it when told to close or when the
server goes away; calls use the session from any task on the same loop.

How the server went away decides what a call in flight means, so the connection keeps it:

- the transport's read side ended (a stdio server exited: its stdout closed), or the
  transport failed (an HTTP server refused the connection): ``alive`` turns False, and
  the next call starts a new connection first;
- ``unreachable`` says the failure was a refused connection: nothing was sent.

A stdio server's stderr goes to the log, line by line, through agentrt's redacting logger,
with what the app gave the server to authenticate with cut out first: the logger's
Redactor knows secret shapes, not the values this server was handed. A line is read up to
STDERR_LINE_BYTES; the rest of a longer one is read in pieces and dropped: the server does
not choose how much agentrt holds or logs. The connection's own messages (why it ended)
are cut of the server's secrets too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agentrt.logs import get_logger

if TYPE_CHECKING:
    from mcp import Client

__all__ = ["Connection", "StderrToLog", "WatchedTransport", "one_line"]

logger = get_logger("agentrt.mcp")

CLOSE_GRACE = 10.0
"""Seconds a closing connection gets to stop its server (the SDK's own escalation from
closing stdin to SIGKILL takes about 4.5 s)."""

STDERR_LINE_BYTES = 8192
"""The most of one stderr line that is read and logged; the rest of a longer line is
read in pieces of this size and dropped."""


class StderrToLog:
    """A pipe for a server process's stderr, read by a thread that logs each line after
    ``scrub`` (what the app gave the server, cut out). ``hold`` is the length of the
    longest form of a secret ``scrub`` looks for: a line cut short loses that much more
    of its end, where a secret cut in two would not be found."""

    def __init__(self, server: str, scrub: Callable[[str], str] = str, hold: int = 0) -> None:
        self.server = server
        self._scrub = scrub
        self._hold = hold
        read_fd, write_fd = os.pipe()
        self.file = os.fdopen(write_fd, "w", encoding="utf-8")
        """The write end, handed to the process as its stderr."""
        self._thread = threading.Thread(
            target=self._pump, args=(read_fd,), name=f"agentrt-mcp-{server}-stderr", daemon=True
        )
        self._thread.start()

    def spawned(self) -> None:
        """The process has its own copy now: close ours, so the pipe ends when it exits."""
        with contextlib.suppress(OSError):
            self.file.close()

    def _pump(self, read_fd: int) -> None:
        with open(read_fd, "rb") as pipe:
            while raw := pipe.readline(STDERR_LINE_BYTES):
                cut = len(raw) == STDERR_LINE_BYTES and not raw.endswith(b"\n")
                line = self._scrub(raw.decode("utf-8", errors="replace").rstrip())
                if cut:
                    # A secret the cut split in two is not found: its start is somewhere
                    # in the last `hold` characters, which go too.
                    line = line[: max(0, len(line) - self._hold)]
                    line += f" [cut: the line is longer than {STDERR_LINE_BYTES:,} bytes]"
                if line:
                    logger.info("MCP server %r: %s", self.server, line)
                while cut and (rest := pipe.readline(STDERR_LINE_BYTES)):
                    cut = not rest.endswith(b"\n")


class _WatchedRead:
    """A transport's read stream that says when it has ended."""

    def __init__(self, inner: Any, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self._on_end()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _WatchedRead:
        return self

    async def __anext__(self) -> Any:
        import anyio

        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _WatchedRead:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None


class WatchedTransport:
    """An SDK transport (an async context manager of a stream pair) whose read side tells
    ``on_end`` when it ends; ``after_enter`` runs once the transport is up (the process
    spawned), ``on_exit`` once it is down."""

    def __init__(
        self,
        inner: Any,
        on_end: Callable[[], None],
        after_enter: Callable[[], None] = lambda: None,
        on_exit: Callable[[], Any] | None = None,
    ) -> None:
        self._inner = inner
        self._on_end = on_end
        self._after_enter = after_enter
        self._on_exit = on_exit

    async def __aenter__(self) -> tuple[Any, Any]:
        try:
            read, write = await self._inner.__aenter__()
        finally:
            self._after_enter()
        return _WatchedRead(read, self._on_end), write

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            return bool(await self._inner.__aexit__(exc_type, exc, tb))
        finally:
            if self._on_exit is not None:
                result = self._on_exit()
                if asyncio.iscoroutine(result):
                    await result


class Connection:
    """A Client entered by a holder task of its own, until ``close`` or the server's end."""

    def __init__(self, server: str, client: Client, scrub: Callable[[str], str] = str) -> None:
        self.server = server
        self.client = client
        self._scrub = scrub
        """What the app gave the server, cut out of the connection's messages."""
        self.loop = asyncio.get_running_loop()
        self.error: BaseException | None = None
        """Why the holder left the Client, if it was not told to."""
        self._ended = False
        self._closing = asyncio.Event()
        self._holder: asyncio.Task[None] | None = None

    def transport_ended(self) -> None:
        """The read side ended: the server is gone; let the holder leave the Client."""
        self._ended = True
        self.loop.call_soon(self._closing.set)

    @property
    def alive(self) -> bool:
        holder = self._holder
        return not self._ended and holder is not None and not holder.done()

    @property
    def unreachable(self) -> bool:
        """The transport failed to connect: no request of ours reached the server."""
        return _refused(self.error)

    async def open(self, timeout: float, watch: Callable[[Client], Any] | None = None) -> None:
        """Enter the Client in the holder task; return once it is ready (or raise why not)."""
        ready: asyncio.Future[None] = self.loop.create_future()
        self._holder = self.loop.create_task(self._hold(ready, watch), name=f"mcp-{self.server}")
        try:
            await asyncio.wait_for(asyncio.shield(ready), timeout)
        except BaseException:
            self._closing.set()
            self._holder.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._holder), CLOSE_GRACE)
            if ready.done() and not ready.cancelled():
                ready.exception()  # retrieved: the caller gets it (or its timeout) already
            raise

    async def _hold(
        self, ready: asyncio.Future[None], watch: Callable[[Client], Any] | None
    ) -> None:
        try:
            async with self.client as client:
                ready.set_result(None)
                watcher = self.loop.create_task(watch(client)) if watch is not None else None
                try:
                    await self._closing.wait()
                finally:
                    if watcher is not None:
                        watcher.cancel()
                        with contextlib.suppress(BaseException):
                            await watcher
        except BaseException as exc:
            cancelled = isinstance(exc, asyncio.CancelledError)
            if not ready.done():
                if cancelled:
                    ready.cancel()
                else:
                    ready.set_exception(exc)
            elif not (cancelled and self._closing.is_set()):
                self.error = exc
                logger.warning(
                    "MCP server %r: the connection ended: %s",
                    self.server,
                    self._scrub(one_line(exc)),
                )
            if cancelled and not self._closing.is_set():
                raise
        finally:
            self._ended = True

    async def settled(self, wait: float = CLOSE_GRACE) -> str:
        """Wait (a while) for the holder to leave the Client; why the connection ended."""
        if self._holder is not None and not self._holder.done():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._holder), wait)
        if self.error is None:
            return "the server closed the connection"
        return self._scrub(one_line(self.error))

    async def close(self) -> None:
        """Leave the Client (which stops a stdio server) and wait for it, within a grace."""
        self._closing.set()
        holder = self._holder
        if holder is None or holder.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(holder), CLOSE_GRACE)
        except TimeoutError:
            holder.cancel()
            logger.warning("MCP server %r did not stop within %gs", self.server, CLOSE_GRACE)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    found = [exc]
    if exc.__cause__ is not None:
        found += _leaves(exc.__cause__)
    return found


def _refused(exc: BaseException | None) -> bool:
    if exc is None:
        return False
    import httpx2

    return any(
        isinstance(leaf, httpx2.ConnectError | ConnectionRefusedError) for leaf in _leaves(exc)
    )


def one_line(exc: BaseException) -> str:
    """One line for an error, an exception group by its first leaf that says something."""
    leaves = [
        leaf
        for leaf in _leaves(exc)
        if not isinstance(leaf, asyncio.CancelledError | BaseExceptionGroup)
    ]
    chosen = leaves[0] if leaves else exc
    text = str(chosen).strip()
    return f"{type(chosen).__name__}: {text}" if text else type(chosen).__name__
