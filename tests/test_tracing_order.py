"""A run's trace is in the span store before its row says where the run stopped, so whoever
sees that status (a client, another process) can read the trace at once."""

from __future__ import annotations

from typing import Any

from agentrt import AgentRuntime, Decision, RunStatus
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR

STOPPED = {RunStatus.AWAITING_APPROVAL, RunStatus.SUCCEEDED}


def test_node_spans_are_stored_before_the_row_says_the_run_stopped(desk: AgentRuntime) -> None:
    stored_when: list[tuple[RunStatus, list[str]]] = []
    move = desk._driver.move

    def watched(thread_id: str, status: RunStatus, **change: Any) -> Any:
        if status in STOPPED:
            trace_id, _ = desk.store.run_trace(thread_id)
            assert trace_id is not None
            stored_when.append((status, [s.name for s in desk.store.spans_of(trace_id)]))
        return move(thread_id, status, **change)

    desk._driver.move = watched  # type: ignore[method-assign]
    gated = desk.start(GOAL, principal=OPERATOR)
    assert gated.status is RunStatus.AWAITING_APPROVAL
    done = desk.decide(Decision.approve(gated.pending_approvals[0].id, by=APPROVER))
    assert done.status is RunStatus.SUCCEEDED
    assert [status for status, _ in stored_when] == [
        RunStatus.AWAITING_APPROVAL,
        RunStatus.SUCCEEDED,
    ]
    at_gate, at_end = (names for _, names in stored_when)
    assert "plan" in at_gate
    assert "check_policy issue_refund" in at_gate
    assert "execute_tool issue_refund" in at_end
