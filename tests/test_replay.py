"""Record and replay: an unchanged run replays identical; today's changes show where they bite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt import AgentRuntime, ConfigError, Decision, Policy
from agentrt.cli import app
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR, POLICY_FILE
from agentrt.replay import ReplayReport
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
