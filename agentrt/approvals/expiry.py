"""What expiry does to a request nobody decided: reject it, or escalate to another role."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from agentrt.approvals.model import ApprovalRequest, ApprovalStatus
from agentrt.digests import approval_id

__all__ = ["Expiring", "escalation_of", "expire_due"]


class Expiring(Protocol):
    """What expiry reads and writes (the store's approvals table): each expiry is a
    conditional update, so two sweeps, or a sweep and a decider, never both win."""

    def due_approvals(self, now: float, *, limit: int = 1000) -> list[ApprovalRequest]: ...

    def expire_approval(
        self, approval_id: str, *, now: float, escalation: ApprovalRequest | None = None
    ) -> bool: ...


def escalation_of(request: ApprovalRequest, *, now: float) -> ApprovalRequest:
    """The request that replaces ``request`` when it expires and its rule says escalate.

    Its id is deterministic from the expired one, so a sweep that runs twice (or two sweeps
    at once) make one follow-up, not two. It expires after the same time span and is then
    rejected: escalation happens once, it does not climb forever.
    """
    assert request.escalate_to is not None
    span = None if request.expires_at is None else request.expires_at - request.requested_at
    # The escalation role takes the deciding rule's place; any other tier still applies.
    roles = (request.escalate_to, *(r for r in request.roles[1:] if r != request.escalate_to))
    return replace(
        request,
        id=approval_id(request.thread_id, request.step_id, f"escalation:{request.id}"),
        required_role=request.escalate_to,
        required_roles=roles,
        reason=f"{request.reason} (escalated: {request.id!r} expired undecided)",
        requested_at=now,
        expires_at=None if span is None else now + span,
        status=ApprovalStatus.PENDING,
        decided_by=None,
        decided_at=None,
        comment=None,
        edited_args=None,
        on_expiry="reject",
        escalate_to=None,
        escalated_from=request.id,
        escalated_to=None,
    )


def expire_due(
    store: Expiring, now: float
) -> tuple[tuple[ApprovalRequest, ...], tuple[ApprovalRequest, ...]]:
    """Expire (or escalate) every request due at ``now``; those this call won, and the
    escalations it made.

    Each expiry is a conditional update, so sweeping twice is a no-op and a decider racing
    the sweep either wins or gets ApprovalExpired.
    """
    expired: list[ApprovalRequest] = []
    escalated: list[ApprovalRequest] = []
    while due := store.due_approvals(now, limit=500):
        for request in due:
            follow = (
                escalation_of(request, now=now)
                if request.on_expiry == "escalate" and request.escalate_to
                else None
            )
            if not store.expire_approval(request.id, now=now, escalation=follow):
                continue  # decided (or swept) a moment ago by someone else
            expired.append(request)
            if follow is not None:
                escalated.append(follow)
    return tuple(expired), tuple(escalated)
