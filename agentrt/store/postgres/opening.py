"""A store's first connection, made as it opens: waiting for a server that is not up yet.

``agentrt worker``, ``agentrt serve`` and their database are often started together (a
compose file, systemd units, a container platform), and the server takes connections a few
seconds after the process first asks. So opening waits for it, up to the store's patience
(``PoolSettings.patience``, ``?pool_patience=`` in the URL), trying again with a backoff
and saying once in the log what it waits for. Only what waiting may cure is waited out
(failures.py, ``may_connect_later``: nothing answered, the server is starting up or
shutting down, or it has no connection slot free for one more client); a wrong password,
an unknown database or parameters libpq refuses fail at once, as they always did. A
process told to stop meanwhile (``processes.stop_start_up``, from ``agentrt worker``'s
signal handler) stops waiting within ``processes.STOP_CHECK`` seconds: the wait raises
StartupStopped between two tries, with no connection made.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

from agentrt import processes
from agentrt.errors import ConfigError, DatabaseUnavailable, StartupStopped
from agentrt.logs import get_logger
from agentrt.store.postgres.failures import may_connect_later, server_full

__all__ = ["first_connection"]

logger = get_logger()

_C = TypeVar("_C")

_NO_WAKE = threading.Event()  # never set: only the time, or a stop of start-up, ends a pause


def _pause(seconds: float) -> None:
    """Wait ``seconds`` between tries, or less once start-up is to stop (a signal's
    handler, on this very thread, may take no lock: processes.pause)."""
    processes.pause(_NO_WAKE, seconds, processes.start_up_stopped)


# Between tries, and what they are timed by: tests step a clock of their own through both.
_sleep = _pause
_clock = time.monotonic

FIRST_PAUSE = 0.1
"""Seconds before the second try; each pause after doubles, up to ``LONGEST_PAUSE``."""
LONGEST_PAUSE = 2.0
"""At most this long between tries: a server that comes up is found within it."""

_DOWN_ADVICE = (
    "the store could not open. Check that its server is running and reachable at that host "
    "and port, or let the store wait longer for it with ?pool_patience=SECONDS in the URL"
)
_FULL_ADVICE = (
    "the store could not open: the server has no connection free for it. Raise its "
    "max_connections (or the role's or the database's CONNECTION LIMIT), lower the "
    "?pool_max_size= of the other processes using it, or let the store wait longer for one "
    "with ?pool_patience=SECONDS in the URL"
)


def first_connection(
    connect: Callable[[], _C], conninfo: str, location: str, patience: float
) -> _C:
    """``connect()``, tried again while the server at ``conninfo`` is not up yet, for up
    to ``patience`` seconds. ConfigError at once for a connection the server refused itself;
    DatabaseUnavailable once the patience runs out; StartupStopped once the process is told
    to stop (processes.stop_start_up). ``location`` names the database in messages (its
    password hidden)."""
    started = _clock()
    deadline = started + patience
    pause = FIRST_PAUSE
    said = False
    while True:
        try:
            return connect()
        except psycopg.OperationalError as exc:
            if not may_connect_later(exc, conninfo):
                # The server answered the ping, so it is up: it may have come up since the
                # try, so one more says whether the refusal is its own.
                try:
                    return connect()
                except psycopg.OperationalError as again:
                    raise ConfigError(
                        f"cannot connect to {location!r}: {_first_line(again)}"
                    ) from None
            full = server_full(exc)
            now = _clock()
            if now >= deadline:
                raise DatabaseUnavailable(
                    location,
                    round(now - started, 1),
                    exc,
                    advice=_FULL_ADVICE if full else _DOWN_ADVICE,
                ) from exc
            if not said:
                said = True
                logger.warning(
                    "database %s %s (%s); waiting up to %g s for it",
                    location,
                    "has no connection free" if full else "is not taking connections yet",
                    _first_line(exc),
                    patience,
                )
            _sleep(min(pause, deadline - now))
            if processes.start_up_stopped():  # here, between tries: no connection is open
                raise StartupStopped(
                    location, f"the database {location!r} to take connections"
                ) from None
            pause = min(pause * 2, LONGEST_PAUSE)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
