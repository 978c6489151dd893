"""A webhook's host name looked up within its send's deadline.

httpcore's sync backend connects with ``socket.create_connection``, whose name lookup
(``getaddrinfo``) no timeout of httpx's bounds: a DNS server that does not answer holds the
send for as long as the system resolver keeps asking, and the dispatcher's thread with it,
past the claim its endpoint's timeout worked out. Here the lookup runs in a thread of its
own, waited for only until the send's deadline (``until``); a lookup still out then fails
the send as timed out, and is left to end on its own, holding nothing but its own result.
The addresses found are then connected to in turn, as ``create_connection`` would, each
within what is left of the deadline.

The connection is still to the host and port httpcore asked for (the URL is not
rewritten): the Host header, TLS's server name and the certificate's check stay the name's,
and a proxy's own name is looked up the same way.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import httpcore

__all__ = ["Lookups", "Resolver", "ResolvingBackend", "until"]

Resolver = Callable[..., Sequence[tuple[Any, ...]]]
"""Looks a name up as ``socket.getaddrinfo`` does (called as ``resolver(host, port,
type=socket.SOCK_STREAM)``)."""

_DEADLINE: ContextVar[float | None] = ContextVar("agentrt_webhook_deadline", default=None)
"""When the send in hand must have ended (``time.monotonic()``); None outside a send."""


@contextlib.contextmanager
def until(deadline: float) -> Iterator[None]:
    """Within it, a connection this thread's sends open ends its lookup and its connecting
    by ``deadline`` (``time.monotonic()``)."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


class _Lookup:
    """One lookup in flight: its result, once its thread has it."""

    __slots__ = ("done", "error", "found")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.found: Sequence[tuple[Any, ...]] = ()
        self.error: Exception | None = None


class Lookups:
    """Host names looked up each in a thread of its own, waited for a while.

    One lookup a host name at a time, whatever the port (only the addresses found are
    used): a send that comes while its host's lookup is still out waits on that one, so a
    name that never resolves holds one thread, however often its deliveries are tried
    again and on however many ports. The next send of a name whose lookup ended looks it
    up afresh (nothing is cached)."""

    def __init__(self, resolver: Resolver | None = None) -> None:
        # None: socket.getaddrinfo as it is at each lookup, so what patches it (a test's
        # offline guard, an app's own DNS) is heeded as httpcore's own lookup heeds it.
        self._resolver = resolver
        self._lock = threading.Lock()
        self._out: dict[str, _Lookup] = {}

    def addresses(self, host: str, port: int, within: float | None) -> Sequence[tuple[Any, ...]]:
        """``getaddrinfo``'s answer for ``host`` (asked with ``port``), waited for
        ``within`` seconds (None: until it comes); httpcore's ConnectTimeout if it has not
        come by then, its ConnectError if the name cannot be looked up."""
        with self._lock:
            lookup = self._out.get(host)
            if lookup is None:
                lookup = self._out[host] = _Lookup()
                threading.Thread(
                    target=self._look_up,
                    args=(host, port, lookup),
                    name="agentrt-webhook-lookup",
                    daemon=True,  # a lookup that never ends keeps no process alive
                ).start()
        if not lookup.done.wait(within):
            raise httpcore.ConnectTimeout("the host's name was not looked up in time")
        if lookup.error is not None:
            # A new exception per waiter: several may raise at once. Its words hold no
            # URL; the dispatcher says only "could not connect".
            raise httpcore.ConnectError(f"cannot look the host up: {lookup.error}")
        return lookup.found

    def _look_up(self, host: str, port: int, lookup: _Lookup) -> None:
        try:
            resolve = self._resolver or socket.getaddrinfo
            lookup.found = resolve(host, port, type=socket.SOCK_STREAM)
        except Exception as exc:
            lookup.error = exc
        finally:
            with self._lock:
                if self._out.get(host) is lookup:
                    del self._out[host]
            lookup.done.set()


class ResolvingBackend(httpcore.SyncBackend):
    """httpcore's sync backend, its name lookup bounded by the deadline ``until`` set (and
    by the connect timeout httpcore gives); an address in the URL is not looked up."""

    def __init__(self, lookups: Lookups) -> None:
        self.lookups = lookups

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        ends = _ends(timeout)
        if _is_address(host):
            addresses: Iterable[str] = (host,)
        else:
            found = self.lookups.addresses(host, port, _left(ends))
            addresses = dict.fromkeys(str(info[4][0]) for info in found)
        failed: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        # Each address in the order the resolver gave them, as create_connection tries
        # them (a name's IPv6 address first, where the receiver listens on IPv4 only).
        for address in addresses:
            left = _left(ends)
            if left is not None and left <= 0:  # a socket timeout of 0 would not wait at all
                raise httpcore.ConnectTimeout("the deadline came before a connection")
            try:
                return super().connect_tcp(address, port, left, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failed = exc
        if failed is not None:
            raise failed
        raise httpcore.ConnectError("the host's name has no address")


def _ends(timeout: float | None) -> float | None:
    """When connecting must have ended: the send's deadline, or ``timeout`` from now if
    that comes first."""
    deadline = _DEADLINE.get()
    if timeout is None:
        return deadline
    ends = time.monotonic() + timeout
    return ends if deadline is None else min(ends, deadline)


def _left(ends: float | None) -> float | None:
    return None if ends is None else max(0.0, ends - time.monotonic())


def _is_address(host: str) -> bool:
    """True if ``host`` is an IP address (httpcore hands an IPv6 one without brackets)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
