"""The outbox: events worth telling people, written in the transaction of the change they say.

A store writes an event in the same transaction as the change it describes (a request
asked, decided, expired or escalated; a run finished, failed, cancelled, stopped by its
budget or set to wait to retry), so no event is lost to a crash and none is told of a
change that rolled back. What each event holds is decided here, once, for every backend:
the store only calls these builders inside its transactions. Delivery to webhooks
(agentrt.webhooks) reads the outbox afterwards, at least once, in order per run.

Events carry no tool arguments, results or outputs (only their digest and the request's
id): a receiver follows the link to the review page, where the reviewer signs in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from agentrt.approvals.model import ApprovalRequest
from agentrt.records import RunRecord
from agentrt.state import RunStatus

__all__ = [
    "EVENT_TYPES",
    "TOLD_STATUSES",
    "Delivery",
    "DeliveryOutcome",
    "DeliveryQuery",
    "DeliveryStatus",
    "EventType",
    "OutboxEvent",
    "OutboxStore",
    "approval_event",
    "run_event",
]


class EventType(StrEnum):
    """What an event tells."""

    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_DECIDED = "approval.decided"
    APPROVAL_EXPIRED = "approval.expired"
    APPROVAL_ESCALATED = "approval.escalated"
    RUN_SUCCEEDED = "run.succeeded"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"
    RUN_BUDGET_EXCEEDED = "run.budget_exceeded"
    RUN_WAITING_RETRY = "run.waiting_retry"


EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)
"""Every event type, as endpoints' filters name them."""

_RUN_EVENTS = {
    RunStatus.SUCCEEDED: EventType.RUN_SUCCEEDED,
    RunStatus.FAILED: EventType.RUN_FAILED,
    RunStatus.CANCELLED: EventType.RUN_CANCELLED,
    RunStatus.BUDGET_EXCEEDED: EventType.RUN_BUDGET_EXCEEDED,
    RunStatus.WAITING_RETRY: EventType.RUN_WAITING_RETRY,
}

TOLD_STATUSES = frozenset(_RUN_EVENTS)
"""The statuses a run's move into is told (a store reads the row for the event only then)."""

_ERROR_CHARS = 500
"""An error is cut to this many characters in an event: enough to tell what went wrong."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxEvent:
    """One event in the outbox."""

    id: str
    """Stable: every delivery of the event carries it, so receivers dedupe on it."""
    type: str
    """An EventType's value."""
    thread_id: str
    """The run it is about (deliveries are ordered per run)."""
    tenant: str | None
    """The run's tenant: only endpoints for this tenant (or every tenant) receive it."""
    data: dict[str, Any]
    """What happened, as JSON."""
    created_at: float
    """When the change was written (epoch seconds)."""
    seq: int = 0
    """Its place in the outbox, given by the store when written (0 before)."""


class DeliveryStatus(StrEnum):
    """Where one event stands for one endpoint."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    """Given up after retrying for the endpoint's give_up_after: the dead letter."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One event for one endpoint, and how its sending goes."""

    endpoint: str
    """The endpoint's name (its URL and secret stay in the configuration)."""
    event: OutboxEvent
    """What is sent."""
    status: DeliveryStatus
    """pending, delivered or dead."""
    attempts: int = 0
    """Sends tried so far."""
    next_at: float = 0.0
    """When it may be sent (again)."""
    last_error: str | None = None
    """Why the last try failed, in words (no URL, no secret)."""
    last_status: int | None = None
    """The HTTP status the last try got, if any."""
    delivered_at: float | None = None
    """When a receiver took it."""
    updated_at: float = 0.0
    """When this row last changed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryOutcome:
    """What one try of a claimed delivery came to, as the dispatcher writes it."""

    status: DeliveryStatus
    """delivered; pending (tried again at next_at); or dead."""
    attempts: int
    """Sends tried so far, this one included."""
    now: float
    """When the try ended."""
    next_at: float | None = None
    """For pending: when to try again."""
    error: str | None = None
    """Why it failed, in words."""
    http_status: int | None = None
    """The HTTP status the receiver answered, if it answered."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryQuery:
    """Which deliveries to list (newest first)."""

    status: str | None = None
    """pending, delivered or dead; None for all."""
    endpoint: str | None = None
    """One endpoint's."""
    tenant: str | None = None
    """One tenant's events."""
    thread_id: str | None = None
    """One run's events."""
    event_id: str | None = None
    """One event's."""
    limit: int = 100
    """At most this many."""


def _event_id(*parts: Any) -> str:
    text = json.dumps([str(p) for p in parts], separators=(",", ":"))
    return "evt_" + hashlib.sha256(text.encode()).hexdigest()[:24]


def approval_event(kind: EventType, request: ApprovalRequest, *, now: float) -> OutboxEvent:
    """The event of ``kind`` about ``request`` (as it is after the change). Its id follows
    from the kind and the request, so a re-run that writes it again writes nothing new."""
    data: dict[str, Any] = {
        "approval_id": request.id,
        "kind": request.kind,
        "tool": request.tool,
        "args_digest": request.args_digest,
        "rule_id": request.rule_id,
        "reason": request.reason,
        "required_roles": list(request.roles),
        "requested_by": request.requested_by,
        "requested_at": request.requested_at,
        "expires_at": request.expires_at,
        "status": request.status.value,
    }
    if kind is EventType.APPROVAL_DECIDED:
        data |= {"decided_by": request.decided_by, "decided_at": request.decided_at}
    if request.escalated_from is not None:
        data["escalated_from"] = request.escalated_from
    if request.escalated_to is not None:
        data["escalated_to"] = request.escalated_to
    return OutboxEvent(
        id=_event_id(kind.value, request.id),
        type=kind.value,
        thread_id=request.thread_id,
        tenant=request.tenant,
        data=data,
        created_at=now,
    )


def run_event(record: RunRecord, *, from_status: RunStatus, now: float) -> OutboxEvent | None:
    """The event a status move tells (``record`` is the run after it, moved from
    ``from_status``), or None: only moves into an ending, or into waiting to retry, are
    told."""
    kind = _RUN_EVENTS.get(record.status)
    if kind is None or from_status is record.status:
        return None
    data: dict[str, Any] = {
        "status": record.status.value,
        "from_status": from_status.value,
        "goal": record.goal,
        "error": record.error[:_ERROR_CHARS] if record.error else None,
    }
    if record.status is RunStatus.WAITING_RETRY:
        data["retry_at"] = record.retry_at
    if record.budget_report is not None and record.status is RunStatus.BUDGET_EXCEEDED:
        data["limit"] = record.budget_report.get("limit")
    return OutboxEvent(
        id=_event_id(kind.value, record.thread_id, record.transient_failures, now),
        type=kind.value,
        thread_id=record.thread_id,
        tenant=record.tenant,
        data=data,
        created_at=now,
    )


class OutboxStore(Protocol):
    """Events written in the transaction of the change they describe (store/outbox.py says
    which: a store writes them from change_run, put_approval, decide_approval and
    expire_approval), and their deliveries to webhook endpoints.

    An endpoint's deliveries are made from the outbox past its cursor; the rules of
    which events an endpoint takes, and of retrying, live above (agentrt.webhooks).
    """

    def outbox_events(
        self, *, after: int = 0, limit: int = 500, thread_id: str | None = None
    ) -> list[OutboxEvent]:
        """Events past seq ``after`` (one run's, if given), in the order written."""
        ...

    def outbox_cursor(self, endpoint: str) -> int:
        """The seq up to which events were looked at for ``endpoint`` (0 before any)."""
        ...

    def add_deliveries(
        self, endpoint: str, events: Sequence[OutboxEvent], *, cursor: int, upto: int, now: float
    ) -> bool:
        """Pending deliveries of ``events`` to ``endpoint``, due at ``now``, and its cursor
        moved from ``cursor`` to ``upto``, at once; False (nothing written) if the cursor
        is no longer ``cursor`` (another dispatcher moved it first)."""
        ...

    def claim_deliveries(
        self, endpoint: str, *, owner: str, now: float, until: float, limit: int
    ) -> list[Delivery]:
        """Hold up to ``limit`` pending deliveries due by ``now`` for ``owner`` until
        ``until``, oldest first, skipping those a live claim holds; each is the oldest
        delivery of its run still pending for this endpoint, so a run's events go out in
        order. Of dispatchers claiming at once, each delivery goes to one."""
        ...

    def finish_delivery(
        self, endpoint: str, event_id: str, *, owner: str, outcome: DeliveryOutcome
    ) -> bool:
        """Write how a try went, if ``owner`` still holds the claim and the delivery is
        pending; the claim is let go. False if not (its claim ran out and another took it)."""
        ...

    def list_deliveries(self, query: DeliveryQuery) -> list[Delivery]:
        """Newest event first."""
        ...

    def retry_delivery(self, endpoint: str, event_id: str, *, now: float) -> bool:
        """A dead delivery pending again, due at ``now``, its attempts counted from 0;
        False if there is no such dead delivery."""
        ...
