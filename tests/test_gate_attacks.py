"""Human gates under attack: edits that must not loop, four-eyes that edits cannot slip past,
approval tiers that add up, and deciding across tenants only when said."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentrt import (
    AgentRuntime,
    ApprovalStatus,
    Decision,
    NotAuthorized,
    Policy,
    Principal,
    RunStatus,
    tool,
)
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import FakeClock, Ids, SlowJobs
from tests.gate_app import GOAL, OPS, PAYER, T0, build_runtime, paid
from tests.test_cli import cli
from tests.test_runtime import summary

PAT = Principal("pat", roles=["payer"], tenant="acme")


@pytest.fixture
def gates(db: Path) -> Iterator[AgentRuntime]:
    rt = build_runtime(db, clock=FakeClock(T0), new_id=Ids())
    yield rt
    rt.close()


def at_gate(rt: AgentRuntime) -> tuple[str, str, str]:
    run = rt.start(GOAL, principal=OPS)
    al, cy = run.pending_approvals
    return run.thread_id, al.id, cy.id


def checkpoints(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0])


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "same",
    [
        {"who": "al", "cents": 5000, "card": "4111-1111"},
        {"who": "al", "cents": "5000", "card": "4111-1111"},  # coerced to the same value
        {"card": "4111-1111", "cents": 5000.0, "who": "al"},  # another spelling of it
    ],
)
def test_an_edit_to_the_same_arguments_is_an_approval(
    gates: AgentRuntime, db: Path, same: dict[str, object]
) -> None:
    _, al, cy = at_gate(gates)
    gates.decide(Decision.edit(al, args=same, by=PAYER))
    before = checkpoints(db)
    done = gates.decide(Decision.approve(cy, by=PAYER))

    assert done.status is RunStatus.SUCCEEDED
    record = gates.approval(al)
    assert (record.status, record.edited_args, record.decided_by) == (
        ApprovalStatus.APPROVED,
        None,
        "bob",
    )
    assert paid(db) == [("al", 5000), ("bo", 200), ("cy", 9000)]
    assert checkpoints(db) - before < 40  # a handful of steps, not thousands


@pytest.mark.timeout(30)
def test_an_edit_back_to_earlier_arguments_asks_again_and_never_loops(
    gates: AgentRuntime, db: Path
) -> None:
    _, al, cy = at_gate(gates)
    gates.decide(Decision.reject(cy, by=PAYER, reason="not cy"))
    # A -> B: bob edits 5000 to 6000, which still needs a payer.
    to_b = gates.decide(
        Decision.edit(al, args={"who": "al", "cents": 6000, "card": "4111-1111"}, by=PAYER)
    )
    [b] = to_b.pending_approvals
    assert (b.args["cents"], b.edited_from, b.edited_by) == (6000, al, "bob")
    # B -> A: pat edits it back. That is a new request (edited from B), not A's record.
    to_a = gates.decide(
        Decision.edit(b.id, args={"who": "al", "cents": 5000, "card": "4111-1111"}, by=PAT)
    )
    assert to_a.status is RunStatus.AWAITING_APPROVAL
    [again] = to_a.pending_approvals
    assert again.id not in (al, b.id)
    assert (again.args["cents"], again.edited_from, again.edited_by) == (5000, b.id, "pat")

    done = gates.decide(Decision.approve(again.id, by=PAYER))
    assert done.status is RunStatus.SUCCEEDED
    assert paid(db) == [("al", 5000), ("bo", 200)]


def test_the_editor_of_an_action_cannot_approve_it_under_four_eyes(
    gates: AgentRuntime, db: Path
) -> None:
    _, al, cy = at_gate(gates)
    gates.decide(Decision.reject(cy, by=PAYER, reason="not cy"))
    edited = gates.decide(
        Decision.edit(
            al, args={"who": "bob-personal-account", "cents": 9000, "card": "4999"}, by=PAYER
        )
    )
    [mine] = edited.pending_approvals
    assert (mine.requested_by, mine.edited_by, mine.four_eyes) == ("olga", "bob", True)

    with pytest.raises(NotAuthorized, match=r"'bob' edited the action into .*four-eyes rule"):
        gates.decide(Decision.approve(mine.id, by=PAYER))
    with pytest.raises(NotAuthorized, match="four-eyes"):
        gates.decide(
            Decision.edit(mine.id, args={"who": "bob-2", "cents": 9000, "card": "4999"}, by=PAYER)
        )
    assert gates.approval(mine.id).status is ApprovalStatus.PENDING  # refused: nothing changed
    assert paid(db) == []

    # Another payer may approve it, and may reject it.
    done = gates.decide(Decision.approve(mine.id, by=PAT))
    assert done.status is RunStatus.SUCCEEDED
    assert paid(db) == [("bo", 200), ("bob-personal-account", 9000)]


TIERS = """
version: 1
name: transfers
default: deny
rules:
  - id: over-100
    match: {tools: [pay]}
    when: args.cents > 100
    decision: require_approval
    approval: {role: approver, four_eyes: true, expires_in: 1d}
  - id: over-10000
    match: {tools: [pay]}
    when: args.cents > 10000
    decision: require_approval
    approval: {role: director, expires_in: 3d}
  - id: small
    match: {tools: [pay]}
    when: args.cents <= 100
    decision: allow
"""


def test_every_matching_approval_tier_adds_its_role(db: Path) -> None:
    policy = Policy.from_yaml(TIERS)
    big = policy.evaluate(
        build_runtime(db).tools.get("pay"), "pay", {"who": "x", "cents": 50_000, "card": "1"},
        OPS,
    )  # fmt: skip
    assert (big.required_roles, big.four_eyes, big.expires_in) == (
        ("approver", "director"),
        True,
        86400.0,
    )

    approver = Principal("ann", roles=["approver"], tenant="acme")
    director = Principal("dee", roles=["director"], tenant="acme")
    both = Principal("bea", roles=["approver", "director"], tenant="acme")
    with build_runtime(db, policy=policy, clock=FakeClock(T0), new_id=Ids()) as rt:
        run = rt.start(GOAL, principal=OPS)
        al, bo, cy = run.pending_approvals  # 200 cents is over 100 too
        assert (al.args["cents"], al.roles) == (5000, ("approver",))
        for other in (bo, cy):
            rt.decide(Decision.reject(other.id, by=approver, reason="later"))
        # 5,000 cents needs one tier; an edit to 50,000 needs both.
        grown = rt.decide(
            Decision.edit(al.id, args={"who": "al", "cents": 50_000, "card": "4"}, by=approver)
        )
        [request] = grown.pending_approvals
        assert (request.roles, request.edited_by) == (("approver", "director"), "ann")
        for alone in (Principal("abe", roles=["approver"], tenant="acme"), director):
            with pytest.raises(NotAuthorized, match="every one of the roles 'approver' and"):
                rt.decide(Decision.approve(request.id, by=alone))
        assert paid(db) == []
        assert [r.id for r in rt.approvals(role="director")] == [request.id]
        done = rt.decide(Decision.approve(request.id, by=both))
    assert done.status is RunStatus.SUCCEEDED
    assert paid(db) == [("al", 50_000)]


def test_policy_explain_shows_the_combined_requirement(tmp_path: Path) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text(TIERS, encoding="utf-8")
    code, out = cli(
        "policy", "explain", str(path), "--tool", "pay", "--args",
        '{"who": "x", "cents": 50000, "card": "1"}', "--principal", "olga", "--effect", "write",
    )  # fmt: skip
    assert code == 0, out
    assert "  approver roles approver and director (all of them), four eyes yes, expires 1d" in out


def test_deciding_across_tenants_is_said_not_implied(gates: AgentRuntime, db: Path) -> None:
    thread, al, cy = at_gate(gates)
    nowhere = Principal("nick", roles=["payer"])  # no tenant: not a key to every tenant
    with pytest.raises(NotAuthorized, match="tenant='\\*'"):
        gates.decide(Decision.approve(al, by=nowhere))
    globex = Principal("gus", roles=["payer"], tenant="globex")
    with pytest.raises(NotAuthorized, match="of tenant 'globex' cannot decide"):
        gates.decide(Decision.approve(al, by=globex))
    anywhere = Principal("root", roles=["payer"], tenant=Principal.ALL_TENANTS)
    gates.decide(Decision.approve(al, by=anywhere))
    assert gates.approval(al).decided_by == "root"
    done = gates.decide(Decision.approve(cy, by=anywhere))
    assert done.status is RunStatus.SUCCEEDED
    assert ("approval", "0.0", "approved", "root") in summary(gates, thread)


def test_settling_an_approved_effect_in_doubt_takes_the_approvals_terms(db: Path) -> None:
    sent: list[str] = []

    @tool(effect="write", scopes=["pay"])  # not idempotent: a timeout leaves it in doubt
    def wire(to: str) -> dict[str, str]:
        """Wire money.

        Args:
            to: Payee.
        """
        sent.append(to)
        if len(sent) == 1:
            raise TimeoutError("the bank did not answer")
        return {"sent": to}

    policy = Policy.from_yaml(
        "rules:\n  - id: wires\n    match: {tools: [wire]}\n    decision: require_approval\n"
        "    approval: {role: payer, four_eyes: true}\n"
    )
    model = ScriptedChatModel([ai("", tool_call("wire", {"to": "al"})), "done"])
    with AgentRuntime(model, tools=[wire], policy=policy, db=db) as rt:
        run = rt.start("wire al", principal=OPS)
        assert run.pending_approval is not None
        doubt = rt.decide(Decision.approve(run.pending_approval.id, by=PAYER))
        request = doubt.pending_approval
        assert request is not None
        assert (request.kind, request.roles, request.four_eyes) == ("reconcile", ("payer",), True)
        # The requester approved nothing; she cannot have the call run again on her own.
        olga_payer = Principal("olga", roles=["payer"], tenant="acme")
        with pytest.raises(NotAuthorized, match="four-eyes"):
            rt.decide(Decision.retry(request.id, by=olga_payer))
        with pytest.raises(NotAuthorized, match="requires role 'payer'"):
            rt.decide(Decision.retry(request.id, by=Principal("cleo", tenant="acme")))
        assert sent == ["al"]
        done = rt.decide(Decision.retry(request.id, by=PAYER))
    assert done.status is RunStatus.SUCCEEDED
    assert sent == ["al", "al"]


def test_a_routing_loop_stops_the_run_instead_of_spinning(db: Path) -> None:
    import dataclasses

    from agentrt.graphs import build_run_graph
    from agentrt.nodes import NODES
    from agentrt.nodes.policy import MAX_RECHECKS

    def approval_that_loops(state: object, deps: object) -> dict[str, str]:
        return {"route": "policy"}  # a node bug: back to policy with nothing decided

    buggy = tuple(
        dataclasses.replace(n, body=approval_that_loops) if n.name == "approval" else n
        for n in NODES
    )
    with build_runtime(db, clock=FakeClock(T0), new_id=Ids()) as rt:
        rt.graph = build_run_graph(rt.deps, rt._opened.checkpointer, nodes=buggy)
        run = rt.start(GOAL, principal=OPS)
    assert run.status is RunStatus.FAILED
    assert run.error == (
        f"action 'pay' (step 0.0) came back to policy {MAX_RECHECKS + 1} times without "
        "running or a person deciding: the run went round a loop and was stopped; report it "
        "with this run's trace"
    )
    assert checkpoints(db) < 4 * MAX_RECHECKS


@pytest.mark.timeout(60)
def test_cancel_reaches_a_run_another_process_is_driving(db: Path) -> None:
    jobs = SlowJobs(db)

    def cancel() -> None:
        with AgentRuntime(ScriptedChatModel([]), db=db, tracing=None) as other:
            asked = other.cancel("t", reason="customer withdrew")
            assert (asked.status, asked.cancel_requested) == (
                RunStatus.RUNNING,
                "customer withdrew",
            )

    run = jobs.run_while(cancel)
    # The call in flight finished (never cut inside an effect); the next one never started.
    assert jobs.done == ["a"]
    assert (run.status, run.error, run.cancel_requested) == (
        RunStatus.CANCELLED,
        "customer withdrew",
        None,
    )
