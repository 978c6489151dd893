"""agentrt inside an app's own graph: a hand-written StateGraph with rt.tool_node() and a
create_agent agent with rt.middleware(), each on its own checkpointer, with real processes:
a gate approved from another process, SIGKILL mid-effect then resume (the effect once), a
denial the model sees, a budget stop, the thread in the review queue and in agentrt trace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.messages import ToolMessage
from langgraph.types import Command

from agentrt import (
    ApprovalStatus,
    Budget,
    BudgetExceeded,
    Decision,
    InvalidDecision,
    NotAuthorized,
    Policy,
    RunStatus,
)
from agentrt.examples.own_graph import POLICY
from agentrt.examples.refund_desk import APPROVER, OPERATOR
from tests.governed_app import KINDS, THREAD, app, calls, lookups, refunds, start

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.parametrize("kind", KINDS)


def child(*args: str, hang: bool = False) -> subprocess.Popen[str]:
    env = {**os.environ, "AGENTRT_TEST_HANG": "1" if hang else "0"}  # and the test's own
    return subprocess.Popen(
        [sys.executable, "-m", "tests.governed_app", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out


def tool_messages(graph: object, config: dict[str, object]) -> list[ToolMessage]:
    values = graph.get_state(config).values  # type: ignore[attr-defined]
    return [m for m in values["messages"] if isinstance(m, ToolMessage)]


@pytest.mark.subprocess
def test_a_gate_is_approved_from_another_process(kind: str, tmp_path: Path) -> None:
    with app(kind, tmp_path) as (rt, graph):
        config = start(rt, graph)
        run = rt.get(THREAD)
        assert run.status is RunStatus.AWAITING_APPROVAL
        (request,) = rt.approvals(tenant="acme", thread_id=THREAD)
        assert (request.tool, request.args) == ("issue_refund", {"order_id": "42", "amount": 89.0})
        assert (request.required_role, request.four_eyes, request.rule_id) == (
            "refund-approver",
            True,
            "large-refunds",
        )
        assert [r.thread_id for r in rt.runs(tenant="acme")] == [THREAD]
        assert refunds(tmp_path) == []
        interrupts = graph.get_state(config).interrupts
        assert [i.value["approvals"][0]["id"] for i in interrupts] == [request.id]

    # Another process decides. The hand-written graph is attached there, so rt.decide
    # carries it on in that process; the agent is not, so its app resumes it here.
    # Until the app carries the agent on, its run is still at the gate (decided).
    attach = ["--attach"] if kind == "graph" else []
    said = finished(child("decide", kind, str(tmp_path), request.id, *attach)).strip()
    assert said == ("running" if kind == "graph" else "awaiting_approval")

    with app(kind, tmp_path) as (rt, graph):
        config = {"configurable": {"thread_id": THREAD}}
        if kind == "agent":
            assert refunds(tmp_path) == []
            graph.invoke(Command(resume={"decided": True}), config)
        assert [(o, a) for _, o, a in refunds(tmp_path)] == [("42", 89.0)]
        decided = rt.approval(request.id)
        assert (decided.status, decided.decided_by) == (ApprovalStatus.APPROVED, "bob")
        assert rt.get(THREAD).status is RunStatus.RUNNING
        assert rt.approvals(tenant="acme") == []
        assert graph.get_state(config).values["messages"][-1].content == "Order 42 is refunded."
        assert rt.get(THREAD).usage["tool_calls"] == 2

    # The thread's one trace, as `agentrt trace` prints it from the database alone.
    shown = subprocess.run(
        [sys.executable, "-m", "agentrt", "trace", THREAD, "--db", str(tmp_path / "agentrt.db")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for part in (
        "check_policy issue_refund",
        "execute_tool issue_refund",
        "execute_tool lookup_order",
        "await_approval issue_refund",
    ):
        assert part in shown, shown
    # The agent's model calls are the middleware's too: budgeted, and in the trace.
    assert ("chat scripted" in shown) is (kind == "agent"), shown


@pytest.mark.subprocess
def test_sigkill_in_the_middle_of_an_effect_then_resume_acts_once(
    kind: str, tmp_path: Path
) -> None:
    proc = child("start", kind, str(tmp_path), "small", hang=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "effect started\n", proc.communicate()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert refunds(tmp_path) == []

    assert len(calls(tmp_path)) == 1
    with app(kind, tmp_path, "small") as (rt, graph):
        config = {"configurable": {"thread_id": THREAD}}
        effect = rt.store.list_effects(THREAD)
        assert [e.status for e in effect] == ["started"]
        if kind == "graph":  # attached: the runtime carries the graph on
            rt.attach(graph)
            assert rt.resume(THREAD).status is RunStatus.RUNNING
        else:  # the app carries its agent on from its checkpoint
            graph.invoke(None, config)
        # The idempotent refund was called again with the same key: one refund.
        first, again = calls(tmp_path)
        assert first == again
        assert [(k, o) for k, o, _ in refunds(tmp_path)] == [(first, "43")]
        assert [e.status for e in rt.store.list_effects(THREAD)] == ["done"]
        (message,) = tool_messages(graph, config)
        assert message.status == "success"
        assert '"refunded":24.5' in str(message.content).replace(" ", "")
        assert rt.get(THREAD).usage["tool_calls"] == 1  # the killed attempt counted once
        # Once more: the ledger answers, the tool is not called.
        graph.invoke(None, config)
        assert len(calls(tmp_path)) == 2


def test_a_policy_denial_is_a_tool_message_the_model_sees(kind: str, tmp_path: Path) -> None:
    with app(kind, tmp_path, "negative") as (rt, graph):
        config = start(rt, graph)
        (message,) = tool_messages(graph, config)
        assert message.status == "error"
        assert message.content == (
            "denied: policy denied 'issue_refund': A refund is an amount above zero."
        )
        last = graph.get_state(config).values["messages"][-1]
        assert last.content == "I could not refund a negative amount."
        model = rt.deps.model
        assert any(  # the model's last turn was asked with the denial in its messages
            isinstance(m, ToolMessage) and m.content.startswith("denied:")
            for m in model.calls[-1].messages  # type: ignore[attr-defined]
        )
        assert calls(tmp_path) == []
        assert rt.get(THREAD).usage["tool_calls"] == 0


def test_a_tool_budget_stops_the_thread(kind: str, tmp_path: Path) -> None:
    with app(kind, tmp_path, "two_calls") as (rt, graph):
        with pytest.raises(BudgetExceeded, match="max_tool_calls=1 reached"):
            start(rt, graph, budget=Budget(max_tool_calls=1))
        run = rt.get(THREAD)
        assert run.status is RunStatus.BUDGET_EXCEEDED
        assert run.budget_report is not None
        assert (run.budget_report["limit"], run.budget_report["tool"]) == (
            "max_tool_calls",
            "issue_refund",
        )
        assert calls(tmp_path) == []  # stopped before the refund, not after
        with pytest.raises(Exception, match="ended budget_exceeded"):
            graph.invoke(None, {"configurable": {"thread_id": THREAD}})


def test_a_read_beside_a_gated_call_is_called_and_counted_once(kind: str, tmp_path: Path) -> None:
    # One message: a read and a refund that waits for a person. LangGraph runs the tool
    # node again when the gate is answered; the read ran before the gate, so the second
    # run replays its recorded result: it is neither called nor counted again, and the
    # approved refund fits the budget of two calls.
    with app(kind, tmp_path, "read_and_refund") as (rt, graph):
        config = start(rt, graph, budget=Budget(max_tool_calls=2))
        assert lookups(tmp_path) == ["42"]
        assert rt.get(THREAD).usage["tool_calls"] == 1
        (request,) = rt.approvals(tenant="acme")
        graph.invoke(Command(resume=Decision.approve(request.id, by=APPROVER)), config)
        run = rt.get(THREAD)
        assert run.status is not RunStatus.BUDGET_EXCEEDED, run.budget_report
        assert [(o, a) for _, o, a in refunds(tmp_path)] == [("42", 89.0)]
        assert lookups(tmp_path) == ["42"]
        assert run.usage["tool_calls"] == 2
        messages = tool_messages(graph, config)
        assert [(m.name, m.status) for m in messages] == [
            ("lookup_order", "success"),
            ("issue_refund", "success"),
        ]
        assert '"total": 89.0' in str(messages[0].content)
        last = graph.get_state(config).values["messages"][-1]
        assert last.content == "Order 42 is refunded."


def test_a_decision_handed_in_with_command_resume_is_checked_as_decide_checks_it(
    kind: str, tmp_path: Path
) -> None:
    with app(kind, tmp_path) as (rt, graph):
        config = start(rt, graph)
        (request,) = rt.approvals(tenant="acme")
        # The requester approving its own refund: refused, and the gate asks again, saying
        # why; nothing moves.
        out = graph.invoke(Command(resume=Decision.approve(request.id, by=OPERATOR)), config)
        (again,) = out["__interrupt__"]
        assert again.value["refused"]["error"] == NotAuthorized.__name__
        assert "'alice' cannot decide" in again.value["refused"]["message"]
        assert [r["id"] for r in again.value["approvals"]] == [request.id]
        assert rt.approval(request.id).status is ApprovalStatus.PENDING
        assert rt.get(THREAD).status is RunStatus.AWAITING_APPROVAL
        assert refunds(tmp_path) == []
        graph.invoke(Command(resume=Decision.approve(request.id, by=APPROVER)), config)
        assert rt.approval(request.id).decided_by == "bob"
        assert [(o, a) for _, o, a in refunds(tmp_path)] == [("42", 89.0)]


def test_a_malformed_decider_handed_in_with_command_resume_is_refused_not_raised(
    kind: str, tmp_path: Path
) -> None:
    # Raised, it would fail this resume and, as LangGraph keeps a resume value for good,
    # every later one of the thread: refused, the gate asks again, saying what to write.
    with app(kind, tmp_path) as (rt, graph):
        config = start(rt, graph)
        (request,) = rt.approvals(tenant="acme")
        bob = {"id": "bob", "roles": "refund-approver", "tenant": "acme"}
        resume = {"approval_id": request.id, "outcome": "approve", "by": bob}
        out = graph.invoke(Command(resume=resume), config)
        (again,) = out["__interrupt__"]
        assert again.value["refused"]["error"] == InvalidDecision.__name__
        assert "write roles=['refund-approver']" in again.value["refused"]["message"]
        assert rt.approval(request.id).status is ApprovalStatus.PENDING
        assert refunds(tmp_path) == []
        graph.invoke(Command(resume=Decision.approve(request.id, by=APPROVER)), config)
        assert [(o, a) for _, o, a in refunds(tmp_path)] == [("42", 89.0)]


def test_an_edit_goes_back_through_policy_and_runs_the_edited_call(
    kind: str, tmp_path: Path
) -> None:
    with app(kind, tmp_path) as (rt, graph):
        rt.attach(graph)
        start(rt, graph)
        (request,) = rt.approvals(tenant="acme")
        edit = Decision.edit(request.id, args={"order_id": "42", "amount": 40.0}, by=APPROVER)
        run = rt.decide(edit)  # attached: decide carries the graph on
        assert run.status is RunStatus.RUNNING
        # 40 is under the approval threshold: policy allows the edited call at once.
        assert [(o, a) for _, o, a in refunds(tmp_path)] == [("42", 40.0)]


@pytest.mark.subprocess
def test_an_effect_in_doubt_goes_to_a_person_who_says_retry(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_TEST_NOT_IDEMPOTENT", "1")
    proc = child("start", kind, str(tmp_path), "small", hang=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "effect started\n", proc.communicate()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=30)

    with app(kind, tmp_path, "small") as (rt, graph):
        rt.attach(graph)
        config = {"configurable": {"thread_id": THREAD}}
        graph.invoke(None, config)  # not called blindly again: a person is asked
        assert len(calls(tmp_path)) == 1
        assert rt.get(THREAD).status is RunStatus.AWAITING_APPROVAL
        (request,) = rt.approvals(tenant="acme")
        assert (request.kind, request.tool) == ("reconcile", "issue_refund")
        assert "is not idempotent" in request.reason
        # The person checked the payment system: nothing happened, so it may run again.
        rt.decide(Decision.retry(request.id, by=APPROVER))
        assert len(calls(tmp_path)) == 2
        assert [o for _, o, _ in refunds(tmp_path)] == ["43"]
        (message,) = tool_messages(graph, config)
        assert message.status == "success"
        assert graph.get_state(config).values["messages"][-1].content == "Order 43 is refunded."


ALLOW_REFUNDS = """
version: 1
name: refunds-allowed
default: allow
"""


@pytest.mark.parametrize("said", ["decide", "resume"])
def test_a_call_a_person_rejected_never_runs_once_the_policy_allows_it(
    kind: str, said: str, tmp_path: Path
) -> None:
    # The person rejects the refund (with rt.decide, or in the app's Command(resume=...));
    # the policy then allows every refund. The rejection stands, as in the run graph.
    with app(kind, tmp_path) as (rt, graph):
        config = start(rt, graph)
        (request,) = rt.approvals(tenant="acme")
        reject = Decision.reject(request.id, by=APPROVER, reason="not this order")
        if said == "decide":
            rt.decide(reject)
        rt.set_policy(Policy.from_yaml(ALLOW_REFUNDS))
        graph.invoke(Command(resume=reject if said == "resume" else {"decided": True}), config)
        assert refunds(tmp_path) == [], "a refund a person rejected ran"
        assert calls(tmp_path) == []
        decided = rt.approval(request.id)
        assert (decided.status, decided.decided_by) == (ApprovalStatus.REJECTED, "bob")
        refund = [m for m in tool_messages(graph, config) if m.name == "issue_refund"]
        assert [(m.status, m.content) for m in refund] == [
            ("error", "rejected: 'bob' rejected 'issue_refund': not this order")
        ]
        assert rt.get(THREAD).usage["tool_calls"] == 1  # the lookup only


def test_a_call_a_person_edited_runs_edited_once_the_policy_allows_the_original(
    kind: str, tmp_path: Path
) -> None:
    with app(kind, tmp_path) as (rt, graph):
        config = start(rt, graph)
        (request,) = rt.approvals(tenant="acme")
        # Still over $50: under the old policy the edit would wait for an approver again.
        rt.decide(Decision.edit(request.id, args={"order_id": "42", "amount": 60.0}, by=APPROVER))
        rt.set_policy(Policy.from_yaml(ALLOW_REFUNDS))
        graph.invoke(Command(resume={"decided": True}), config)
        assert [(o, a) for _, o, a in refunds(tmp_path)] == [("42", 60.0)], (
            "the arguments a person edited away ran"
        )
        assert rt.approvals(tenant="acme") == []  # allowed now: nobody is asked again


def test_a_rejection_stands_when_the_policy_asks_on_other_terms(kind: str, tmp_path: Path) -> None:
    # The new policy still gates the refund, but for another role: a new question with a
    # new id. The person's rejection of this very call is not asked about again.
    with app(kind, tmp_path) as (rt, graph):
        config = start(rt, graph)
        (request,) = rt.approvals(tenant="acme")
        rt.decide(Decision.reject(request.id, by=APPROVER, reason="no"))
        rt.set_policy(Policy.from_yaml(POLICY.replace("refund-approver", "finance")))
        out = graph.invoke(Command(resume={"decided": True}), config)
        assert "__interrupt__" not in out
        assert rt.approvals(tenant="acme") == []
        assert refunds(tmp_path) == []
