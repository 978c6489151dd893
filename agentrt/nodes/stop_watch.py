"""When a node looks in the store for a request to stop its run (a cancel, an interrupting
message).

A look is a read of the store (on PostgreSQL a round trip; on SQLite a read that, at many
runs at once, queues on the store's one connection), so a run looks only when a request
may be new:

- where the store keeps a stop mark (``Store.stop_mark``: SQLite, the memory store), before
  any node if the mark moved since the run last looked, if this process has asked any run
  to stop since (``stop_asked``), or if ``MARKED_STALE`` seconds have passed. A request
  asked through agentrt, in any process, is seen at the next node, as it would be by a
  read; one written around agentrt (or whose process died before it moved the mark) at the
  first node ``MARKED_STALE`` seconds after the run's last look;
- where it keeps none (PostgreSQL), before every node that starts work with consequences
  (a model call, an effect, a gate) and before policy, where an interrupting message stops
  the run before its next action. Before verify, which only checks an effect already done
  and where nothing but a cancel could stop the run, only if this process has asked a stop
  since or ``STALE`` seconds have passed: a cancel made in another process is seen at the
  node after verify at the latest.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

__all__ = ["MARKED_STALE", "STALE", "StopWatch", "stop_asked", "stops_asked"]

STALE = 0.25
"""Seconds after which a run looks again before verify, on a store with no stop mark."""
MARKED_STALE = 5.0
"""Seconds after which a run looks again before any node, on a store with a stop mark
although the mark stood still: for a request written around agentrt, or by a process that
died between its commit and the mark. Long enough that at many runs at once, when each run
moves a node every second or so, few of them read."""
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

    def __init__(
        self,
        stale: float = STALE,
        clock: Callable[[], float] = time.monotonic,
        *,
        marked_stale: float = MARKED_STALE,
    ) -> None:
        self.stale = stale
        self.marked_stale = marked_stale
        self._clock = clock
        self._looked: dict[str, tuple[float, int, object]] = {}

    def due(self, thread_id: str, mark: object | None, *, always_unmarked: bool) -> bool:
        """True if the run should look now. ``mark``: the store's stop mark, read now
        (None: it keeps none); ``always_unmarked``: whether, with no mark, this node looks
        every time (all but verify)."""
        last = self._looked.get(thread_id)
        if last is None or last[1] != _asked[0]:
            return True
        if mark is None:
            return always_unmarked or self._clock() - last[0] >= self.stale
        return mark != last[2] or self._clock() - last[0] >= self.marked_stale

    def forget(self, thread_id: str) -> None:
        """The run found an interrupt it cannot act on yet: its next node looks again."""
        self._looked.pop(thread_id, None)

    def looked(self, thread_id: str, asked: int, mark: object | None) -> None:
        """The run looked (``asked``: ``stops_asked()``, ``mark``: the store's stop mark,
        both read before the look)."""
        if len(self._looked) >= _KEPT:
            self._looked.clear()
        self._looked[thread_id] = (self._clock(), asked, mark)
