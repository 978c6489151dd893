"""budget_gate: a limit tripped and the budget says ask: a person may raise it, or stop the run.

Like the approval node it runs twice (up to interrupt(), then from the top on resume). The
request id is deterministic from the limit and its value, so the re-run finds the same
record; the new limit is read from the approvals table, where AgentRuntime.decide checked
it (the right field, higher than before), never from the resume value.
"""

from __future__ import annotations

from typing import Any

from agentrt.approvals import ApprovalRequest, ApprovalStatus, approval_id, args_digest
from agentrt.budget import Budget, raised_budget
from agentrt.graphs.deps import RunDeps
from agentrt.nodes.common import await_decision
from agentrt.state import BudgetReport, RunState, Stop

__all__ = ["budget_gate", "budget_request"]


def budget_request(state: RunState, found: BudgetReport, deps: RunDeps) -> ApprovalRequest:
    """The approval request of kind "budget" asking to raise the limit in ``found``."""
    budget = Budget.from_dict(state.get("budget"))
    args = {
        "limit": found["limit"],
        "allowed": found["allowed"],
        "used": found["used"],
        "requested": found["requested"],
    }
    return ApprovalRequest(
        # The current value is part of the id: hitting the raised limit later is a new request.
        id=approval_id(
            state["thread_id"], found["step_id"], f"budget:{found['limit']}:{found['allowed']!r}"
        ),
        thread_id=state["thread_id"],
        step_id=found["step_id"],
        kind="budget",
        tool=found["tool"],
        args=args,
        args_digest=args_digest(args),
        rule_id=None,
        reason=found["message"],
        required_role=budget.approver_role,
        four_eyes=False,
        requested_by=state["principal"]["id"],
        tenant=state["principal"].get("tenant"),
        requested_at=deps.clock(),
        expires_at=None,
    )


def budget_gate(state: RunState, deps: RunDeps) -> dict[str, Any]:
    found = state.get("over_budget")
    assert found is not None, "the graph routes here only with a tripped limit"
    request, event = await_decision(deps, budget_request(state, found, deps))
    if request.status is ApprovalStatus.EDITED and request.edited_args:
        ((limit, value),) = request.edited_args.items()
        budget = raised_budget(Budget.from_dict(state.get("budget")), limit, value).to_dict()
        deps.store.set_budget(state["thread_id"], budget)
        # Back to the node that stopped: it runs its pre-flight again under the new limit.
        return {"budget": budget, "over_budget": None, "events": [event], "route": found["node"]}
    reason = f"{found['message']}; the request to raise it was {request.status.value}"
    if request.decided_by:
        reason += f" by {request.decided_by!r}"
    if request.comment:
        reason += f": {request.comment}"
    return {
        "events": [event],
        "over_budget": None,
        "stop": Stop(status="budget_exceeded", reason=reason, budget=found),
        "route": "finish",
    }
