"""One webhook sent within its endpoint's timeout, the whole exchange, not each read.

httpx's timeout bounds each wait on the network (to connect, to write, for the next bytes
to read), not the exchange: a receiver that answers a byte every little while is never
silent for a whole timeout, and holds the send for as long as it keeps trickling (the
dispatcher's one thread with it, every other endpoint waiting, and past its claim another
dispatcher sends the event again). So a send here has a deadline: when it comes, the
socket the send opened is shut down, which ends any wait on it at once, and the send
fails as timed out. Of the answer's body at most ``MAX_ANSWER`` bytes are read (only its
status matters): a receiver that streams a large one cannot grow the dispatcher's memory.

No connection is kept between sends, so each send's socket is the one it opened, the one
its deadline shuts. Looking the host's name up (DNS), which no httpx timeout bounds, is
within the deadline too (``resolving``): a name a DNS server never answers for fails the
send as timed out, at its deadline, as a silent receiver does.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Any

import httpcore
import httpx

from agentrt.logs import get_logger
from agentrt.webhooks.resolving import Lookups, Resolver, ResolvingBackend, until

__all__ = ["MAX_ANSWER", "BoundedSender"]

logger = get_logger("agentrt.webhooks")

MAX_ANSWER = 64 * 1024
"""Bytes of a receiver's answer read at most; the rest is left unread."""

_OPENED = (".connect_tcp.complete", ".connect_unix_socket.complete")
"""httpcore's trace events that hand over the network stream a connection opened."""


class BoundedSender:
    """The dispatcher's own ``Sender``: a POST whose whole exchange (looking the host up,
    connecting, sending, reading the answer's head and body) ends within ``timeout``
    seconds, or fails with ``httpx.TimeoutException``; of its answer's body at most
    ``max_answer`` bytes are read, and kept in the response it returns. ``resolver`` looks
    host names up (None: ``socket.getaddrinfo``; tests give their own)."""

    def __init__(self, *, max_answer: int = MAX_ANSWER, resolver: Resolver | None = None) -> None:
        if max_answer < 0:
            raise ValueError(f"max_answer must be a number of bytes >= 0, got {max_answer!r}")
        self.max_answer = max_answer
        # No connection kept: a deadline shuts the socket of its own send, never another's.
        self._client = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
        _look_up_within_deadline(self._client, ResolvingBackend(Lookups(resolver)))

    def post(
        self, url: str, *, content: bytes, headers: dict[str, str], timeout: float
    ) -> httpx.Response:
        """Send ``content`` to ``url``: the answer, its body cut at ``max_answer`` bytes."""
        request = self._client.build_request(
            "POST", url, content=content, headers=headers, timeout=timeout
        )
        cutoff = _Cutoff(timeout)
        request.extensions["trace"] = cutoff.trace
        try:
            with cutoff, until(cutoff.deadline):
                answer = self._client.send(request, stream=True)
                try:
                    body = self._head(answer)
                finally:
                    cutoff.end()  # before the socket closes: nothing shuts one closed
                    answer.close()
        except httpx.TransportError as exc:
            if cutoff.fired:  # the receiver saw its socket shut down: a timeout
                raise _timed_out(timeout, request) from exc
            raise
        if cutoff.fired:  # shut down as the answer ended: cut all the same
            raise _timed_out(timeout, request)
        return httpx.Response(
            answer.status_code, headers=answer.headers, content=body, request=request
        )

    def _head(self, answer: httpx.Response) -> bytes:
        """At most ``max_answer`` bytes of ``answer``'s body, as they came (not decoded: a
        small compressed body may decode to a large one)."""
        body = bytearray()
        for chunk in answer.iter_raw():
            body += chunk
            if len(body) >= self.max_answer:
                break
        return bytes(body[: self.max_answer])

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


def _look_up_within_deadline(client: httpx.Client, backend: ResolvingBackend) -> None:
    """Have every connection ``client`` opens, straight or through a proxy the environment
    names, connect through ``backend``. httpx offers no argument for a network backend,
    and handing the client a transport of our own would drop the environment's proxies;
    so each pool it made is given the backend, which it hands every connection it opens
    from then on. An httpcore whose pools keep it elsewhere is said once, as the sender is
    made, and its sends go on with the lookup unbounded, as before; webhooks still go."""
    for transport in (client._transport, *client._mounts.values()):
        if isinstance(transport, httpx.HTTPTransport):
            pool = transport._pool
            if not isinstance(getattr(pool, "_network_backend", None), httpcore.NetworkBackend):
                logger.warning(
                    "httpcore %s's connection pool keeps its network backend elsewhere: "
                    "webhook sends look host names up outside their timeout",
                    httpcore.__version__,
                )
                return
            pool._network_backend = backend


def _timed_out(timeout: float, request: httpx.Request) -> httpx.TimeoutException:
    return httpx.ReadTimeout(f"the exchange outlasted its {timeout:g} s", request=request)


class _Cutoff:
    """One send's deadline: when it comes, the sockets the send opened are shut down."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        """When it comes (``time.monotonic()``), set again as it starts."""
        self.fired = False
        """True once the deadline came before the send ended."""
        self._lock = threading.Lock()
        self._ended = False
        # Copies of the send's sockets (dup: their own descriptors, closed at the end), so
        # shutting one down never reaches a descriptor the send closed and the OS reused.
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Cutoff:
        self.deadline = time.monotonic() + self.seconds
        self._timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.end()

    def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpx's ``trace`` extension: keeps each socket the send opens."""
        if not name.endswith(_OPENED):
            return
        stream = info.get("return_value")
        opened = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(opened, socket.socket):
            return
        with self._lock:
            if self._ended:
                return
            kept = opened.dup()
            self._sockets.append(kept)
            if self.fired:  # connected just as the deadline came
                _shut(kept)

    def end(self) -> None:
        """The send is over: the deadline no longer shuts anything."""
        self._timer.cancel()
        with self._lock:
            if self._ended:
                return
            self._ended = True
            kept, self._sockets = self._sockets, []
        for one in kept:
            one.close()

    def _fire(self) -> None:
        with self._lock:  # never once end() began: the send's sockets are its own again
            if self._ended:
                return
            self.fired = True
            for one in self._sockets:
                _shut(one)


def _shut(one: socket.socket) -> None:
    """End every wait on ``one``'s connection (shutdown acts on the connection, which
    every descriptor of it shares), at once."""
    with contextlib.suppress(OSError):  # the peer closed it first
        one.shutdown(socket.SHUT_RDWR)
