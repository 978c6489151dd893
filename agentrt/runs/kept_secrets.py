"""The secret values each run's log holds, kept while the run's row stays as it was.

Every text shown of a run (its goal, output and error) is masked with the secret values its
log holds (``rt.log_secrets``): an answer may repeat a tool's sensitive argument. Reading
them means reading the run's whole log, and a monitor polls a run many times a second (the
review page lists 200); so what was read is kept, keyed by the row's state (its status and
last change, message, and the requests it waits for). A driver keeps what a segment ended
with as the segment's end moves the row (``Driver.drive``), so the first look at a run
that stopped here reads no log at all. An output or an error comes with a move of the
run's status, so a run shown with one is always masked with what its log held by then.
While a run goes on between moves, the values its newer steps add reach only its goal,
which masks them again once it moves.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from agentrt.runs.record import Run

__all__ = ["KeptSecrets"]

KEPT = 4096
"""Runs whose secrets are kept, the least recently shown dropped first."""


class KeptSecrets:
    """What each run's log held when its row was last in a given state."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept: OrderedDict[str, tuple[tuple[Any, ...], list[Any]]] = OrderedDict()
        self._size = kept
        self._lock = threading.Lock()

    @staticmethod
    def _state(run: Run) -> tuple[Any, ...]:
        """What says the row moved: its status and last change, and besides them its
        message and the requests it waits for, so that two states a clock did not tell
        apart (a test's, or two moves in one tick) are never taken for one. Not its usage,
        which every step changes: a polled run would read its log at each."""
        return (
            run.status.value,
            run.updated_at,
            run.message,
            tuple(r.id for r in run.pending_approvals),
        )

    def get(self, run: Run) -> list[Any] | None:
        """What ``run``'s log held when its row was last as it is now; None if not kept."""
        with self._lock:
            found = self._kept.get(run.thread_id)
            if found is None or found[0] != self._state(run):
                return None
            self._kept.move_to_end(run.thread_id)
            return found[1]

    def keep(self, run: Run, values: list[Any]) -> None:
        """Keep ``values`` as what ``run``'s log holds while its row stays as it is."""
        with self._lock:
            self._kept[run.thread_id] = (self._state(run), values)
            self._kept.move_to_end(run.thread_id)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
