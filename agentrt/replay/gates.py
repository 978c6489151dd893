"""The re-run's gates answered as the run's were: each request given the decision the run
recorded for it (approve, edit, reject, raise a limit, resolve, retry), left to expire
where the run's expired, escalated where the run's was. A decision today's checks refuse
(a four-eyes rule the run was not under) is no error of the replay: it is where the
re-run goes another way, and the report names it at its step.
"""

from __future__ import annotations

from typing import Any, Protocol

from agentrt.approvals import ApprovalRequest, Decision
from agentrt.errors import ApprovalError
from agentrt.principal import Principal
from agentrt.replay.recording import Recording

__all__ = ["Replica", "answer_gates", "decision"]

_DECIDED = ("approved", "edited", "rejected", "resolved", "retried")
"""The statuses a person's decision leaves; expired is the sweep's, cancelled the run's."""


class Replica(Protocol):
    """What answering gates needs of the scratch runtime (agentrt.AgentRuntime)."""

    def decide(self, decision: Decision) -> Any: ...

    def sweep_approvals(self, now: float | None = None) -> Any: ...

    def get(self, thread_id: str) -> Any: ...


def answer_gates(replica: Replica, run: Any, recording: Recording, *, most: int) -> Any:
    """Answer ``run``'s gates as the run's were, at most ``most`` of them, until it stops at
    one the run did not get past this way (the comparison names it) or waits at none;
    returns the run as it stands then."""
    for _ in range(most):
        request: ApprovalRequest | None = run.pending_approval
        if request is None:
            break
        waiting = recording.decisions.get((request.step_id, request.kind)) or []
        if not waiting:
            break  # a gate the run did not meet
        recorded = waiting[0]
        if recorded.get("escalated_from") and request.escalated_from is None:
            # The run's request expired undecided and its rule escalated it (the decision
            # is the escalation's): this one expires too, and today's rule says what then.
            expired = _expired(replica, run, request, recording)
            if expired is None:
                break
            run = expired
            continue
        waiting.pop(0)
        status = recorded["status"]
        if status == "expired":
            expired = _expired(replica, run, request, recording)
            if expired is None:
                break
            run = expired
        elif status in _DECIDED:
            try:
                run = replica.decide(decision(request, recorded))
            except ApprovalError as exc:  # refused: the run waits as it was
                recording.misses[request.step_id] = (
                    f"today's checks refuse the decision the run got on its {request.kind} "
                    f"request ({status} by {recorded.get('decided_by')!r}): {exc}"
                )
                break
        else:
            break  # cancelled, or superseded by a message: the run did not get past it
    return run


def _expired(replica: Replica, run: Any, request: ApprovalRequest, recording: Recording) -> Any:
    """``run`` after its ``request`` expired undecided, as the run's did; None if today's
    request never expires."""
    if request.expires_at is None:
        recording.misses[request.step_id] = (
            f"the run's {request.kind} request expired undecided; today's policy sets no "
            "expiry on it"
        )
        return None
    swept = replica.sweep_approvals(request.expires_at)
    carried = [r for r in swept.runs if r.thread_id == run.thread_id]
    return carried[0] if carried else replica.get(run.thread_id)


def decision(request: ApprovalRequest, recorded: dict[str, Any]) -> Decision:
    """The decision ``recorded`` (a decided request of the run's log) made again on the
    re-run's ``request``, by the decider as the record has them: the roles and tenant the
    request asked for."""
    by = Principal(
        recorded.get("decided_by") or "replay", roles=request.roles, tenant=request.tenant
    )
    status = recorded["status"]
    if status == "approved":
        return Decision.approve(request.id, by=by)
    if status == "edited":  # an action's new arguments, or a budget's raised limit
        return Decision.edit(request.id, args=recorded["edited_args"], by=by)
    if status == "resolved":
        return Decision.resolve(request.id, result=recorded.get("result"), by=by)
    if status == "retried":
        return Decision.retry(request.id, by=by)
    return Decision.reject(request.id, by=by, reason=recorded.get("comment") or status)
