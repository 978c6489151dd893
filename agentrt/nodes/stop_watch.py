"""When a node looks in the store for a request to stop its run (a cancel, an interrupting
message).

The run looks before every node that starts work with consequences (a model call, an
effect, a gate) and before policy, where an interrupting message stops the run before its
next action. Before verify, which only checks an effect already done and where nothing but
a cancel could stop the run, it looks only if ``STALE`` seconds have passed since it last
looked for that thread, or if this process has asked any run to stop since (``stop_asked``):
a cancel made in this process is seen at the next node, as always; one made in another
process at the next node that looks, which is the node after verify at the latest. A look
is a read of the store, which on PostgreSQL is a round trip.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

__all__ = ["STALE", "StopWatch", "stop_asked", "stops_asked"]

STALE = 0.25
"""Seconds after which a run looks again before verify."""
_KEPT = 4096
"""Threads whose last look is remembered; past it all are forgotten (each then looks)."""

_counter = itertools.count(1)
_asked = [0]


def stop_asked() -> None:
    """Tell the runs of this process that a stop was just asked, after it was written: each
    looks at its next node."""
    _asked[0] = next(_counter)


def stops_asked() -> int:
    """How many stops this process has asked so far (read before a look, kept with it)."""
    return _asked[0]


class StopWatch:
    """Per thread, when its run last looked for a stop request, and how many this process
    had asked by then."""

    def __init__(self, stale: float = STALE, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale = stale
        self._clock = clock
        self._looked: dict[str, tuple[float, int]] = {}

    def due(self, thread_id: str) -> bool:
        """True if the run should look now, before a pure node."""
        last = self._looked.get(thread_id)
        if last is None or last[1] != _asked[0]:
            return True
        return self._clock() - last[0] >= self.stale

    def forget(self, thread_id: str) -> None:
        """The run found an interrupt it cannot act on yet: its next node looks again."""
        self._looked.pop(thread_id, None)

    def looked(self, thread_id: str, asked: int) -> None:
        """The run looked (``asked``: ``stops_asked()`` read before the look)."""
        if len(self._looked) >= _KEPT:
            self._looked.clear()
        self._looked[thread_id] = (self._clock(), asked)
