"""The database server's clock, read without asking the server each time.

Processes on many machines share one database, and their clocks differ: a lease written
by one host's clock and read against another's would expire early or late by the
difference. So a store on PostgreSQL with the default clock tells time by the server's:
it reads ``clock_timestamp()`` now and then, and in between counts on from it with this
machine's monotonic clock (which no clock step or NTP slew moves). Every process then
writes and compares lease times (and created_at, updated_at) on one clock, the server's,
to within a round trip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from agentrt.logs import get_logger

__all__ = ["ServerClock"]

logger = get_logger()


class ServerClock:
    """Epoch seconds as the database server counts them (a callable, like time.time)."""

    def __init__(self, read: Callable[[], float], *, every: float = 60.0) -> None:
        self._read = read
        self._every = every
        self._lock = threading.Lock()
        self._syncing = False
        self._base, self._at = self._sample()
        self._last = self._base

    def _sample(self) -> tuple[float, float]:
        """The server's time, and this machine's monotonic time at the middle of the ask."""
        before = time.monotonic()
        server = self._read()
        return server, (before + time.monotonic()) / 2

    def _resync(self) -> None:
        try:
            base, at = self._sample()
        except Exception as exc:  # the server is away: count on from the last reading
            logger.debug("could not read the database's clock: %s", exc)
            base, at = None, time.monotonic()
        with self._lock:
            if base is not None:
                self._base = base
            else:
                self._base += at - self._at  # try again a whole interval later
            self._at = at
            self._syncing = False

    def __call__(self) -> float:
        with self._lock:
            since = time.monotonic() - self._at
            if since > self._every and not self._syncing:
                # Off the caller's thread: a clock must not wait on a busy pool.
                self._syncing = True
                threading.Thread(target=self._resync, name="agentrt-clock", daemon=True).start()
            # Never backwards within the process, whatever a new reading says.
            self._last = max(self._last, self._base + since)
            return self._last
