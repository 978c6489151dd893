"""A segment's end written into its run's row: settled from what the graph ended with,
failed (or left waiting to retry), or ended in a status (cancelled); mixed into the
Driver (agentrt.runs.driver), which calls each in a worker thread holding the lease."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentrt.faults import retry_after, retry_delay, transient_cause
from agentrt.limits import error_text
from agentrt.logs import get_logger, masking
from agentrt.records import RunRecord
from agentrt.redaction import Redactor
from agentrt.runs.record import Run, run_of
from agentrt.runs.resuming import config
from agentrt.runs.stats import denials_of
from agentrt.runs.streaming import INTERRUPT_KEY
from agentrt.state import TERMINAL, Event, RunStatus, storable_text
from agentrt.store.protocols import Store
from agentrt.tools.registry import ToolRegistry
from agentrt.tracing import RunTracing
from agentrt.tracing.shown import log_secrets, shown

__all__ = ["RunSettling"]

logger = get_logger()


class RunSettling:
    """Mixed into the Driver: where a run stopped, written to its row (and, ended, to its
    checkpoint)."""

    store: Store
    tools: ToolRegistry
    tracing: RunTracing
    redactor: Redactor
    clock: Any

    if TYPE_CHECKING:  # the Driver's own

        def record(self, thread_id: str) -> RunRecord: ...

        def move(
            self, thread_id: str, status: RunStatus, known: RunRecord | None = None, **change: Any
        ) -> RunRecord: ...

    def settle(
        self,
        graph: Any,
        thread_id: str,
        values: Mapping[str, Any],
        known: RunRecord | None = None,
    ) -> Run:
        """Write what the graph ended with (its values, as ``invoke`` answers them: with
        ``__interrupt__`` when a gate stopped it) into the runs row (``known``: the row as
        the segment began, which the move starts from)."""
        self._spans_before_status()
        usage = values.get("usage")
        denials = denials_of(values.get("events", ()))
        if values.get(INTERRUPT_KEY):
            record = self.move(
                thread_id, RunStatus.AWAITING_APPROVAL, known=known, usage=usage, denials=denials
            )
        else:
            status = RunStatus(values["status"])
            if status not in TERMINAL:
                raise RuntimeError(
                    f"run {thread_id!r} stopped in status {status.value!r} with nothing next"
                )
            stop = values.get("stop") or {}
            record = self.move(
                thread_id,
                status,
                known=known,
                output=values.get("output"),
                error=values.get("error"),
                usage=usage,
                budget_report=stop.get("budget"),
                denials=denials,
            )
        run = run_of(record, self.store)
        if run.cancel_requested is not None:  # asked after its last step
            return self.end(graph, thread_id, RunStatus.CANCELLED, run.cancel_requested, record)
        return run

    def fail(
        self, graph: Any, thread_id: str, exc: Exception, known: RunRecord | None = None
    ) -> Run:
        """A node raised past its retries: end the run as failed, in the graph and the row;
        or, for a failure that may pass, leave it waiting to be retried (``known``: the row
        as the segment began)."""
        self._spans_before_status()
        cause = transient_cause(exc)
        snapshot = self._snapshot(graph, thread_id)
        secrets = self._secrets_of(snapshot)
        if cause is not None:
            failures = (known or self.record(thread_id)).transient_failures + 1
            delay = retry_delay(failures, at_least=retry_after(exc))
            # Expected now and then: one line; the stack trace only for those who ask.
            with masking(secrets):
                logger.warning("run %r waits to retry in %.0fs: %s", thread_id, delay, cause)
                logger.debug("run %r stopped to wait by", thread_id, exc_info=exc)
            said = shown(f"waiting to retry: {cause}", self.redactor, known=secrets)
            record = self.move(
                thread_id,
                RunStatus.WAITING_RETRY,
                known=known,
                error=storable_text(said),
                retry_at=self.store.clock() + delay,  # claims compare it with the store's
            )
            return run_of(record, self.store)
        with masking(secrets):
            logger.error("run %r failed", thread_id, exc_info=exc)
        reason = error_text(f"{type(exc).__name__}: {exc}")  # a body it quotes: not whole
        return self.end(graph, thread_id, RunStatus.FAILED, reason, known, snapshot=snapshot)

    def end(
        self,
        graph: Any,
        thread_id: str,
        status: RunStatus,
        reason: str,
        known: RunRecord | None = None,
        *,
        snapshot: Any = None,
        told: Sequence[Event] = (),
    ) -> Run:
        """End a run in ``status``, in the checkpoint and the row (``known``: the row as
        this process holding the lease last had it; ``snapshot``: its state as just read,
        if it was; ``told``: events its log gets as it ends)."""
        if snapshot is None:
            snapshot = graph.get_state(config(thread_id))
        # Redacted here, at the source: an error quotes what failed (a provider's message
        # with the API key it was given, or a sensitive argument the run's log holds), and
        # the stored error is what every surface shows.
        reason = storable_text(shown(reason, self.redactor, known=self._secrets_of(snapshot)))
        if snapshot.values:
            # Mark the checkpoint itself terminal, so a resume has nothing left to run.
            graph.update_state(
                config(thread_id),
                {
                    "status": status.value,
                    "error": reason,
                    "stop": {"status": status.value, "reason": reason},
                    **({"events": list(told)} if told else {}),
                },
                as_node="finish",
            )
        usage = snapshot.values.get("usage") if snapshot.values else None
        if usage is not None:
            row = known or self.store.get_run(thread_id)
            if row is not None and row.usage["steps"] > usage["steps"]:
                # A model answer recorded (and counted in the row) after the last
                # checkpoint, its process dead since: paid for, so it stays counted.
                usage = row.usage
            live = None if row is None else row.live_active_seconds
            if live is not None and live > usage["active_seconds"]:
                # Time a segment killed inside a node spent there (its lease's renewals
                # wrote it), which no checkpoint holds: spent, so it stays counted.
                usage = {**usage, "active_seconds": live}
        denials = denials_of(snapshot.values.get("events", ())) if snapshot.values else None
        record = self.move(
            thread_id, status, known=known, error=reason, usage=usage, denials=denials
        )
        return run_of(record, self.store)

    def _snapshot(self, graph: Any, thread_id: str) -> Any:
        """The run's state, to mask its error with what its log holds; None if it cannot be
        read (the store that failed the run): the error is masked all the same."""
        try:
            return graph.get_state(config(thread_id))
        except Exception:
            logger.debug("a run's log could not be read to mask its error with", exc_info=True)
            return None

    def _secrets_of(self, snapshot: Any) -> list[Any]:
        """The secret values the run's log holds (``tracing.shown.log_secrets``): its error
        may quote a sensitive argument, in a log line too, as on its spans."""
        values = snapshot.values if snapshot is not None else None
        events = (values.get("events") if values else None) or ()
        return log_secrets(events, self.redactor, self.tools.sensitive_of)

    def _spans_before_status(self) -> None:
        """Node spans stored before the row says where the run stopped: whoever sees that
        status can read its trace (the segment's own span closes just after)."""
        self.tracing.flush()  # only where they are stored: no one waits on a collector
