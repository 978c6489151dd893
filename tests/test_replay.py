"""Record and replay: an unchanged run replays identical; today's changes show where they bite."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from typer.testing import CliRunner

from agentrt import (
    AgentRuntime,
    Budget,
    ConfigError,
    Decision,
    Policy,
    Principal,
    RunStatus,
    ToolError,
    tool,
)
from agentrt.cli import app
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR, POLICY_FILE
from agentrt.replay import ReplayReport
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import FakeClock, Ids

LENIENT = POLICY_FILE.read_text(encoding="utf-8").replace("50.0", "100.0")
"""The desk's policy with the approval threshold at $100: the $89 refund needs no one."""


def desk(db: Path, clock: FakeClock, **kw: object) -> AgentRuntime:
    return refund_desk.build_runtime(db, clock=clock, new_id=Ids(), **kw)


def approved_run(db: Path, clock: FakeClock) -> str:
    with desk(db, clock) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        assert rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER)).status == (
            "succeeded"
        )
        return run.thread_id


def table_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("runs", "approvals", "effects", "spans", "model_calls", "checkpoints")
        }


def test_every_model_response_is_recorded(db: Path, clock: FakeClock) -> None:
    thread_id = approved_run(db, clock)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT revision, model, length(request_digest) FROM model_calls WHERE thread_id=? "
            "ORDER BY revision",
            (thread_id,),
        ).fetchall()
    assert rows == [(r, "refund-desk-script", 64) for r in range(4)]


def test_an_unchanged_run_replays_identical_without_touching_the_file(
    db: Path, clock: FakeClock
) -> None:
    thread_id = approved_run(db, clock)
    before = table_counts(db)
    with desk(db, clock) as rt:
        report = rt.replay(thread_id)
    assert report == ReplayReport(thread_id, True, None, None, report.events)
    assert report.events == 14  # 4 plans, 4 policy, 1 approval, 4 results, finish
    assert str(report) == "identical"
    assert table_counts(db) == before


@tool(effect="read")
def weigh(parcel: str) -> dict[str, Any]:
    """Weigh a parcel.

    Args:
        parcel: Its id.
    """
    return {"parcel": parcel, "kg": 2}


def test_answers_with_reasoning_blocks_or_repeated_call_ids_replay_identical(
    db: Path, clock: FakeClock
) -> None:
    # Replay gives the recorded answers again: the blocks a turn keeps, the ids made unique
    # in it and a refusal's failure come out as the run's did.
    thinking = {"type": "thinking", "thinking": "Weigh both.", "signature": "sig-1"}
    calls = [tool_call("weigh", {"parcel": p}, id="same") for p in ("p1", "p2")]
    refusal = AIMessage("", additional_kwargs={"refusal": "I won't weigh a third."})
    model = ScriptedChatModel([AIMessage(content=[thinking], tool_calls=calls), refusal])
    with AgentRuntime(model, tools=[weigh], policy=Policy.allow_all(), db=db, clock=clock) as rt:
        run = rt.start("weigh p1 and p2", principal=Principal("p"), thread_id="t")
        report = rt.replay("t")
    assert run.status is RunStatus.FAILED
    assert "I won't weigh a third." in (run.error or "")
    assert [c["id"] for c in model.calls[1].messages[2].tool_calls] == ["same", "call_0_1"]
    assert str(report) == "identical"


def test_a_rejected_run_replays_identical(db: Path, clock: FakeClock) -> None:
    with desk(db, clock) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        rt.decide(Decision.reject(run.pending_approval.id, by=APPROVER, reason="duplicate"))
        assert str(rt.replay(run.thread_id)) == "identical"


def test_an_edited_run_replays_identical(db: Path, clock: FakeClock) -> None:
    with desk(db, clock) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        edit = Decision.edit(
            run.pending_approval.id, args={"order_id": "42", "amount": 40.0}, by=APPROVER
        )
        assert rt.decide(edit).status == "succeeded"
        assert str(rt.replay(run.thread_id)) == "identical"


def test_a_policy_that_now_asks_for_approval_is_named_at_its_step(
    db: Path, clock: FakeClock
) -> None:
    with desk(db, clock, policy=Policy.from_yaml(LENIENT)) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.status == "succeeded"  # no gate under the lenient policy
    with desk(db, clock) as today:
        report = today.replay(run.thread_id)
    assert not report.identical
    assert report.step_id == "2.0"
    assert report.divergence == (
        "step 2.0: policy now requires approval for 'issue_refund' (rule large-refunds); "
        "the run had allow (rule small-refunds)"
    )


def test_replay_under_a_policy_not_yet_live_leaves_the_runtimes_own(
    db: Path, clock: FakeClock
) -> None:
    with desk(db, clock, policy=Policy.from_yaml(LENIENT)) as rt:
        thread_id = rt.start(GOAL, principal=OPERATOR).thread_id
        live = rt.policy
        what_if = rt.replay(thread_id, policy=Policy.from_file(POLICY_FILE))
        assert rt.policy is live
        assert rt.replay(thread_id).identical  # the runtime's own policy, as before
    assert what_if.divergence == (
        "step 2.0: policy now requires approval for 'issue_refund' (rule large-refunds); "
        "the run had allow (rule small-refunds)"
    )


def test_a_policy_that_now_denies_is_named_at_its_step(db: Path, clock: FakeClock) -> None:
    thread_id = approved_run(db, clock)
    strict = Policy.from_yaml(
        POLICY_FILE.read_text(encoding="utf-8").replace(
            "decision: require_approval", "decision: deny"
        )
    )
    with desk(db, clock, policy=strict) as today:
        report = today.replay(thread_id)
    assert report.step_id == "2.0"
    assert report.divergence == (
        "step 2.0: policy now denies 'issue_refund' (rule large-refunds); "
        "the run had require_approval (rule large-refunds)"
    )


def test_changed_instructions_show_at_the_first_plan(db: Path, clock: FakeClock) -> None:
    thread_id = approved_run(db, clock)
    with desk(db, clock, instructions="Be terse.") as today:
        report = today.replay(thread_id)
    assert report.divergence == (
        "plan 0: the model is now asked something other than what was recorded "
        "(instructions or history changed)"
    )
    assert report.events == 0


def test_a_policy_changed_while_the_run_waited_is_named_in_words(
    db: Path, clock: FakeClock, tmp_path: Path
) -> None:
    before = Policy.from_file(POLICY_FILE).version
    edited = tmp_path / "edited.yaml"
    edited.write_text(
        POLICY_FILE.read_text(encoding="utf-8").replace("$50 need a", "$50 needs a"),
        encoding="utf-8",
    )
    with desk(db, clock) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        rt.policy = Policy.from_file(edited)  # swapped while the run waits for a person
        rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER))
        report = rt.replay(run.thread_id)
    # The replay runs on today's policy from the start, so it never sees the change.
    assert report.divergence == (
        'step 2.0: the replay has result 2.0: issue_refund: [ok] {"amount": 89.0, '
        '"currency": "USD", "order_id": "42", "refund_id": "rf_33da56... where the run had '
        f"policy changed: refund-desk@{before} -> refund-desk@{rt.policy.version}"
    )


def test_a_run_without_recordings_cannot_be_replayed(db: Path, clock: FakeClock) -> None:
    thread_id = approved_run(db, clock)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM model_calls")
    with desk(db, clock) as rt, pytest.raises(ConfigError, match="no recorded model calls"):
        rt.replay(thread_id)


def test_agentrt_replay_command(db: Path, clock: FakeClock) -> None:
    thread_id = approved_run(db, clock)
    runner = CliRunner()
    app_args = ["--app", "agentrt.examples.refund_desk:build_runtime", "--db", str(db)]
    result = runner.invoke(app, ["replay", thread_id, *app_args])
    assert (result.exit_code, result.output) == (0, "identical\n")

    with sqlite3.connect(db) as conn:  # today's recording of plan 0 no longer matches
        conn.execute("UPDATE model_calls SET request_digest='x' WHERE revision=0")
    result = runner.invoke(app, ["replay", thread_id, *app_args])
    assert result.exit_code == 3
    assert result.output.startswith("diverged: plan 0: the model is now asked")


def test_a_run_whose_budget_a_person_raised_replays_identical(db: Path, clock: FakeClock) -> None:
    from agentrt import Budget, Principal
    from tests import budget_app

    owner = Principal("fin", roles=["budget-owner"], tenant="acme")
    asks = Budget(max_tool_calls=2, max_steps=4, on_exceed="ask", approver_role="budget-owner")
    with budget_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        run = rt.start("ping", principal=Principal("ops", tenant="acme"), budget=asks)
        assert run.pending_approval is not None
        raised = rt.decide(
            Decision.raise_limit(run.pending_approval.id, limit="max_tool_calls", to=3, by=owner)
        )
        assert raised.pending_approval is not None  # it meets a limit again: refused this time
        done = rt.decide(Decision.reject(raised.pending_approval.id, by=owner, reason="enough"))
        assert done.status == "budget_exceeded"
        pings = budget_app.executions(db)
        report = rt.replay(run.thread_id)
        assert str(report) == "identical", report
        assert budget_app.executions(db) == pings  # the replay pinged nothing
        waits = [s for _, s in rt.trace(run.thread_id).spans() if s.kind == "approval.wait"]
        assert [w.attributes["agentrt.approval.kind"] for w in waits] == ["budget", "budget"]


# Each call replays as the run saw it end -----------------------------------------------------


def _one_call_runtime(
    db: Path, clock: FakeClock, spec: Any, args: dict[str, Any], **kw: Any
) -> AgentRuntime:
    """A runtime whose model calls ``spec`` once with ``args``, then answers "done"."""
    model = ScriptedChatModel([ai("", tool_call(spec.name, args)), "done"])
    kw.setdefault("policy", Policy.allow_all())
    return AgentRuntime(model, tools=[spec], db=db, clock=clock, new_id=Ids(), **kw)


def _observed(rt: AgentRuntime, thread_id: str) -> list[tuple[str, str]]:
    return [
        (e["data"]["kind"], e["data"]["content"])
        for e in rt.events(thread_id)
        if e["type"] == "observation"
    ]


def _failing_read(exc: Exception, calls: list[str]) -> Any:
    @tool(effect="read")
    def lookup(order_id: str) -> str:
        """Look an order up.

        Args:
            order_id: The order.
        """
        calls.append(order_id)
        raise exc

    return lookup


@pytest.mark.parametrize(
    ("exc", "seen"),
    [
        (ToolError("no order '99'"), ("permanent", "permanent error: no order '99'")),
        (
            ToolError("the index is rebuilding", kind="transient"),
            ("transient", "transient error (after 2 retries): the index is rebuilding"),
        ),
        (
            TimeoutError("the index did not answer"),
            ("timeout", "timeout error: TimeoutError: the index did not answer"),
        ),
        (KeyError("99"), ("permanent", "permanent error: KeyError: '99'")),
    ],
)
def test_a_read_tools_failure_replays_with_its_kind_and_message(
    db: Path, clock: FakeClock, exc: Exception, seen: tuple[str, str]
) -> None:
    calls: list[str] = []
    spec = _failing_read(exc, calls)
    with _one_call_runtime(db, clock, spec, {"order_id": "99"}, sleep=lambda _: None) as rt:
        run = rt.start("look up 99", principal=OPERATOR)
        assert run.status == "succeeded", run.error
        assert _observed(rt, run.thread_id) == [seen]
        made = len(calls)
        report = rt.replay(run.thread_id)
    assert str(report) == "identical", report
    assert len(calls) == made  # the replay called nothing real


def _read_returning(value: Any, returns: Any, calls: list[str], check: Any = None) -> Any:
    def lookup(order_id: str) -> Any:
        """Look an order up.

        Args:
            order_id: The order.
        """
        calls.append(order_id)
        return value

    return tool(effect="read", output=returns, verify=check)(lookup)


@pytest.mark.parametrize(
    ("value", "returns"),
    [
        ("42", str),  # a str that reads as JSON stays a str
        ('{"a": 1}', str),
        ("[1,2]", str),
        ("null", str),
        (42, int),
        ({"a": [1, 2.5, None]}, dict[str, Any]),
        ("plain words", str),
    ],
)
def test_a_read_tools_result_replays_as_returned(
    db: Path, clock: FakeClock, value: Any, returns: Any
) -> None:
    calls: list[str] = []
    spec = _read_returning(value, returns, calls)
    with _one_call_runtime(db, clock, spec, {"order_id": "1"}) as rt:
        run = rt.start("look up 1", principal=OPERATOR)
        [(kind, _)] = _observed(rt, run.thread_id)
        assert kind == "ok"
        report = rt.replay(run.thread_id)
    assert str(report) == "identical", report
    assert calls == ["1"]


def test_a_retry_the_run_made_and_todays_tool_would_not_is_a_divergence(
    db: Path, clock: FakeClock
) -> None:
    from langgraph.types import RetryPolicy

    calls: list[str] = []

    def flaky(order_id: str) -> str:
        """Look an order up.

        Args:
            order_id: The order.
        """
        calls.append(order_id)
        if len(calls) < 3:
            raise ToolError("the index is rebuilding", kind="transient")
        return "42"

    patient = tool(effect="read")(flaky)
    with _one_call_runtime(db, clock, patient, {"order_id": "1"}, sleep=lambda _: None) as rt:
        run = rt.start("look up 1", principal=OPERATOR)
        assert _observed(rt, run.thread_id) == [("ok", "42")]
        assert str(rt.replay(run.thread_id)) == "identical"
    hasty = tool(effect="read", retry=RetryPolicy(max_attempts=2))(flaky)
    with _one_call_runtime(db, clock, hasty, {"order_id": "1"}) as today:
        report = today.replay(run.thread_id)
    assert report.divergence == (
        'step 0.0: flaky now gives [transient] "transient error (after 1 retries): replay: '
        "the run's call failed here and was tried again\"; the run had [ok] '42'"
    )
    assert calls == ["1", "1", "1"]


def test_a_read_result_its_postcondition_refused_replays_refused(
    db: Path, clock: FakeClock
) -> None:
    calls: list[str] = []
    spec = _read_returning("-5", str, calls, check=lambda args, result: not result.startswith("-"))
    with _one_call_runtime(db, clock, spec, {"order_id": "1"}) as rt:
        run = rt.start("look up 1", principal=OPERATOR)
        assert _observed(rt, run.thread_id) == [
            ("permanent", "postcondition of 'lookup' rejected the result")
        ]
        assert str(rt.replay(run.thread_id)) == "identical"
        # Today's check takes the result: the replay says the run now goes another way.
        spec_now = _read_returning("-5", str, calls, check=lambda args, result: True)
        with _one_call_runtime(db, clock, spec_now, {"order_id": "1"}) as today:
            report = today.replay(run.thread_id)
    assert report.divergence == (
        "step 0.0: lookup now gives [ok] '-5'; the run had [permanent] "
        "\"postcondition of 'lookup' rejected the result\""
    )
    assert calls == ["1"]


def test_a_write_tools_failure_replays_with_its_kind_and_retries(
    db: Path, clock: FakeClock
) -> None:
    calls: list[str] = []

    @tool(effect="write", idempotent=True)
    def refund(order_id: str) -> dict[str, str]:
        """Refund an order.

        Args:
            order_id: The order.
        """
        calls.append(order_id)
        raise ToolError("the bank is busy", kind="transient")

    with _one_call_runtime(db, clock, refund, {"order_id": "7"}, sleep=lambda _: None) as rt:
        run = rt.start("refund 7", principal=OPERATOR)
        assert _observed(rt, run.thread_id) == [
            ("transient", "transient error (after 2 retries): the bank is busy")
        ]
        report = rt.replay(run.thread_id)
    assert str(report) == "identical", report
    assert calls == ["7", "7", "7"]


# Limits and gates replay as the run met them -------------------------------------------------


def test_a_thread_whose_messages_own_limit_was_raised_replays_identical(
    db: Path, clock: FakeClock
) -> None:
    from tests import threads_app

    with threads_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        run = rt.start("note 2", principal=threads_app.OPS)
        own = Budget(max_tool_calls=1, on_exceed="ask", approver_role="payer")
        asked = rt.send(run.thread_id, "note 3", principal=threads_app.OPS, budget=own)
        request = asked.pending_approval
        assert request is not None
        assert request.kind == "budget"
        raised = Decision.raise_limit(
            request.id, limit="max_tool_calls", to=3, by=threads_app.PAYER
        )
        done = rt.decide(raised)
        assert (done.status, done.output) == ("succeeded", "noted 3")
        assert done.budget.max_tool_calls is None  # the thread never had such a limit
        notes = threads_app.calls(db)
        report = rt.replay(run.thread_id)
        assert threads_app.calls(db) == notes  # the replay noted nothing
    assert str(report) == "identical", report


DAY = 86400.0


def _expiring(on_expiry: str) -> Policy:
    from tests.gate_app import POLICY

    if on_expiry == "escalate":
        return Policy.from_yaml(POLICY)
    return Policy.from_yaml(
        POLICY.replace(
            "on_expiry: escalate,\n               escalate_to: treasurer", "on_expiry: reject"
        )
    )


def test_a_run_whose_approvals_expired_replays_identical(db: Path) -> None:
    from tests import gate_app

    clock = FakeClock(gate_app.T0)
    with gate_app.build_runtime(db, clock=clock, new_id=Ids(), policy=_expiring("reject")) as rt:
        run = rt.start(gate_app.GOAL, principal=gate_app.OPS)
        clock.advance(7 * DAY)
        [done] = rt.sweep_approvals().runs
        assert done.status == "succeeded"
        paid = gate_app.paid(db)
        report = rt.replay(run.thread_id)
    assert str(report) == "identical", report
    assert gate_app.paid(db) == paid  # the replay paid no one


def test_a_run_whose_approvals_escalated_replays_the_escalation(db: Path) -> None:
    from tests import gate_app

    clock = FakeClock(gate_app.T0)
    with gate_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        run = rt.start(gate_app.GOAL, principal=gate_app.OPS)
        clock.advance(7 * DAY)
        [waiting] = rt.sweep_approvals().runs
        for request in waiting.pending_approvals:
            assert request.escalated_from is not None
            last = rt.decide(Decision.approve(request.id, by=gate_app.TREASURER))
        assert last.status == "succeeded"
        assert str(rt.replay(run.thread_id)) == "identical"
        # Under a rule that rejects on expiry, the same wait ends the request instead.
        now = rt.replay(run.thread_id, policy=_expiring("reject"))
    assert now.step_id == "0.0"
    assert now.divergence == (
        "step 0.0: the replay has approval 0.0: pay expired: expired undecided where the run "
        "had approval 0.0: pay approved by tess"
    )


def test_an_expiry_todays_policy_does_not_set_is_a_divergence_at_its_step(db: Path) -> None:
    from tests import gate_app

    clock = FakeClock(gate_app.T0)
    with gate_app.build_runtime(db, clock=clock, new_id=Ids(), policy=_expiring("reject")) as rt:
        run = rt.start(gate_app.GOAL, principal=gate_app.OPS)
        clock.advance(7 * DAY)
        assert rt.sweep_approvals().runs[0].status == "succeeded"
        never = Policy.from_yaml(  # the same rule, without an expiry
            gate_app.POLICY.replace(
                "four_eyes: true, expires_in: 7d, on_expiry: escalate,\n"
                "               escalate_to: treasurer",
                "four_eyes: true",
            )
        )
        assert never.version != rt.policy.version
        report = rt.replay(run.thread_id, policy=never)
    assert (report.step_id, report.divergence) == (
        "0.0",
        "step 0.0: the run's action request expired undecided; today's policy sets no expiry on it",
    )


def _in_doubt_runtime(db: Path, clock: FakeClock, sent: list[str]) -> AgentRuntime:
    @tool(effect="write")  # not idempotent: a timeout leaves its effect in doubt
    def wire(to: str) -> dict[str, str]:
        """Wire money.

        Args:
            to: Payee.
        """
        sent.append(to)
        if len(sent) == 1:
            raise TimeoutError("the bank did not answer")
        return {"sent": to}

    return _one_call_runtime(db, clock, wire, {"to": "al"})


@pytest.mark.parametrize("settled", ["retry", "resolve"])
def test_a_run_that_settled_an_effect_in_doubt_replays_identical(
    db: Path, clock: FakeClock, settled: str
) -> None:
    sent: list[str] = []
    with _in_doubt_runtime(db, clock, sent) as rt:
        run = rt.start("wire al", principal=OPERATOR)
        request = run.pending_approval
        assert request is not None
        assert request.kind == "reconcile"
        if settled == "retry":
            decision = Decision.retry(request.id, by=APPROVER)
        else:
            decision = Decision.resolve(request.id, result={"sent": "al?"}, by=APPROVER)
        assert rt.decide(decision).status == "succeeded"
        before = list(sent)
        report = rt.replay(run.thread_id)
    assert str(report) == "identical", report
    assert sent == before  # nothing real called


def test_a_decision_todays_checks_refuse_is_a_divergence_at_its_step(db: Path) -> None:
    from tests import gate_app

    no_four_eyes = Policy.from_yaml(gate_app.POLICY.replace("four_eyes: true, ", ""))
    olga = Principal("olga", roles=["operator", "payer"], tenant="acme", scopes=["pay"])
    with gate_app.build_runtime(
        db, clock=FakeClock(gate_app.T0), new_id=Ids(), policy=no_four_eyes
    ) as rt:
        run = rt.start(gate_app.GOAL, principal=olga)
        for request in run.pending_approvals:  # no four eyes: she may approve her own
            last = rt.decide(Decision.approve(request.id, by=olga))
        assert last.status == "succeeded"
        report = rt.replay(run.thread_id, policy=Policy.from_yaml(gate_app.POLICY))
    assert not report.identical
    assert report.step_id == "0.0"
    assert report.divergence is not None
    assert report.divergence.startswith(
        "step 0.0: today's checks refuse the decision the run got on its action request "
        "(approved by 'olga'): 'olga' requested "
    )
    assert "four-eyes rule" in report.divergence

    app_args = ["--app", "tests.gate_app:build_runtime", "--db", str(db)]
    result = CliRunner().invoke(app, ["replay", run.thread_id, *app_args])
    assert result.exit_code == 3, result.output
    assert result.output.startswith("diverged: step 0.0: today's checks refuse the decision")


def _self_cancelling(db: Path, clock: FakeClock, **kw: Any) -> AgentRuntime:
    """A runtime whose write tool asks to cancel its own run (as an operator in another
    thread of the app would) while it crunches j1: the run ends cancelled at its next step.
    """
    holder: dict[str, AgentRuntime] = {}

    @tool(effect="write", idempotent=True)
    def crunch(job: str) -> dict[str, str]:
        """Crunch a job.

        Args:
            job: Which job.
        """
        if job == "j1":
            holder["rt"].cancel("t", reason="operator stopped it")
        return {"job": job}

    plans = [ai("", tool_call("crunch", {"job": job})) for job in ("j1", "j2")]
    model = ScriptedChatModel([*plans, "ok"])
    rt = AgentRuntime(model, tools=[crunch], db=db, clock=clock, new_id=Ids(), **kw)
    holder["rt"] = rt
    return rt


def test_a_run_cancelled_between_steps_replays_identical_as_far_as_it_went(
    db: Path, clock: FakeClock
) -> None:
    """A cancel is an outside input, as a decision is: where the run was cancelled the
    replay is compared no further, and an unchanged run is identical."""
    with _self_cancelling(db, clock, policy=Policy.allow_all()) as rt:
        run = rt.start("crunch", principal=OPERATOR, thread_id="t")
        assert run.status is RunStatus.CANCELLED, run
        report = rt.replay("t")
    assert str(report) == (
        "identical (compared as far as the run went: finish: cancelled: operator stopped it)"
    )


def test_a_cancelled_run_that_went_another_way_before_its_cancel_diverges(
    db: Path, clock: FakeClock
) -> None:
    denies = Policy.from_yaml("version: 1\nname: no-crunch\ndefault: deny\n")
    with _self_cancelling(db, clock, policy=Policy.allow_all()) as rt:
        assert rt.start("crunch", principal=OPERATOR, thread_id="t").status == "cancelled"
        report = rt.replay("t", policy=denies)
    assert not report.identical
    assert (report.step_id, report.events) == ("0.0", 1)
    assert report.divergence is not None
    assert report.divergence.startswith("step 0.0: policy now denies 'crunch'")
