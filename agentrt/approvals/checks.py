"""The checks a decision must pass before it is recorded: each refusal its own error."""

from __future__ import annotations

from agentrt.approvals.model import ApprovalRequest, ApprovalStatus, Decision
from agentrt.errors import AlreadyDecided, ApprovalExpired, InvalidDecision, NotAuthorized
from agentrt.principal import Principal
from agentrt.readable import moment

__all__ = ["check_decision"]


_OUTCOMES_BY_KIND = {
    "action": ("approve", "reject", "edit"),
    "budget": ("approve", "reject", "edit"),
    "reconcile": ("resolve", "retry"),
}


def check_decision(request: ApprovalRequest, decision: Decision, *, now: float) -> None:
    """Raise the ApprovalError that refuses this decision, or return if it may be recorded."""
    rid = request.id
    if request.status is ApprovalStatus.EXPIRED:
        then = (
            f"; it was escalated to {request.escalated_to!r}, decide that one"
            if request.escalated_to
            else "; the run was told and went on without it"
        )
        raise ApprovalExpired(
            f"approval {rid!r} expired undecided at "
            f"{moment(request.decided_at or request.expires_at or now, now=now)}{then}",
            approval_id=rid,
        )
    if request.status is ApprovalStatus.CANCELLED and request.superseded:
        raise AlreadyDecided(
            f"approval {rid!r} was {request.superseded} of its run {request.thread_id!r} "
            "before its action ran; nothing to decide",
            approval_id=rid,
        )
    if request.status is ApprovalStatus.CANCELLED:
        raise AlreadyDecided(
            f"approval {rid!r} was cancelled because its run {request.thread_id!r} ended "
            f"({request.comment}); nothing to decide",
            approval_id=rid,
        )
    if request.status is not ApprovalStatus.PENDING:
        raise AlreadyDecided(
            f"approval {rid!r} was already {request.status.value} by {request.decided_by!r}; "
            "nothing to do",
            approval_id=rid,
        )
    allowed = _OUTCOMES_BY_KIND[request.kind]
    if decision.outcome not in allowed:
        raise InvalidDecision(
            f"approval {rid!r} is of kind {request.kind!r}, which takes {list(allowed)!r}, "
            f"not {decision.outcome!r}"
            + (
                "; say whether the effect happened with Decision.resolve(id, result=...) "
                "or Decision.retry(id)"
                if request.kind == "reconcile"
                else ""
            ),
            approval_id=rid,
        )
    if decision.args_digest is not None and decision.args_digest != request.args_digest:
        raise InvalidDecision(
            f"decision for {rid!r} was made for arguments with digest {decision.args_digest!r}, "
            f"but the request's arguments have digest {request.args_digest!r}; "
            "review the current arguments and decide again",
            approval_id=rid,
        )
    if request.expires_at is not None and now >= request.expires_at:
        raise ApprovalExpired(
            f"approval {rid!r} expired at {moment(request.expires_at, now=now)}; the next "
            "sweep of overdue approvals (rt.sweep_approvals(), `agentrt approvals sweep`, a "
            "worker's or `agentrt serve`'s) applies it, and the run goes on without it",
            approval_id=rid,
        )
    missing = [role for role in request.roles if role not in decision.by.roles]
    if missing:
        needs = "role" if len(request.roles) == 1 else "every one of the roles"
        raise NotAuthorized(
            f"{decision.by.id!r} cannot decide {rid!r}: it requires {needs} "
            f"{_words(request.roles)}, and {decision.by.id!r} holds {list(decision.by.roles)!r} "
            f"(missing {missing!r})",
            approval_id=rid,
        )
    if (
        (request.four_eyes or request.kind == "budget")
        and decision.outcome != "reject"
        and decision.by.id in request.requesters
    ):
        asked = (
            "edited the action into"
            if decision.by.id == request.edited_by and decision.by.id != request.requested_by
            else "requested"
        )
        rule = (
            "a run's own requester never raises its budget"
            if request.kind == "budget"
            else ("four-eyes rule")
        )
        raise NotAuthorized(
            f"{decision.by.id!r} {asked} {rid!r} and cannot also approve it ({rule}); "
            "ask another approver",
            approval_id=rid,
        )
    if not decision.by.decides_for(request.tenant):
        raise NotAuthorized(
            f"{decision.by.id!r} of tenant {decision.by.tenant!r} cannot decide {rid!r} "
            f"of tenant {request.tenant!r}"
            + (
                f"; a principal decides across tenants only when it says so: "
                f"tenant={Principal.ALL_TENANTS!r}"
                if decision.by.tenant is None
                else ""
            ),
            approval_id=rid,
        )


def _words(roles: tuple[str, ...]) -> str:
    return " and ".join(repr(r) for r in roles)
