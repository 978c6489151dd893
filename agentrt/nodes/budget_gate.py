"""budget_gate: a limit tripped and the budget says ask: a person may raise it, or stop the run.

Like the approval node it runs twice (up to interrupt(), then from the top on resume). The
request id is deterministic from the limit and its value, so the re-run finds the same
record; the new limit is read from the approvals table, where AgentRuntime.decide checked
it (the right field, higher than before and past what the run used and its next action
needs), never from the resume value.
"""

from __future__ import annotations

from typing import Any

from agentrt.approvals import ApprovalRequest, ApprovalStatus
from agentrt.budget import Budget
from agentrt.message_budget import own_limit, raised
from agentrt.nodes.common import await_decision, gate_request
from agentrt.nodes.deps import RunDeps
from agentrt.nodes.spec import Node
from agentrt.state import BudgetReport, RunState, Stop

__all__ = ["NODE", "budget_gate", "budget_request"]


def budget_request(state: RunState, found: BudgetReport, deps: RunDeps) -> ApprovalRequest:
    """The approval request of kind "budget" asking to raise the limit in ``found``: a
    limit the thread's current message set is its own, for its approver_role to raise."""
    budget = Budget.from_dict(state.get("budget"))
    own = own_limit(state, found["limit"])
    role = budget.approver_role
    key = f"{found['limit']}:{found['allowed']!r}"
    if own is not None:
        role = own.approver_role or role
        key = f"message {state.get('message', 0)}:{key}"
    args = {
        "limit": found["limit"],
        "allowed": found["allowed"],
        "used": found["used"],
        "requested": found["requested"],
    }
    return gate_request(
        state,
        kind="budget",
        # The current value is part of the id: hitting the raised limit later is a new request.
        key=key,
        step_id=found["step_id"],
        tool=found["tool"],
        args=args,
        reason=found["message"],
        required_role=role,
        now=deps.store.clock(),  # the store's, as the request's decision and expiry are
    )


def budget_gate(state: RunState, deps: RunDeps) -> dict[str, Any]:
    found = state.get("over_budget")
    assert found is not None, "the graph routes here only with a tripped limit"
    request, event = await_decision(deps, budget_request(state, found, deps))
    if request.status is ApprovalStatus.EDITED and request.edited_args:
        ((limit, value),) = request.edited_args.items()
        budget, thread, kept = raised(state, limit, value)
        deps.store.set_budget(state["thread_id"], thread.to_dict())  # the row: the thread's
        # Back to the node that stopped: it runs its pre-flight again under the new limit.
        update: dict[str, Any] = {
            "budget": budget.to_dict(),
            "over_budget": None,
            "events": [event],
            "route": found["node"],
        }
        return update if kept is None else update | {"message_budget": kept}
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


NODE = Node(name="budget_gate", body=budget_gate, routes=("plan", "tool", "commit", "finish"))
