"""A store in memory: every table family as dicts under one lock.

For tests of one node or one rule without a database file (agentrt.testing's node harness
uses it), and as the second backend of the store conformance suite, which keeps the
protocol honest about what is SQLite's and what every store must do. Nothing survives the
process: it is not a backend for runs that must outlive one.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any, TypeVar

from agentrt import records
from agentrt.approvals.model import ApprovalQuery, ApprovalRequest, ApprovalStatus, Decided
from agentrt.records import NewRun
from agentrt.state import TERMINAL, RunStatus, Usage
from agentrt.store.memory_artifacts import ArtifactsMemory
from agentrt.store.memory_effects import EffectsMemory
from agentrt.store.memory_keys import KeysMemory
from agentrt.store.memory_messages import MessagesMemory
from agentrt.store.memory_outbox import OutboxMemory
from agentrt.store.outbox import EventType, approval_event, run_event
from agentrt.store.protocols import Claim, RunChange

__all__ = ["MemoryStore"]


class MemoryStore(MessagesMemory, ArtifactsMemory, OutboxMemory, EffectsMemory, KeysMemory):
    """agentrt.store.protocols.Store, in this process's memory."""

    schema_version = 0
    """No schema: nothing is migrated."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.location = ":memory:"
        self._lock = threading.RLock()
        self._runs: dict[str, records.RunRecord] = {}
        self._traces: dict[str, tuple[str | None, str | None]] = {}
        self._leases: dict[str, records.LeaseRecord] = {}
        self._approvals: dict[str, ApprovalRequest] = {}
        self._calls: dict[tuple[str, int], records.ModelCall] = {}
        self._salt = secrets.token_hex(16)
        self._stops = 0
        """Stop requests written so far: the store's stop_mark."""
        self._keys_init()
        self._outbox_init()

    def redaction_salt(self) -> str:
        return self._salt

    def close(self) -> None:
        """Nothing to close."""

    # runs ---------------------------------------------------------------------------------

    def create_run(self, run: NewRun) -> records.RunRecord | None:
        now = self.clock()
        with self._lock:
            if run.thread_id in self._runs:
                return None
            given = asdict(run)  # copies: what was given is not what is kept
            given.pop("lease")
            record = records.RunRecord(
                **given,
                status=RunStatus.PENDING,
                tenant=run.principal.get("tenant"),
                output=None,
                error=None,
                created_at=now,
                updated_at=now,
                lease_owner=None,
            )
            self._runs[run.thread_id] = record
            self._traces[run.thread_id] = (run.trace_id, None)
            if run.lease is not None:
                self._leases[run.thread_id] = run.lease
            return self._with_lease(record)

    def get_run(self, thread_id: str) -> records.RunRecord | None:
        with self._lock:
            found = self._runs.get(thread_id)
            return self._with_lease(found) if found else None

    def list_runs(
        self, *, status: str | None = None, tenant: str | None = None, limit: int = 100
    ) -> list[records.RunRecord]:
        with self._lock:
            found = [
                r
                for r in self._runs.values()
                if (status is None or r.status.value == status)
                and (tenant is None or r.tenant == tenant)
            ]
            found.sort(key=lambda r: r.thread_id)
            found.sort(key=lambda r: r.created_at, reverse=True)
            return [self._with_lease(r) for r in found[:limit]]

    def change_run(self, thread_id: str, change: RunChange) -> records.RunRecord | None:
        now = self.clock()
        with self._lock:
            record = self._runs.get(thread_id)
            if record is None or record.status is not change.from_status:
                return None
            error = None if change.clear_error else record.error
            self._runs[thread_id] = replace(
                record,
                status=change.status,
                output=change.output if change.output is not None else record.output,
                error=change.error if change.error is not None else error,
                usage=change.usage if change.usage is not None else record.usage,
                budget_report=dict(change.budget_report)
                if change.budget_report is not None
                else record.budget_report,
                updated_at=now,
                waited_seconds=record.waited_seconds + change.add_waited,
                retry_waited_seconds=record.retry_waited_seconds + change.add_retry_waited,
                retry_at=change.retry_at,
                transient_failures=change.transient_failures,
            )
            moved = self._runs[thread_id]
            self._tell(run_event(moved, from_status=change.from_status, now=now))
            if change.cancel_pending is not None:
                for request in self._approvals.values():
                    if request.thread_id == thread_id and request.status is ApprovalStatus.PENDING:
                        self._approvals[request.id] = replace(
                            request,
                            status=ApprovalStatus.CANCELLED,
                            decided_at=now,
                            comment=change.cancel_pending,
                        )
            return self.get_run(thread_id)

    def unfinished_runs(self) -> list[str]:
        with self._lock:
            pending = {
                r.thread_id for r in self._approvals.values() if r.status is ApprovalStatus.PENDING
            }
            found = [
                r
                for r in self._runs.values()
                if r.status in (RunStatus.RUNNING, RunStatus.PENDING)
                or (
                    r.status is RunStatus.AWAITING_APPROVAL
                    and (r.cancel_requested is not None or r.thread_id not in pending)
                )
            ]
            return [r.thread_id for r in sorted(found, key=lambda r: (r.created_at, r.thread_id))]

    def due_retries(self, now: float) -> list[str]:
        with self._lock:
            waiting = (r for r in self._runs.values() if r.status is RunStatus.WAITING_RETRY)
            return [r.thread_id for r in _due(waiting, now, lambda r: (r.retry_at, r.thread_id))]

    def set_usage(self, thread_id: str, usage: Usage) -> None:
        self._update(thread_id, usage=usage)

    def swap_usage(self, thread_id: str, expected: Usage, usage: Usage) -> bool:
        with self._lock:
            record = self._runs.get(thread_id)
            if record is None or record.usage != expected:
                return False
            self._runs[thread_id] = replace(record, usage=usage)
            return True

    def set_budget(self, thread_id: str, budget: Mapping[str, Any]) -> None:
        self._update(thread_id, budget=dict(budget), updated_at=self.clock())

    def request_cancel(self, thread_id: str, reason: str) -> None:
        with self._lock:
            record = self._runs.get(thread_id)
            if record is not None and record.cancel_requested is None:
                self._runs[thread_id] = replace(record, cancel_requested=reason)
            self._stops += 1

    def cancel_requested(self, thread_id: str) -> str | None:
        with self._lock:
            record = self._runs.get(thread_id)
            return record.cancel_requested if record else None

    def run_trace(self, thread_id: str) -> tuple[str | None, str | None]:
        with self._lock:
            return self._traces.get(thread_id, (None, None))

    def set_trace(self, thread_id: str, trace_id: str, span_id: str | None) -> None:
        with self._lock:
            if thread_id in self._runs:
                self._traces[thread_id] = (trace_id, span_id)
                self._update(thread_id, trace_id=trace_id, trace_span_id=span_id)

    def prunable_runs(self, *, before: float, keep_latest: int = 0) -> list[str]:
        with self._lock:
            newest = {r.thread_id for r in self.list_runs(limit=max(0, keep_latest))}
            old = [
                r
                for r in self._runs.values()
                if self._idle(r, before) and r.thread_id not in newest
            ]
            return [r.thread_id for r in sorted(old, key=lambda r: (r.created_at, r.thread_id))]

    def _idle(self, run: records.RunRecord, before: float) -> bool:
        """Whether prune may take ``run``: finished, last updated before ``before``, no
        message queued for it, no lease held on it."""
        held = self._leases.get(run.thread_id)
        return (
            run.status in TERMINAL
            and run.updated_at < before
            and self.queued_message(run.thread_id) is None
            and (held is None or held.expires_at <= self.clock())
        )

    def delete_run(self, thread_id: str, *, idle_before: float | None = None) -> bool:
        with self._lock:
            run = self._runs.get(thread_id)
            if run is None or (idle_before is not None and not self._idle(run, idle_before)):
                return False
            trace_id, _ = self._traces.pop(thread_id, (None, None))
            del self._runs[thread_id]
            self._leases.pop(thread_id, None)
            self._forget_run(thread_id)
            for table in (self._approvals, self._effects):
                for key in [k for k, v in table.items() if v.thread_id == thread_id]:
                    del table[key]
            for call in [k for k in self._calls if k[0] == thread_id]:
                del self._calls[call]
            for span in [
                k
                for k, v in self._spans.items()
                if v.thread_id == thread_id or (trace_id and v.trace_id == trace_id)
            ]:
                del self._spans[span]
            return True

    def _update(self, thread_id: str, **fields: Any) -> None:
        with self._lock:
            record = self._runs.get(thread_id)
            if record is not None:
                self._runs[thread_id] = replace(record, **fields)

    def _with_lease(self, record: records.RunRecord) -> records.RunRecord:
        lease = self._leases.get(record.thread_id)
        return replace(record, lease_owner=lease.owner if lease else None)

    # leases -------------------------------------------------------------------------------

    one_host = True
    """Only this process sees the store."""

    def claim_runs(
        self,
        lease: records.LeaseRecord,
        *,
        now: float,
        limit: int,
        app: records.AppIdentity | None = None,
    ) -> Claim:
        with self._lock:
            pending = {
                r.thread_id for r in self._approvals.values() if r.status is ApprovalStatus.PENDING
            }
            claimable, later = [], []
            for r in self._runs.values():
                held = self._leases.get(r.thread_id)
                if held is not None and held.expires_at > now:
                    later.append(held.expires_at)
                    continue
                if self._message_waits(r):
                    pass
                elif r.status is RunStatus.WAITING_RETRY:
                    if r.retry_at is None or r.retry_at > now:
                        later += [] if r.retry_at is None else [r.retry_at]
                        continue
                elif r.status is RunStatus.AWAITING_APPROVAL:
                    if r.cancel_requested is None and r.thread_id in pending:
                        continue
                elif r.status not in (RunStatus.PENDING, RunStatus.RUNNING):
                    continue
                if app is None or _may_drive(app, r):  # another app's: its workers claim it
                    claimable.append(r)
            claimable.sort(key=lambda r: (r.created_at, r.thread_id))
            taken = tuple(r.thread_id for r in claimable[: max(0, limit)])
            for thread_id in taken:
                self._leases[thread_id] = lease
            return Claim(thread_ids=taken, next_at=min(later, default=None))

    def listen(self, wake: Callable[[], None]) -> None:
        """The store's one process polls."""
        return None

    def lease_of(self, thread_id: str) -> records.LeaseRecord | None:
        with self._lock:
            if thread_id not in self._runs:
                raise KeyError(thread_id)
            return self._leases.get(thread_id)

    def leased_on(
        self, host: str, *, now: float
    ) -> list[tuple[records.RunRecord, records.LeaseRecord]]:
        live = (RunStatus.PENDING, RunStatus.RUNNING)
        with self._lock:
            found = [
                (self._with_lease(run), held)
                for run in self._runs.values()
                if run.status in live
                and (held := self._leases.get(run.thread_id)) is not None
                and held.host == host
                and held.expires_at > now
            ]
        return sorted(found, key=lambda pair: (pair[0].created_at, pair[0].thread_id))

    def take_lease(
        self, thread_id: str, lease: records.LeaseRecord, *, expected: str | None
    ) -> bool:
        with self._lock:
            held = self._leases.get(thread_id)
            if thread_id not in self._runs or (held.owner if held else None) != expected:
                return False
            self._leases[thread_id] = lease
            return True

    def renew_leases(self, leases: Sequence[records.LeaseRenewal]) -> dict[str, bool | None]:
        with self._lock:
            renewed: dict[str, bool | None] = {
                lease.thread_id: self._renew(lease.thread_id, lease.owner, lease.expires_at)
                for lease in leases
            }
            for lease in leases:
                if renewed[lease.thread_id] and lease.active_seconds is not None:
                    run = self._runs[lease.thread_id]
                    self._runs[lease.thread_id] = replace(
                        run, live_active_seconds=lease.active_seconds
                    )
            return renewed

    def _renew(self, thread_id: str, owner: str, expires_at: float) -> bool:
        """Extend ``owner``'s lease; False if it no longer holds it. Under the lock."""
        held = self._leases.get(thread_id)
        if held is None or held.owner != owner:
            return False
        self._leases[thread_id] = replace(held, expires_at=expires_at)
        return True

    def hold_lease(self, thread_id: str, owner: str, expires_at: float) -> records.RunRecord | None:
        with self._lock:
            if not self._renew(thread_id, owner, expires_at):
                return None
            return self.get_run(thread_id)

    def release_lease(
        self, thread_id: str, owner: str, *, trace: tuple[str, str | None] | None = None
    ) -> None:
        with self._lock:
            held = self._leases.get(thread_id)
            if held is not None and held.owner == owner:
                if trace is not None:  # only by the owner, as the other stores
                    self.set_trace(thread_id, *trace)
                del self._leases[thread_id]

    # approvals ----------------------------------------------------------------------------

    def put_approval(self, request: ApprovalRequest) -> ApprovalRequest:
        with self._lock:
            if request.id not in self._approvals:
                self._tell(approval_event(EventType.APPROVAL_REQUESTED, request, now=self.clock()))
            return self._approvals.setdefault(request.id, request)

    def get_approval(self, approval_id: str) -> ApprovalRequest | None:
        with self._lock:
            return self._approvals.get(approval_id)

    def list_approvals(self, query: ApprovalQuery) -> list[ApprovalRequest]:
        q = query
        with self._lock:
            found = [
                r
                for r in self._approvals.values()
                if (q.status is None or r.status.value == q.status)
                and (q.tenant is None or r.tenant == q.tenant)
                and (q.role is None or q.role in r.roles)
                and (q.thread_id is None or r.thread_id == q.thread_id)
                and (q.tool is None or r.tool == q.tool)
                and (q.rule_id is None or r.rule_id == q.rule_id)
                and (q.requested_before is None or r.requested_at <= q.requested_before)
                and (q.after is None or (r.requested_at, r.id) > q.after)
            ]
            return sorted(found, key=lambda r: (r.requested_at, r.id))[: q.limit]

    def due_approvals(self, now: float, *, limit: int = 1000) -> list[ApprovalRequest]:
        with self._lock:
            pending = (r for r in self._approvals.values() if r.status is ApprovalStatus.PENDING)
            return _due(pending, now, lambda r: (r.expires_at, r.id))[:limit]

    def expire_approval(
        self, approval_id: str, *, now: float, escalation: ApprovalRequest | None = None
    ) -> bool:
        with self._lock:
            expired = self._still_pending(
                approval_id,
                status=ApprovalStatus.EXPIRED,
                decided_at=now,
                comment="expired undecided" + (", escalated" if escalation else ""),
                escalated_to=escalation.id if escalation else None,
            )
            if expired:
                gone = self._approvals[approval_id]
                self._tell(approval_event(EventType.APPROVAL_EXPIRED, gone, now=now))
            if expired and escalation is not None:
                self._approvals.setdefault(escalation.id, escalation)
                self._tell(approval_event(EventType.APPROVAL_ESCALATED, escalation, now=now))
            return expired

    def decide_approval(self, approval_id: str, decided: Decided) -> bool:
        now = self.clock()
        with self._lock:
            won = self._still_pending(
                approval_id,
                status=decided.status,
                decided_by=decided.by,
                decided_at=now,
                comment=decided.comment,
                edited_args=decided.edited_args,
                result=decided.result if decided.status is ApprovalStatus.RESOLVED else None,
            )
            if won:
                request = self._approvals[approval_id]
                self._tell(approval_event(EventType.APPROVAL_DECIDED, request, now=now))
            return won

    def _still_pending(self, approval_id: str, **changes: Any) -> bool:
        """Apply ``changes`` if the request is still pending (the conditional update a
        decision and an expiry both are); False if it is not."""
        with self._lock:
            request = self._approvals.get(approval_id)
            if request is None or request.status is not ApprovalStatus.PENDING:
                return False
            self._approvals[approval_id] = replace(request, **changes)
            return True

    # recordings (keys and spans: memory_keys) ---------------------------------------------

    def record_model_call(
        self, thread_id: str, call: records.ModelCall, *, usage: Usage | None = None
    ) -> None:
        with self._lock:
            if usage is not None:
                self._update(thread_id, usage=usage)
            self._calls[(thread_id, call.revision)] = call

    def model_call(self, thread_id: str, revision: int) -> records.ModelCall | None:
        with self._lock:
            return self._calls.get((thread_id, revision))

    def model_calls(self, thread_id: str) -> list[records.ModelCall]:
        with self._lock:
            return sorted(
                (c for (t, _), c in self._calls.items() if t == thread_id),
                key=lambda c: c.revision,
            )


_T = TypeVar("_T")


def _due(
    items: Iterable[_T], now: float, when: Callable[[_T], tuple[float | None, str]]
) -> list[_T]:
    """The items whose time (the first of ``when``) has come by ``now``, soonest first, ties
    by the second (an id)."""
    due = [(at, item) for item in items if (at := when(item))[0] is not None and at[0] <= now]
    return [item for _, item in sorted(due, key=lambda pair: pair[0])]


def _may_drive(app: records.AppIdentity, run: records.RunRecord) -> bool:
    """agentrt.runs.apps.may_drive, as the SQL stores mirror it (the store is below runs):
    a run of ``app``'s name, of an unnamed app whose tools it all has, or from before."""
    if run.app is not None:
        return run.app == app.name
    return run.tools is None or app.tools.issuperset(run.tools)
