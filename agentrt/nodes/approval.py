"""approval: the human gate. Record the requests, interrupt once, act on the stored decisions.

A gate carries every action of the current plan that needs a person (the policy node
gathered them), so one interrupt asks about all of them and the run resumes when each has
its decision. Each action then goes its own way when its turn comes: approved to the tool,
rejected or expired to an observation, edited back through policy. After a refusal, the
plan's later actions that no person approved are skipped (policy node). A later action a
person refused or edited is kept in ``RunState.gate_decisions``: at its turn that decision
stands whatever the policy says by then (changed, or a rule reading usage that flipped),
as a lone action's does, since policy sends it here to be acted on.

The node runs twice: once up to interrupt(), and again from the top when the run resumes.
Request ids are deterministic and the insert ignores duplicates, so the second run finds
the same records; decisions are read from the approvals table, where AgentRuntime.decide
validated and wrote them, never taken on trust from the resume value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentrt.approvals import ApprovalRequest, ApprovalStatus
from agentrt.digests import args_digest
from agentrt.events import approval_event
from agentrt.nodes.common import (
    advance,
    current_action,
    gate_request,
    observation_event,
    public_request,
    wait_for_people,
)
from agentrt.nodes.deps import RunDeps
from agentrt.nodes.spec import Node
from agentrt.state import GateItem, ObservationKind, RunState, Stop
from agentrt.store.protocols import ApprovalStore

__all__ = ["NODE", "approval", "request_for"]


def request_for(state: RunState, item: GateItem, *, now: float) -> ApprovalRequest:
    """The approval request for one gated action, as its policy verdict describes it."""
    action, verdict = item["action"], item["verdict"]
    assert verdict["step_id"] == action["step_id"]
    roles = verdict.get("required_roles") or (
        [verdict["required_role"]] if verdict["required_role"] else []
    )
    edited_from = action.get("edited_from")
    return gate_request(
        state,
        kind="action",
        # The digest is part of the id, and so are the roles and four-eyes: if the policy
        # changes while the run waits and asks for another approver, an approval given
        # under the old terms does not cover the new ones. An edited action's request also
        # names the request whose edit made it, so each edit is a new link of a chain:
        # editing A to B and back to A asks about A again, it never finds A's decided
        # request and loops.
        key=f"{args_digest(action['args'])}:{'+'.join(roles)}:{int(verdict['four_eyes'])}"
        + (f":edit-of:{edited_from}" if edited_from else ""),
        step_id=action["step_id"],
        tool=action["tool"],
        args=action["args"],
        reason=verdict["reason"],
        required_role=verdict["required_role"],
        now=now,
        rule_id=verdict["rule_id"],
        four_eyes=verdict["four_eyes"],
        expires_at=now + verdict["expires_in"] if verdict["expires_in"] else None,
        on_expiry=verdict.get("on_expiry", "reject"),
        escalate_to=verdict.get("escalate_to"),
        required_roles=tuple(roles),
        edited_by=action.get("edited_by"),
        edited_from=edited_from,
    )


def _gate(state: RunState) -> list[GateItem]:
    action = current_action(state)
    gate = state.get("gate")
    if gate and gate[0]["action"]["step_id"] == action["step_id"]:
        return gate
    verdict = state["verdict"]
    assert verdict is not None
    return [GateItem(action=action, verdict=verdict)]


def settled(store: ApprovalStore, request: ApprovalRequest) -> ApprovalRequest:
    """The request that decides this action: an expired one hands over to its escalation."""
    while request.escalated_to is not None:
        follow = store.get_approval(request.escalated_to)
        assert follow is not None, f"escalation {request.escalated_to!r} is missing"
        request = follow
    return request


def approval(state: RunState, deps: RunDeps) -> dict[str, Any]:
    action = current_action(state)
    decided = state.get("gate_decisions") or {}
    if action["step_id"] in decided:
        # A shared gate already has a person's word on this action: it is acted on, never
        # asked again nor passed over (the entry goes, so an edit is applied once).
        stored = deps.store.get_approval(decided[action["step_id"]])
        assert stored is not None, f"gate request {decided[action['step_id']]!r} is missing"
        rest = {step: rid for step, rid in decided.items() if step != action["step_id"]}
        return _acted_on(state, deps, settled(deps.store, stored)) | {"gate_decisions": rest}
    now = deps.store.clock()  # a request's times are the store's, as its decision's are
    gate = _gate(state)
    asked = [deps.store.put_approval(request_for(state, item, now=now)) for item in gate]
    requests = [settled(deps.store, r) for r in asked]
    if any(r.status is ApprovalStatus.PENDING for r in requests):
        requests = wait_for_people(
            deps,
            requests,
            lambda: [settled(deps.store, deps.store.get_approval(r.id) or r) for r in asked],
        )
        if any(r.status is ApprovalStatus.PENDING for r in requests):
            # Resumed before every action was decided (only a caller driving rt.graph by
            # hand can do that): gate again from policy, which interrupts once more.
            return {"route": "policy"}

    update = _acted_on(state, deps, requests[0])
    later = _overruled(gate[1:], asked[1:], requests[1:])
    if later:
        # The first word on an action stands: a gate asked again (new terms) adds only new.
        revision = action["step_id"].split(".", 1)[0]
        kept = {s: r for s, r in decided.items() if s.split(".", 1)[0] == revision}
        update["gate_decisions"] = later | kept
    return update


def _overruled(
    items: Sequence[GateItem], asked: Sequence[ApprovalRequest], decided: Sequence[ApprovalRequest]
) -> dict[str, str]:
    """The gate's later actions a person refused or edited: step id -> the request asked
    (which ``settled`` follows to its escalation, if any)."""
    return {
        item["action"]["step_id"]: request.id
        for item, request, final in zip(items, asked, decided, strict=True)
        if final.status in (ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED)
        or (final.status is ApprovalStatus.EDITED and final.edited_args != final.args)
    }


def _acted_on(state: RunState, deps: RunDeps, request: ApprovalRequest) -> dict[str, Any]:
    """The update that acts on the current action's decided ``request``."""
    deps.tracing.approval_wait(request)
    action = current_action(state)
    update: dict[str, Any] = {"events": [approval_event(public_request(request))]}
    if request.id != state.get("answered"):
        # A decision not acted on before: whatever comes back to policy now is progress.
        update |= {"answered": request.id, "rechecks": 0}
    status = request.status
    if status is ApprovalStatus.EDITED and request.edited_args == request.args:
        # Recorded by an older version: an edit to the same arguments approves them.
        status = ApprovalStatus.APPROVED
    if status is ApprovalStatus.APPROVED:
        verdict = state["verdict"]
        if verdict is not None and verdict["policy_version"] != deps.policy.version:
            # The policy changed while the run waited: the action is checked again under
            # the current one, which may now deny it (this approval stands if it still asks
            # for one on the same terms: same role and four-eyes give the same request id).
            return update | {"verdict": None, "gate": None, "route": "policy"}
        return update | {"route": "tool"}
    if status is ApprovalStatus.EDITED:
        plan = state["plan"]
        assert plan is not None
        assert request.edited_args is not None
        actions = [dict(a) for a in plan["actions"]]
        edited = actions[state.get("cursor", 0)]
        edited["args"] = request.edited_args
        edited["edited_from"] = request.id
        if request.decided_by is not None:
            edited["edited_by"] = request.decided_by
        # An edit never bypasses a rule: the edited action goes back through policy.
        return update | {
            "plan": {**plan, "actions": actions},
            "verdict": None,
            "gate": None,
            "route": "policy",
        }
    if status in (ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED):
        kind, content = (
            (
                ObservationKind.REJECTED,
                f"{request.decided_by!r} rejected {request.tool!r}: {request.comment}",
            )
            if status is ApprovalStatus.REJECTED
            else (
                ObservationKind.EXPIRED,
                f"nobody decided on {request.tool!r} before its approval expired",
            )
        )
        update["events"].append(observation_event(action, kind, content))
        # Only this action is refused; the others of the gate were decided on their own.
        return update | advance(state)
    return update | {
        "stop": Stop(status="cancelled", reason=f"approval {request.id!r} was cancelled"),
        "route": "finish",
    }


NODE = Node(name="approval", body=approval, routes=("tool", "policy", "plan", "finish"), acts=True)
