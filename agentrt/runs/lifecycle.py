"""A run's lifecycle: the status moves state.TRANSITIONS allows, and what goes with each.

The rules live here, above the store: leaving a gate counts the time a person took (never
active time), leaving waiting_retry counts the time waited and clears the failure that
made the run wait, failures that may pass are counted in a row, and a run that ends takes
its pending approvals with it (a person must not decide for a run that can no longer act).
The store applies the worked-out change only if the run is still where it was read, so
two processes moving one run cannot both win.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from typing_extensions import Unpack

from agentrt.errors import IllegalTransition, UnknownRun
from agentrt.state import TERMINAL, RunStatus, Usage, check_transition
from agentrt.store.protocols import RunChange, RunRecord, RunStore

__all__ = ["Carried", "change_for", "move"]


class Carried(TypedDict, total=False):
    """What a status move may carry: each set when given (not None)."""

    output: str | None
    error: str | None
    usage: Usage | None
    budget_report: Mapping[str, Any] | None
    retry_at: float | None
    """For waiting_retry: when the run may go on."""
    denials: Mapping[str, int] | None
    """The run's policy denials so far, by rule id."""


def change_for(
    record: RunRecord, status: RunStatus, *, now: float, **carried: Unpack[Carried]
) -> RunChange:
    """The change that moves ``record`` to ``status``; IllegalTransition if it may not."""
    error = carried.get("error")
    current = record.status
    # Staying put is fine for a live run (e.g. usage updates); a finished run is final.
    if current is not status or status in TERMINAL:
        check_transition(current, status, thread_id=record.thread_id)
    leaving = current is not status
    stopped = max(0.0, now - record.updated_at) if leaving else 0.0
    was_waiting_retry = leaving and current is RunStatus.WAITING_RETRY
    if status is RunStatus.WAITING_RETRY:
        failures = record.transient_failures + 1
    elif status is RunStatus.RUNNING:
        failures = record.transient_failures  # still going: the count is not reset yet
    else:
        failures = 0  # the segment ended some other way: the count starts again
    return RunChange(
        from_status=current,
        status=status,
        output=carried.get("output"),
        error=error,
        clear_error=was_waiting_retry and error is None,
        usage=carried.get("usage"),
        budget_report=carried.get("budget_report"),
        add_waited=stopped if current is RunStatus.AWAITING_APPROVAL else 0.0,
        add_retry_waited=stopped if was_waiting_retry else 0.0,
        retry_at=carried.get("retry_at") if status is RunStatus.WAITING_RETRY else None,
        transient_failures=failures,
        cancel_pending=f"run ended {status.value}" if status in TERMINAL else None,
        denials=carried.get("denials"),
    )


def move(
    store: RunStore,
    thread_id: str,
    status: RunStatus,
    *,
    now: float,
    where: str = "this store",
    known: RunRecord | None = None,
    **carried: Unpack[Carried],
) -> RunRecord:
    """Move a run to ``status`` and return its row after; IllegalTransition if the table
    forbids the move from where the run is when it is written.

    ``known``: the row as the caller read or wrote it while holding the run's lease (the
    driver has it in hand), tried instead of reading it again. The write applies only if
    the run is still in that status; if not, the row is read and the move decided anew.
    """
    record = known if known is not None and known.thread_id == thread_id else None
    while True:
        read = record is None
        if record is None:
            record = store.get_run(thread_id)
            if record is None:
                raise UnknownRun(thread_id, where)
        try:
            change = change_for(record, status, now=now, **carried)
        except IllegalTransition:
            if read:
                raise
            record = None  # the row in hand may be behind: judge the move on the row itself
            continue
        moved = store.change_run(thread_id, change)
        if moved is not None:
            return moved
        # Another process moved the run between the read and the write: decide again from
        # where it is now (the transition table may no longer allow this move).
        record = None
