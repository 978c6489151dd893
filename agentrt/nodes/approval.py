"""approval: the human gate. Record the request, interrupt, and act on the stored decision.

The node runs twice: once up to interrupt(), and again from the top when the run resumes.
The request id is deterministic and the insert ignores duplicates, so the second run finds
the same record; the decision is read from the approvals table, where AgentRuntime.decide
validated and wrote it, never taken on trust from the resume value.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from langgraph.types import interrupt

from agentrt.approvals import ApprovalRequest, ApprovalStatus, approval_id, args_digest
from agentrt.graphs.deps import RunDeps
from agentrt.nodes.common import abandon_plan, current_action
from agentrt.state import Event, ObservationKind, RunState, Stop

__all__ = ["approval", "request_for"]


def request_for(state: RunState, deps: RunDeps) -> ApprovalRequest:
    """The approval request for the current action, as the policy verdict describes it."""
    action = current_action(state)
    verdict = state["verdict"]
    assert verdict is not None
    assert verdict["step_id"] == action["step_id"]
    digest = args_digest(action["args"])
    now = deps.clock()
    return ApprovalRequest(
        # The digest is part of the id: an edited action that needs approval again is a
        # new request, not the decided one.
        id=approval_id(state["thread_id"], action["step_id"], f"action:{digest}"),
        thread_id=state["thread_id"],
        step_id=action["step_id"],
        kind="action",
        tool=action["tool"],
        args=action["args"],
        args_digest=digest,
        rule_id=verdict["rule_id"],
        reason=verdict["reason"],
        required_role=verdict["required_role"],
        four_eyes=verdict["four_eyes"],
        requested_by=state["principal"]["id"],
        tenant=state["principal"].get("tenant"),
        requested_at=now,
        expires_at=now + verdict["expires_in"] if verdict["expires_in"] else None,
    )


def approval(state: RunState, deps: RunDeps) -> dict[str, Any]:
    request = deps.store.put_approval(request_for(state, deps))
    if request.status is ApprovalStatus.PENDING:
        interrupt({"approval": _public(request)})
        stored = deps.store.get_approval(request.id)
        assert stored is not None
        request = stored
    event = Event(type="approval", step_id=request.step_id, data=_public(request))

    if request.status is ApprovalStatus.APPROVED:
        verdict = state["verdict"]
        if verdict is not None and verdict["policy_version"] != deps.policy.version:
            # The policy changed while the run waited: the action is checked again under
            # the current one, which may now deny it (this approval stands if it still asks
            # for one: the request id is the same).
            return {"events": [event], "verdict": None, "route": "policy"}
        return {"events": [event], "route": "tool"}
    if request.status is ApprovalStatus.EDITED:
        plan = state["plan"]
        assert plan is not None
        assert request.edited_args is not None
        actions = [dict(a) for a in plan["actions"]]
        actions[state.get("cursor", 0)]["args"] = request.edited_args
        # An edit never bypasses a rule: the edited action goes back through policy.
        return {
            "events": [event],
            "plan": {**plan, "actions": actions},
            "verdict": None,
            "route": "policy",
        }
    if request.status is ApprovalStatus.REJECTED:
        update = abandon_plan(
            state,
            ObservationKind.REJECTED,
            f"{request.decided_by!r} rejected {request.tool!r}: {request.comment}",
        )
        update["events"].insert(0, event)
        return update
    if request.status is ApprovalStatus.EXPIRED:
        update = abandon_plan(
            state, ObservationKind.REJECTED, f"approval for {request.tool!r} expired undecided"
        )
        update["events"].insert(0, event)
        return update
    return {
        "events": [event],
        "stop": Stop(status="cancelled", reason=f"approval {request.id!r} was cancelled"),
        "route": "finish",
    }


def _public(request: ApprovalRequest) -> dict[str, Any]:
    data = asdict(request)
    data["status"] = request.status.value
    return data
