"""The secret values each run's log holds, kept while the run's row stays as it was.

Every text the API shows of a run (its goal, output and error) is masked with the secret
values its log holds (``rt.log_secrets``): an answer may repeat a tool's sensitive
argument. Reading them means reading the run's whole log, and a monitor polls a run many
times a second (the review page lists 200); so what was read is kept, keyed by the row's
state (its status and last change, message, usage and the requests it waits for). An
output or an error comes with a move of the run's status, so a run shown with one is
always masked with what its log held by then. While a run goes on between moves, the
values its newer steps add reach only its goal, which masks them again once it moves.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from agentrt.runtime import AgentRuntime, Run
from agentrt.state import RunStatus

__all__ = ["RunSecrets"]

KEPT = 4096
"""Runs whose secrets are kept, the least recently shown dropped first."""


class RunSecrets:
    """``run_secrets`` of each run, read once per state of its row."""

    def __init__(self, runtime: AgentRuntime, kept: int = KEPT) -> None:
        self._runtime = runtime
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

    def cached(self, run: Run) -> list[Any] | None:
        """What ``run``'s log held when its row was last as it is now; None if not read."""
        if run.status is RunStatus.PENDING:
            return []  # never begun: it has no log yet
        with self._lock:
            found = self._kept.get(run.thread_id)
            if found is None or found[0] != self._state(run):
                return None
            self._kept.move_to_end(run.thread_id)
            return found[1]

    def known(self, run: Run) -> list[Any]:
        """What ``run``'s log holds, read if not kept for its row as it is: off the event
        loop then."""
        found = self.cached(run)
        if found is not None:
            return found
        values = self._runtime.log_secrets(run.thread_id)
        with self._lock:
            self._kept[run.thread_id] = (self._state(run), values)
            self._kept.move_to_end(run.thread_id)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return values
