"""What-if over recorded runs: 50 refund desk runs replayed under a candidate policy, the
counts checked; the same runs under today's policy replay identical; a dataset's recorded
cases run live and replay."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentrt import AgentRuntime, Decision, Policy, tool
from agentrt.cli import app
from agentrt.evals import load_dataset, recent_runs, run_eval, what_if
from agentrt.examples.refund_desk import APPROVER, OPERATOR, POLICY_FILE
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import FakeClock, Ids
from tests.eval_app import amount_runtime, broken_runtime

runner = CliRunner()

AMOUNTS = (10.0, 30.0, 45.0, 60.0, 85.0)
"""Ten runs of each: $60 refunds were approved, $85 ones are still waiting."""

CANDIDATE = (
    POLICY_FILE.read_text(encoding="utf-8").replace("50.0", "20.0")
    + """
  - id: too-large
    match: {tools: [issue_refund]}
    when: args.amount > 80.0
    decision: deny
    reason: Refunds over $80 go through the finance team, not the desk.
"""
)
"""Approval above $20 (was $50), and refunds above $80 denied."""

APP = ["--app", "tests.eval_app:amount_runtime"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with 50 recorded runs (written once; the tests only replay them)."""
    db = tmp_path_factory.mktemp("recorded") / "agentrt.db"
    clock = FakeClock()
    with amount_runtime(db, clock=clock, new_id=Ids()) as rt:
        for index in range(50):
            amount = AMOUNTS[index % 5]
            run = rt.start(f"Refund ${amount:g} on order 42.", principal=OPERATOR)
            if amount == 60.0:
                assert run.pending_approval is not None
                run = rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER))
            clock.advance(1)
            assert run.status == ("awaiting_approval" if amount == 85.0 else "succeeded")
    return db


@pytest.fixture
def candidate(tmp_path: Path) -> Path:
    path = tmp_path / "candidate.yaml"
    path.write_text(CANDIDATE, encoding="utf-8")
    return path


def test_a_candidate_policy_over_50_recorded_runs_is_counted(recorded: Path) -> None:
    with amount_runtime(recorded) as rt:
        ids = recent_runs(rt, last=50)
        found = what_if(rt, ids, policy=Policy.from_yaml(CANDIDATE))
    assert len(ids) == 50
    assert found.counts() == {
        "approval_now": 30,  # $30, $45 newly; $60 as before
        "denied_now": 10,  # $85
        "approval_was": 20,  # $60, $85
        "denied_was": 0,
    }
    assert (found.replayed, found.identical, len(found.diverged)) == (50, 20, 30)
    assert found.summary() == (
        "this policy would have required approval on 30 of the last 50 runs and denied 10 "
        "(as recorded: 20 and 0); 30 diverge, 20 replay identical"
    )
    divergences = {r.divergence for r in found.diverged}
    assert divergences == {
        "step 1.0: policy now requires approval for 'issue_refund' (rule large-refunds); "
        "the run had allow (rule small-refunds)",
        "step 1.0: policy now denies 'issue_refund' (rule too-large); the run had "
        "require_approval (rule large-refunds)",
    }


def test_the_what_if_from_the_command_line(recorded: Path, candidate: Path) -> None:
    result = runner.invoke(
        app,
        [
            "eval",
            "--replay",
            *APP,
            "--db",
            str(recorded),
            "--last",
            "50",
            "--policy",
            str(candidate),
            "--json",
        ],
    )
    assert result.exit_code == 3, result.output  # runs diverge, as `agentrt replay` says
    report = json.loads(result.stdout)
    assert {k: report[k] for k in ("replayed", "identical", "diverged", "candidate")} == {
        "replayed": 50,
        "identical": 20,
        "diverged": 30,
        "candidate": True,
    }
    assert (report["approval_now"], report["denied_now"]) == (30, 10)
    text = runner.invoke(
        app,
        [
            "eval",
            "--replay",
            *APP,
            "--db",
            str(recorded),
            "--policy",
            str(candidate),
            "--last",
            "10",
            "--status",
            "awaiting_approval",
        ],
    )
    assert text.exit_code == 3
    assert text.stdout.splitlines()[-1] == (
        "this policy would have required approval on 0 of the last 10 runs and denied 10 "
        "(as recorded: 10 and 0); 10 diverge, 0 replay identical"
    )


def test_recorded_runs_replay_identical_under_todays_policy(recorded: Path) -> None:
    result = runner.invoke(app, ["eval", "--replay", *APP, "--db", str(recorded), "--last", "20"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        "today's code and policy would have required approval on 8 of the last 20 runs and "
        "denied 0 (as recorded: 8 and 0); 0 diverge, 20 replay identical"
    )


def test_a_replay_that_checked_nothing_or_not_every_run_does_not_exit_0(tmp_path: Path) -> None:
    """A CI gate on a candidate policy must not pass having checked nothing: a database
    with no runs, or a run that could not be replayed (its model never answered), exits
    1 saying how many were checked; not 0, as "every run replays identical" does."""
    db = tmp_path / "agentrt.db"
    broken = ["eval", "--replay", "--app", "tests.eval_app:broken_runtime", "--db", str(db)]
    with broken_runtime(db):
        pass  # the app's database, with no runs yet
    empty = runner.invoke(app, broken)
    assert empty.exit_code == 1, empty.output
    assert empty.stderr == (
        "error: no recorded run was replayed: none matched (the database has no runs of "
        "that status or tenant); nothing was checked\n"
    )
    with broken_runtime(db) as rt:
        assert rt.start("Refund $10 on order 42.", principal=OPERATOR).status == "failed"
    for flags in ([], ["--json"]):
        result = runner.invoke(app, [*broken, *flags])
        assert result.exit_code == 1, result.output
        assert result.stderr == (
            "error: 1 of 1 runs could not be replayed (each one's error says why); only 0 "
            "were checked, so the replay does not vouch for the rest\n"
        )
    assert result.stdout.count('"identical": null') == 1  # the run, in --json's report


def test_a_policy_naming_an_unknown_tool_is_refused(recorded: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CANDIDATE.replace("tools: [issue_refund]", "tools: [issue_refnd]", 1))
    result = runner.invoke(
        app, ["eval", "--replay", *APP, "--db", str(recorded), "--policy", str(bad)]
    )
    assert result.exit_code == 2
    assert "names tool 'issue_refnd', which this runtime does not have" in result.stderr


def test_a_datasets_recorded_cases_run_live_and_replay(recorded: Path, tmp_path: Path) -> None:
    db = tmp_path / "agentrt.db"
    shutil.copy(recorded, db)
    with amount_runtime(db) as rt:
        [small, large] = [
            next(r.thread_id for r in rt.runs(limit=50) if r.goal == f"Refund ${a} on order 42.")
            for a in ("10", "30")
        ]
    dataset = tmp_path / "recorded.jsonl"
    cases = [
        {
            "name": name,
            "goal": f"Refund ${amount} on order 42.",
            "principal": {
                "id": "alice",
                "tenant": "acme",
                "scopes": ["orders:read", "payments:write"],
            },
            "model": {"recorded": thread},
            "expect": {"status": "succeeded", "approvals": 0},
        }
        for name, amount, thread in (("small", 10, small), ("larger", 30, large))
    ]
    dataset.write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    with amount_runtime(db, policy=Policy.from_yaml(CANDIDATE)) as rt:
        report = run_eval(rt, load_dataset(dataset))
    assert [(r.case, r.status, r.passed) for r in report.runs] == [
        ("small", "succeeded", True),
        ("larger", "awaiting_approval", False),  # the candidate asks a person above $20
    ]
    result = runner.invoke(
        app,
        [
            "eval",
            str(dataset),
            "--replay",
            *APP,
            "--db",
            str(db),
            "--policy",
            str(tmp_path / "candidate.yaml"),
        ],
    )
    assert result.exit_code == 2  # no such file: refused before any replay
    (tmp_path / "candidate.yaml").write_text(CANDIDATE)
    result = runner.invoke(
        app,
        [
            "eval",
            str(dataset),
            "--replay",
            *APP,
            "--db",
            str(db),
            "--policy",
            str(tmp_path / "candidate.yaml"),
        ],
    )
    assert result.exit_code == 3
    rows = [line.split()[0] for line in result.stdout.splitlines()[2:4]]
    assert rows == [small, large]
    assert result.stdout.splitlines()[-1].startswith(
        "this policy would have required approval on 1 of the last 2 runs and denied 0"
    )


def test_a_decision_the_candidate_refuses_counts_as_a_divergence(tmp_path: Path) -> None:
    from agentrt import Principal
    from tests import gate_app

    db = tmp_path / "agentrt.db"
    four_eyes = Policy.from_yaml(gate_app.POLICY)
    olga = Principal("olga", roles=["operator", "payer"], tenant="acme", scopes=["pay"])
    no_four_eyes = Policy.from_yaml(gate_app.POLICY.replace("four_eyes: true, ", ""))
    with gate_app.build_runtime(db, clock=FakeClock(), new_id=Ids(), policy=no_four_eyes) as rt:
        run = rt.start(gate_app.GOAL, principal=olga)
        for request in run.pending_approvals:  # she approves her own: no four eyes yet
            run = rt.decide(Decision.approve(request.id, by=olga))
        assert run.status == "succeeded"
        found = what_if(rt, [run.thread_id], policy=four_eyes)
    [one] = found.runs
    assert (one.identical, one.error, one.step_id) == (False, None, "0.0")
    assert found.not_replayed == []
    assert one.divergence is not None
    assert "four-eyes rule" in one.divergence
    assert found.counts()["approval_now"] == 1  # reached up to the refused decision


def test_a_run_cancelled_midway_counts_only_as_far_as_it_went(tmp_path: Path) -> None:
    """The run was cancelled while its second plan's first call ran. Past the cancel the
    replay reaches a step the run never did (a note the candidate gates): not counted, and
    the run is no divergence."""
    holder: dict[str, AgentRuntime] = {}

    @tool(effect="write", idempotent=True)
    def crunch(job: str) -> dict[str, Any]:
        """Crunch a job.

        Args:
            job: Which job.
        """
        if job == "j2":
            holder["rt"].cancel("t", reason="operator stopped it")
        return {"job": job}

    @tool(effect="write", idempotent=True)
    def note(text: str) -> dict[str, Any]:
        """Write a note.

        Args:
            text: What to note.
        """
        return {"noted": text}

    model = ScriptedChatModel(
        [
            ai("", tool_call("crunch", {"job": "j1"})),
            ai("", tool_call("crunch", {"job": "j2"}), tool_call("note", {"text": "j2 done"})),
            "ok",
        ]
    )
    gates_notes = Policy.from_yaml(
        "version: 1\nname: gated-notes\ndefault: allow\nrules:\n"
        "  - id: notes\n    match: {tools: [note]}\n    decision: require_approval\n"
        "    approval: {role: editor}\n"
    )
    with AgentRuntime(
        model, tools=[crunch, note], policy=Policy.allow_all(), db=tmp_path / "agentrt.db",
        clock=FakeClock(), new_id=Ids(),
    ) as rt:  # fmt: skip
        holder["rt"] = rt
        assert rt.start("crunch", principal=OPERATOR, thread_id="t").status == "cancelled"
        found = what_if(rt, ["t"], policy=gates_notes)
    [one] = found.runs
    assert (one.identical, one.divergence, one.now, one.was) == (
        True, None, frozenset({"allow"}), frozenset({"allow"}),
    )  # fmt: skip
    assert found.diverged == []
    assert found.counts()["approval_now"] == 0
