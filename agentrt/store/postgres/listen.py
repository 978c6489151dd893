"""Being told by the database that a run may need a driver: LISTEN on a connection of its own.

The connection is not the pool's: a listening connection must stay open and idle for as
long as the worker lives, and the pool would hand it to a query or close it. A thread
waits on it for notifications (agentrt_runs, sent by the triggers of schema version 2)
and calls ``wake`` for each. When the connection breaks (a restart, a failover) it is made
again, and ``wake`` is called once it listens: notifications sent meanwhile were lost, so
the worker should look.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg

from agentrt.logs import get_logger
from agentrt.store.postgres.schema import CHANNEL

__all__ = ["Listener"]

logger = get_logger()

# How long one wait for a notification lasts before the thread checks it should stop: the
# most close() waits.
_WAIT = 0.25


class Listener:
    """Calls ``wake`` from its own thread whenever the database notifies agentrt_runs."""

    def __init__(self, conninfo: str, location: str, wake: Callable[[], None]) -> None:
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
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    pause = 0.05
                    self._wake()  # whatever was sent while nobody listened
                    while not self._closed.is_set():
                        for _ in conn.notifies(timeout=_WAIT):
                            self._wake()
            except psycopg.Error as exc:
                self.listening.clear()
                if self._closed.is_set():
                    return
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                logger.info("listening to %s: %s; connecting again", self._location, first)
                self._closed.wait(pause)
                pause = min(pause * 2, 2.0)

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
