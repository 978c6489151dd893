"""The secret values each run's log holds, as the service masks a run with them.

Every text the API shows of a run (its goal, output and error) is masked with the secret
values its log holds. A monitor polls a run many times a second (the review page lists
200), so they are read once per state of the run's row and kept by the runtime
(``rt.kept_log_secrets``, agentrt.runs.kept_secrets), which also keeps what a segment
this process drove ended with: a run answered as it stops (a join) reads no log.
"""

from __future__ import annotations

from typing import Any

from agentrt.runtime import AgentRuntime, Run

__all__ = ["RunSecrets"]


class RunSecrets:
    """``rt.log_secrets`` of each run, read once per state of its row."""

    def __init__(self, runtime: AgentRuntime) -> None:
        self._runtime = runtime

    def cached(self, run: Run) -> list[Any] | None:
        """What ``run``'s log held when its row was last as it is now; None if not kept.
        No I/O: for the event loop."""
        return self._runtime.kept_log_secrets(run)

    def known(self, run: Run) -> list[Any]:
        """What ``run``'s log holds, read if not kept for its row as it is: off the event
        loop then."""
        return self._runtime.log_secrets(run.thread_id, as_of=run)
