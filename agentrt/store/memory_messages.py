"""A thread's messages in memory (MemoryStore's share of MessageStore).

Every change happens under the store's one lock, together with the run's move it goes with:
the memory store's equivalent of one transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from agentrt import records
from agentrt.approvals.model import ApprovalRequest, ApprovalStatus
from agentrt.records import MessageOpening, MessageRecord, NewMessage
from agentrt.state import TERMINAL, RunStatus, Usage

__all__ = ["MessagesMemory"]

QUEUED = "queued"
CURRENT = "current"


class MessagesMemory:
    """MessageStore in memory; a deleted run's messages go with it (``_forget_run``)."""

    _lock: threading.RLock
    clock: Callable[[], float]
    _runs: dict[str, records.RunRecord]
    _leases: dict[str, records.LeaseRecord]
    _approvals: dict[str, ApprovalRequest]
    _stops: int

    @property
    def _messages(self) -> dict[str, dict[int, MessageRecord]]:
        # Made on first use: the store's __init__ stays the other families' own.
        with self._lock:
            return self.__dict__.setdefault("_thread_messages", {})  # type: ignore[no-any-return]

    def _forget_run(self, thread_id: str) -> None:
        with self._lock:
            self._messages.pop(thread_id, None)
        super()._forget_run(thread_id)  # type: ignore[misc]

    def _message_waits(self, record: records.RunRecord) -> bool:
        """A message waits for the thread: one queued on a finished thread, or one sent to
        interrupt a live one that no reconcile gate holds (for claim_runs)."""
        queued = [
            m for m in self._messages.get(record.thread_id, {}).values() if m.status == QUEUED
        ]
        if record.status in TERMINAL:
            return bool(queued)
        settling = any(
            a.thread_id == record.thread_id
            and a.kind == "reconcile"
            and a.status is ApprovalStatus.PENDING
            for a in self._approvals.values()
        )
        return not settling and any(m.interrupt for m in queued)

    def _next_index(self, thread_id: str) -> int | None:
        record = self._runs.get(thread_id)
        if record is None:
            return None
        return max([record.message, *self._messages.get(thread_id, {})]) + 1

    def add_message(
        self, message: NewMessage, *, only_if_idle: bool = False
    ) -> MessageRecord | None:
        with self._lock:
            index = self._next_index(message.thread_id)
            if index is None:
                return None
            if only_if_idle and (
                self._runs[message.thread_id].status not in TERMINAL
                or self.queued_message(message.thread_id) is not None
            ):
                return None
            kept = _new(message, index, QUEUED, self.clock())
            self._messages.setdefault(message.thread_id, {})[index] = kept
            if message.interrupt:
                self._stops += 1
            return kept

    def thread_messages(self, thread_id: str) -> list[MessageRecord]:
        with self._lock:
            found = self._messages.get(thread_id, {})
            return [found[i] for i in sorted(found)]

    def queued_message(self, thread_id: str) -> MessageRecord | None:
        with self._lock:
            queued = [m for m in self.thread_messages(thread_id) if m.status == QUEUED]
            return min(queued, key=lambda m: (not m.interrupt, m.index), default=None)

    def open_message(self, thread_id: str, opening: MessageOpening) -> records.RunRecord | None:
        now = self.clock()
        with self._lock:
            record = self._runs.get(thread_id)
            if (
                record is None
                or record.status is not opening.from_status
                or record.message != opening.from_message
            ):
                return None
            kept = self._messages.setdefault(thread_id, {})
            index = opening.index
            taken = kept.get(index)
            if taken is None or taken.status != QUEUED:  # taken meanwhile
                return None
            if opening.first is not None and opening.first.index not in kept:
                kept[opening.first.index] = replace(opening.first, status=CURRENT)
            closing = kept.get(opening.from_message)
            if closing is not None and closing.status == CURRENT:
                kept[opening.from_message] = replace(
                    closing,
                    status=opening.closing,
                    output=opening.output,
                    error=opening.error,
                    usage=Usage(**opening.spent),
                    ended_at=now if opening.ended_at is None else opening.ended_at,
                    budget_report=(
                        dict(record.budget_report)
                        if record.budget_report is not None
                        and opening.closing == RunStatus.BUDGET_EXCEEDED.value
                        else None
                    ),
                )
            kept[index] = replace(
                taken, status=CURRENT, usage_before=opening.usage_before, started_at=now
            )
            self._runs[thread_id] = replace(
                record,
                status=RunStatus.RUNNING,
                message=index,
                output=None,
                error=None,
                budget_report=None,
                cancel_requested=None,
                retry_at=None,
                transient_failures=0,
                waited_seconds=record.waited_seconds + opening.add_waited,
                updated_at=now,
            )
            self._leases[thread_id] = opening.lease
            if opening.cancel_pending is not None:
                self._supersede(thread_id, opening, now)
            moved = self._runs[thread_id]
            return replace(moved, lease_owner=opening.lease.owner)

    def _supersede(self, thread_id: str, opening: MessageOpening, now: float) -> None:
        """The run's pending requests cancelled as superseded, and those the opening
        names that a person gave and nothing carried out: their decision stays as given."""
        note = opening.cancel_pending
        given = (ApprovalStatus.APPROVED, ApprovalStatus.EDITED)
        for request in list(self._approvals.values()):
            if request.thread_id != thread_id:
                continue
            if request.status is ApprovalStatus.PENDING:
                self._approvals[request.id] = replace(
                    request,
                    status=ApprovalStatus.CANCELLED,
                    decided_at=now,
                    comment=note,
                    superseded=note,
                )
            elif request.id in opening.supersede and request.status in given:
                self._approvals[request.id] = replace(
                    request, status=ApprovalStatus.CANCELLED, superseded=note
                )

    def stop_mark(self) -> int:
        return self._stops

    def stop_requests(self, thread_id: str) -> tuple[str | None, bool]:
        with self._lock:
            record = self._runs.get(thread_id)
            if record is None:
                return None, False
            waiting = any(
                m.status == QUEUED and m.interrupt
                for m in self._messages.get(thread_id, {}).values()
            )
            return record.cancel_requested, waiting


def _new(message: NewMessage, index: int, status: str, now: float) -> MessageRecord:
    return MessageRecord(
        thread_id=message.thread_id,
        index=index,
        text=message.text,
        principal=dict(message.principal),
        status=status,
        created_at=now,
        budget=dict(message.budget) if message.budget is not None else None,
        interrupt=message.interrupt,
    )
