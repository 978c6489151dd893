"""Being told by the database that a run may need a driver: LISTEN on a connection of its own.

The connection is not the pool's: a listening connection must stay open and idle for as long
as the worker lives, and the pool would hand it to a query or close it. A thread waits on it
for notifications (agentrt_runs, sent by the triggers of schema versions 2 and 9) and calls
``wake`` for each. When the connection breaks (a restart, a failover) it is made again, and
``wake`` is called once it listens: notifications sent meanwhile were lost, so the worker
should look.

A connection may also go silent: a NAT, firewall or load balancer between the worker and the
database that drops an idle connection tells neither end, and a LISTEN connection is idle for
as long as no run is written. So the connection keeps TCP keepalives (the kernel gives it up
once its probes go unanswered; they also keep such a box's mapping alive), and every
CHECK_EVERY seconds without a notification the thread asks the server a question it must
answer within ANSWER_WITHIN. A connection that does not answer is given up and made again,
and ``wake`` is called at once: whatever was sent since it went silent was lost.
"""

from __future__ import annotations

import selectors
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import ExecStatus
from psycopg.pq.abc import PGconn

from agentrt.logs import get_logger
from agentrt.store.postgres.schema import CHANNEL

__all__ = ["ANSWER_WITHIN", "CHECK_EVERY", "Listener"]

logger = get_logger()

# How long one wait for a notification lasts before the thread checks it should stop: the
# most close() waits, but while a connection is being made (its connect_timeout) or a
# question answered (ANSWER_WITHIN).
_WAIT = 0.25

CHECK_EVERY = 10.0
"""Seconds without a notification after which the listener asks its connection a question."""

ANSWER_WITHIN = 5.0
"""Seconds the server has to answer it (and LISTEN); past them the connection is made again."""

_SETTINGS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
"""libpq settings of the listening connection, where the database URL gives none: a
connection attempt gives up after 10 s; a silent peer is found by TCP in about a minute."""


class Silent(psycopg.OperationalError):
    """The server did not answer in time: the connection is given up."""


class Listener:
    """Calls ``wake`` from its own thread whenever the database notifies agentrt_runs."""

    def __init__(self, conninfo: str, location: str, wake: Callable[[], None]) -> None:
        given = conninfo_to_dict(conninfo)
        self._settings: dict[str, Any] = {k: v for k, v in _SETTINGS.items() if k not in given}
        self._conninfo = conninfo
        self._location = location
        self._wake = wake
        self._closed = threading.Event()
        self.listening = threading.Event()
        """Set while the connection listens (tests wait for it)."""
        self._thread = threading.Thread(target=self._listen, name="agentrt-listen", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        pause = 0.05
        while not self._closed.is_set():
            conn: psycopg.Connection[Any] | None = None
            try:
                conn = psycopg.connect(self._conninfo, autocommit=True, **self._settings)
                _ask(conn, f"LISTEN {CHANNEL}", ANSWER_WITHIN)
                self.listening.set()
                pause = 0.05
                self._wake()  # whatever was sent while nobody listened
                self._hear(conn)
            except psycopg.Error as exc:
                if self._closed.is_set():
                    return
                if self.listening.is_set():  # it listened till now: runs may have come since
                    self.listening.clear()
                    self._wake()
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                logger.info("listening to %s: %s; connecting again", self._location, first)
                self._closed.wait(pause)
                pause = min(pause * 2, 2.0)
            finally:
                if conn is not None:
                    conn.close()  # never waits: libpq sends its goodbye without blocking

    def _hear(self, conn: psycopg.Connection[Any]) -> None:
        """Wake for each notification until closed; Silent if the server stops answering."""
        heard = time.monotonic()
        while not self._closed.is_set():
            for _ in conn.notifies(timeout=_WAIT):
                heard = time.monotonic()
                self._wake()
            if time.monotonic() - heard >= CHECK_EVERY:
                if _ask(conn, "SELECT 1", ANSWER_WITHIN):
                    self._wake()
                heard = time.monotonic()

    def close(self) -> None:
        self._closed.set()
        self._thread.join()


def _ask(conn: psycopg.Connection[Any], statement: str, within: float) -> bool:
    """Run ``statement`` on the connection, its answer read within ``within`` seconds, else
    Silent (psycopg's own execute would wait for ever for a connection gone silent: so
    libpq's calls, on a connection psycopg keeps idle and non-blocking). True if
    notifications came with the answer (they are taken: the caller wakes for them)."""
    pgconn = conn.pgconn
    deadline = time.monotonic() + within
    pgconn.send_query(statement.encode())
    while pgconn.flush():  # 1 while some of it is still to send
        _until(pgconn, selectors.EVENT_WRITE, deadline, f"{statement} not sent within {within:g} s")
    while True:
        while not pgconn.is_busy():
            result = pgconn.get_result()
            if result is None:
                came = False
                while pgconn.notifies() is not None:  # read with the answer: psycopg's
                    came = True  # notifies() would see them only once more bytes came
                return came
            if result.status not in (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK):
                message = (result.error_message or b"").decode(errors="replace").strip()
                status = ExecStatus(result.status).name
                raise psycopg.OperationalError(f"{statement}: {message or status}")
        _until(pgconn, selectors.EVENT_READ, deadline, f"no answer to {statement} in {within:g} s")
        pgconn.consume_input()


def _until(pgconn: PGconn, event: int, deadline: float, what: str) -> None:
    """Until the connection's socket is ready for ``event``; Silent past ``deadline``."""
    with selectors.DefaultSelector() as selector:
        selector.register(pgconn.socket, event)
        if not selector.select(max(0.0, deadline - time.monotonic())):
            raise Silent(what)
