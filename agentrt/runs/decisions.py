"""Recording a person's decision: every check first, then one conditional write.

A refused decision leaves the request and its run exactly as they were. The write is
conditional on the request still being pending, so of two racing deciders (or a decider
and the expiry sweep) exactly one wins, and the other is told who was first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from agentrt.approvals.checks import check_decision
from agentrt.approvals.display import shown_args, unmasked
from agentrt.approvals.model import ApprovalRequest, ApprovalStatus, Decided, Decision
from agentrt.budget import Budget, raised_budget
from agentrt.errors import AlreadyDecided, ConfigError, InvalidDecision
from agentrt.redaction import Redactor
from agentrt.state import unstorable
from agentrt.store.protocols import ApprovalStore, RunStore
from agentrt.tools.contract import ToolArgsError
from agentrt.tools.registry import ToolRegistry

__all__ = ["approval_named", "record_decision"]

_DECISION_STATUS = {
    "approve": ApprovalStatus.APPROVED,
    "reject": ApprovalStatus.REJECTED,
    "edit": ApprovalStatus.EDITED,
    "resolve": ApprovalStatus.RESOLVED,
    "retry": ApprovalStatus.RETRIED,
}


class _Store(ApprovalStore, RunStore, Protocol):
    """The tables a decision reads and writes."""


def approval_named(store: ApprovalStore, approval_id: str, *, where: str) -> ApprovalRequest:
    """One request by id, whatever its status; InvalidDecision if there is none."""
    # An id no database can be asked about (a lone surrogate) names no request.
    request = None if unstorable(approval_id) else store.get_approval(approval_id)
    if request is None:
        raise InvalidDecision(
            f"no approval request has id {approval_id!r} in {where!r}; "
            "list them with rt.approvals(None) or `agentrt approvals --status all`",
            approval_id=approval_id,
        )
    return request


def record_decision(
    store: _Store,
    tools: ToolRegistry,
    decision: Decision | dict[str, Any],
    *,
    clock: Callable[[], float],
    where: str,
    redactor: Redactor | None = None,
) -> ApprovalRequest:
    """Check ``decision`` against its stored request and record it; the request as it was.

    An edit's arguments may be those a person was shown, masked by ``redactor`` (the
    runtime's): a value left exactly as shown keeps the run's own (``unmasked``), whether
    the edit came from the review page, the API or ``rt.decide``.

    InvalidDecision, ApprovalExpired, NotAuthorized or AlreadyDecided say why not.
    """
    parsed = Decision.parse(decision)
    given = {"reason": parsed.reason, "args": parsed.args, "result": parsed.result}
    if problem := unstorable(given | {"by": parsed.by.to_dict()}, "decision"):
        raise InvalidDecision(
            f"decision on {parsed.approval_id!r} cannot be recorded: {problem}",
            approval_id=parsed.approval_id,
        )
    request = approval_named(store, parsed.approval_id, where=where)
    check_decision(request, parsed, now=clock())
    edited, result = _decided_values(tools, request, parsed, redactor)
    status = _DECISION_STATUS[parsed.outcome]
    if status is ApprovalStatus.EDITED and edited == request.args:
        # "Approve with these arguments" without changing them is an approval: recorded
        # as one, so the action runs instead of asking about itself again.
        status, edited = ApprovalStatus.APPROVED, None
    decided = Decided(
        status=status, by=parsed.by.id, comment=parsed.reason, edited_args=edited, result=result
    )
    won = store.decide_approval(request.id, decided)
    if not won:
        latest = store.get_approval(request.id)
        if latest is not None and latest.status is not ApprovalStatus.PENDING:
            # Someone (a decider or the sweep) was first: say who, as any late call would.
            check_decision(latest, parsed, now=clock())
        raise AlreadyDecided(
            f"approval {request.id!r} was decided by "
            f"{latest.decided_by if latest else None!r} a moment earlier; nothing to do",
            approval_id=request.id,
        )
    return request


def _decided_values(
    tools: ToolRegistry,
    request: ApprovalRequest,
    decision: Decision,
    redactor: Redactor | None,
) -> tuple[dict[str, Any] | None, Any]:
    """The edited arguments (or raised limit) and the result a decision carries, checked."""
    if request.kind == "budget":
        return _raised_limit(request, decision), None
    spec = tools.get(request.tool)
    if decision.outcome == "resolve":
        result = spec.to_json(decision.result) if spec else decision.result
        problem = spec.check_output(result) if spec else None
        if problem is not None:
            raise InvalidDecision(
                f"resolve of {request.id!r} rejected: {problem}; give the result as the "
                "tool would have returned it",
                approval_id=request.id,
            )
        return None, result
    if decision.outcome != "edit":
        return None, decision.result
    if spec is None:
        raise InvalidDecision(
            f"edit of {request.id!r} refused: this app has no tool {request.tool!r} "
            "to check the new arguments against; approve or reject instead",
            approval_id=request.id,
        )
    assert decision.args is not None
    # The mask text as a sensitive value is never meant: it is what the person was shown.
    seen = shown_args(request, tools, redactor=redactor)
    try:
        return spec.validate_args(unmasked(decision.args, request.args, seen)), None
    except ToolArgsError as exc:
        raise InvalidDecision(
            f"edit of {request.id!r} rejected: {exc}", approval_id=request.id
        ) from None


def _raised_limit(request: ApprovalRequest, decision: Decision) -> dict[str, Any] | None:
    """The new limit a decision on a "budget" request carries, checked; None for reject."""
    if decision.outcome == "reject":
        return None
    limit = request.args["limit"]
    if decision.outcome == "approve" or not decision.args:
        raise InvalidDecision(
            f"{request.id!r} asks to raise {limit}; decide it with "
            f"Decision.raise_limit({request.id!r}, limit={limit!r}, to=<new value>, by=...) "
            "(`agentrt raise-limit` on the command line), or reject it to end the run",
            approval_id=request.id,
        )
    if set(decision.args) != {limit}:
        raise InvalidDecision(
            f"{request.id!r} asks to raise {limit}, but the decision sets "
            f"{sorted(decision.args)!r}; give a new value for {limit!r} only",
            approval_id=request.id,
        )
    # Raised from the value the request names: the run's own limit, or one its current
    # message set, which the run's row does not hold (agentrt.message_budget). It must
    # also cover what the run used and what the action it stopped before needs (the
    # request's terms too), or the run would stop, and ask, again at once.
    try:
        current = Budget.from_dict({limit: request.args["allowed"]})
        raised = raised_budget(
            current,
            limit,
            decision.args[limit],
            used=request.args.get("used") or 0.0,
            requested=request.args.get("requested") or 0.0,
        )
    except ConfigError as exc:
        raise InvalidDecision(
            f"cannot raise {limit} of run {request.thread_id!r}: {exc}", approval_id=request.id
        ) from None
    return {limit: getattr(raised, limit)}
