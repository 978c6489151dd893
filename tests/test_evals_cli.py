"""`agentrt eval`: a dataset over the refund desk, its report, exit codes, JUnit and
baselines; bad input refused before any run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml
from typer.testing import CliRunner

from agentrt.cli import app

runner = CliRunner()

DESK = ["--app", "agentrt.examples.refund_desk:build_runtime"]

DATASET = """\
name: refund-desk
defaults:
  principal:
    id: alice
    roles: [operator]
    tenant: acme
    scopes: [orders:read, orders:write, payments:write]
cases:
  - name: full-refund-waits-for-approval
    goal: The customer on order 42 says the blender arrived broken. Refund the order.
    expect:
      status: awaiting_approval
      tools:
        sequence: [lookup_order, issue_refund]
        counts: {issue_refund: 1}
      approvals: [large-refunds]
      denials: 0
      where:
        - calls.exists(c, c.tool == "issue_refund" && c.args.amount == 89.0)
        - approvals[0].approval == "pending"
      max_tool_calls: 5

  - name: approved-refund-succeeds
    goal: The customer on order 42 says the blender arrived broken. Refund the order.
    decide: {decision: approve, by: {id: bob, roles: [refund-approver], tenant: acme}}
    expect:
      status: succeeded
      output: {contains: Refunded, regex: '\\$89\\.00'}
    scorers: ["tests.eval_app:says_amount"]

  - name: small-refund
    goal: Refund $20 on order 43.
    model:
      script:
        - tool_calls: [{name: issue_refund, args: {order_id: "43", amount: 20.0}}]
        - Refunded $20.00 on order 43.
    expect:
      status: succeeded
      approvals: 0
      tools: {only: [issue_refund]}

  - name: negative-refund-is-refused
    goal: Refund $-5 on order 43.
    model:
      script:
        - tool_calls: [{name: issue_refund, args: {order_id: "43", amount: -5}}]
        - I could not refund order 43.
    expect:
      status: succeeded
      denials: [not-positive]
      output: {contains: Refunded}
"""


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "refunds.yaml"
    path.write_text(DATASET, encoding="utf-8")
    return path


def test_a_dataset_reports_each_case_and_exits_1_under_the_threshold(
    dataset: Path, db: Path
) -> None:
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db), "--json"])
    assert result.exit_code == 1, result.output
    assert "pass rate 75.0% is under the threshold 100.0%" in result.stderr
    report = json.loads(result.stdout)
    assert report["aggregate"] | {"latency_p50": 0, "latency_p95": 0} == {
        "runs": 4,
        "passed": 3,
        "pass_rate": 0.75,
        "cost_usd": 0.0,
        "tokens": report["aggregate"]["tokens"],
        "latency_p50": 0,
        "latency_p95": 0,
    }
    assert {c["name"]: (c["passed"], c["failed_scorers"]) for c in report["cases"]} == {
        "full-refund-waits-for-approval": (1, []),
        "approved-refund-succeeds": (1, []),
        "small-refund": (1, []),
        "negative-refund-is-refused": (0, ["output"]),
    }
    assert {s["name"]: (s["passed"], s["runs"]) for s in report["scorers"]} == {
        "status": (4, 4),
        "tools": (2, 2),
        "where": (1, 1),
        "approvals": (2, 2),
        "denials": (2, 2),
        "limits": (1, 1),
        "output": (1, 2),
        "tests.eval_app:says_amount": (1, 1),
    }
    failed = next(r for r in report["runs"] if not r["passed"])
    assert [(s["name"], s["reason"]) for s in failed["scores"] if not s["passed"]] == [
        ("output", "output does not contain 'Refunded'; it was 'I could not refund order 43.'")
    ]
    # The eval's runs stay in the store: each thread can be shown and traced.
    for run in report["runs"]:
        assert run["thread_id"].startswith(f"eval-{report['eval_id']}-")
        shown = runner.invoke(app, ["show", run["thread_id"], "--db", str(db)])
        assert f"status    {run['status']}" in shown.output
        traced = runner.invoke(app, ["trace", run["thread_id"], "--db", str(db)])
        assert traced.exit_code == 0, traced.output
        assert run["thread_id"] in traced.output


def test_the_table_names_cases_scorers_failures_and_threads(dataset: Path, db: Path) -> None:
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[1].split() == [
        *("CASE", "PASSED", "COST", "TOKENS", "P50", "P95", "FAILED", "THREAD")
    ]
    row = next(line.split() for line in lines if line.startswith("negative-refund"))
    assert (row[1], row[2], row[6]) == ("0/1", "$0", "output")
    assert row[7].startswith("eval-")
    assert row[7].endswith("-negative-refund-is-refused-1")
    assert next(line for line in lines if line.startswith("(all)")).split()[1] == "3/4"
    assert "failed runs (agentrt trace THREAD shows one):" in lines
    assert lines[-1].startswith("pass rate 75.0% (3/4), cost $0, ")


@pytest.mark.parametrize(("threshold", "code"), [("0.75", 0), ("0.8", 1), ("0", 0)])
def test_the_threshold_decides_the_exit_code(
    dataset: Path, db: Path, threshold: str, code: int
) -> None:
    result = runner.invoke(
        app, ["eval", str(dataset), *DESK, "--db", str(db), "--threshold", threshold]
    )
    assert result.exit_code == code, result.output


def test_every_case_passing_exits_0(dataset: Path, db: Path) -> None:
    passing = DATASET.split("  - name: negative-refund-is-refused", maxsplit=1)[0]
    dataset.write_text(passing, encoding="utf-8")
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("pass rate 100.0% (3/3)")


def test_the_junit_file_reads_back_with_a_junit_reader(
    dataset: Path, db: Path, tmp_path: Path
) -> None:
    junit = tmp_path / "eval.xml"
    result = runner.invoke(
        app,
        ["eval", str(dataset), *DESK, "--db", str(db), "--repeat", "2", "--junit", str(junit)],
    )
    assert result.exit_code == 1
    [suite] = list(JUnitXml.fromfile(str(junit)))
    assert (suite.name, suite.tests, suite.failures, suite.errors) == ("refund-desk", 8, 2, 0)
    cases = {case.name: case for case in suite}
    assert sorted(cases) == sorted(
        f"{name} [{n}/2]"
        for name in (
            "full-refund-waits-for-approval",
            "approved-refund-succeeds",
            "small-refund",
            "negative-refund-is-refused",
        )
        for n in (1, 2)
    )
    failing = cases["negative-refund-is-refused [2/2]"]
    [failure] = failing.result
    assert isinstance(failure, Failure)
    assert failure.message.startswith("output: output does not contain 'Refunded'")
    assert "-negative-refund-is-refused-2 (succeeded" in failing.system_out
    assert cases["small-refund [1/2]"].is_passed
    assert all(case.classname == "refund-desk" for case in suite)


def test_a_baseline_regression_exits_1_and_names_the_case(
    dataset: Path, db: Path, tmp_path: Path
) -> None:
    baseline = tmp_path / "baseline.json"
    saved = runner.invoke(
        app,
        [
            "eval",
            str(dataset),
            *DESK,
            "--db",
            str(db),
            "--threshold",
            "0",
            "--save-baseline",
            str(baseline),
        ],
    )
    assert saved.exit_code == 0, saved.output
    assert json.loads(baseline.read_text())["aggregate"]["passed"] == 3
    same = runner.invoke(
        app,
        [
            "eval",
            str(dataset),
            *DESK,
            "--db",
            str(db),
            "--threshold",
            "0",
            "--baseline",
            str(baseline),
        ],
    )
    assert same.exit_code == 0, same.output
    # The policy tightens: refunds over $10 now wait for a person.
    strict = runner.invoke(
        app,
        [
            "eval",
            str(dataset),
            "--app",
            "tests.eval_app:strict_runtime",
            "--db",
            str(db),
            "--threshold",
            "0",
            "--baseline",
            str(baseline),
            "--json",
        ],
    )
    assert strict.exit_code == 1, strict.output
    regressions = json.loads(strict.stdout)["regressions"]
    assert regressions == [
        "case 'small-refund' passed 1/1 in the baseline, 0/1 now (status, approvals now fail)"
    ]
    assert f"regression: {regressions[0]}" in strict.stderr


BAD = {
    "typo": (
        "    expect:\n      status: awaiting_approval\n",
        "    expect:\n      statsu: awaiting_approval\n",
        "refunds.yaml:12, case 'full-refund-waits-for-approval', field expect.statsu: "
        "unknown field; known fields: status, tools, where, approvals, denials, "
        "max_cost_usd, max_tokens, max_steps, max_tool_calls, output",
    ),
    "scorer": (
        '"tests.eval_app:says_amount"',
        '"tests.eval_app:says_amont"',
        "refunds.yaml:29, case 'approved-refund-succeeds', field scorers[0]: module "
        "'tests.eval_app' has no scorer 'says_amont'",
    ),
    "not a function": (
        '"tests.eval_app:says_amount"',
        '"tests.eval_app:NOT_A_FUNCTION"',
        "refunds.yaml:29, case 'approved-refund-succeeds', field scorers[0]: scorer "
        "'tests.eval_app:NOT_A_FUNCTION' is 42, not a function",
    ),
    "cel": (
        "c.args.amount == 89.0)",
        "c.args.amount == 89.0",
        "refunds.yaml:19, case 'full-refund-waits-for-approval', field expect.where[0]: "
        'not a valid CEL expression \'calls.exists(c, c.tool == "issue_refund" && '
        "c.args.amount == 89.0': Syntax error: missing ')' at '<EOF>'",
    ),
    "status": (
        "      status: awaiting_approval\n",
        "      status: waiting\n",
        "refunds.yaml:12, case 'full-refund-waits-for-approval', field expect.status: Input "
        "should be 'pending', 'running', 'awaiting_approval', 'waiting_retry', 'succeeded', "
        "'failed', 'cancelled' or 'budget_exceeded'",
    ),
    "budget": (
        "    goal: Refund $20 on order 43.\n",
        "    goal: Refund $20 on order 43.\n    budget: {max_tool_call: 3}\n",
        "case 'small-refund', field budget: unknown Budget fields ['max_tool_call']",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_input_names_the_case_and_field_and_exits_2_before_any_run(
    dataset: Path, db: Path, kind: str
) -> None:
    old, new, message = BAD[kind]
    assert old in DATASET
    dataset.write_text(DATASET.replace(old, new, 1), encoding="utf-8")
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not db.exists()  # refused before the app's database was opened


def test_a_rubric_without_a_judge_model_is_refused(dataset: Path, db: Path) -> None:
    dataset.write_text(DATASET + "    judge: The answer says what was refused.\n")
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db)])
    assert result.exit_code == 2
    assert (
        "case 'negative-refund-is-refused', field judge: the case has a judge rubric but no "
        "judge model is given" in result.stderr
    )


@pytest.mark.parametrize(("judge", "passed"), [("judge_pass", True), ("judge_fail", False)])
def test_the_judge_model_grades_against_the_rubric(
    dataset: Path, db: Path, judge: str, passed: bool
) -> None:
    dataset.write_text(DATASET + "    judge: The answer says what was refused.\n")
    result = runner.invoke(
        app,
        [
            "eval",
            str(dataset),
            *DESK,
            "--db",
            str(db),
            "--json",
            "--threshold",
            "0",
            "--judge",
            f"tests.eval_app:{judge}",
        ],
    )
    assert result.exit_code == 0, result.output
    [run] = [r for r in json.loads(result.stdout)["runs"] if r["case"].startswith("negative")]
    [score] = [s for s in run["scores"] if s["name"] == "judge"]
    expected = (
        (True, "The refund amount is stated.", 0.9)
        if passed
        else (False, "No amount is given.", 0.2)
    )
    assert (score["passed"], score["reason"], score["value"]) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "x.yaml"], "--policy apply to --replay only"),
        (["--replay", "--junit", "x.xml"], "--junit apply to a dataset run, not to --replay"),
        (["--threshold", "1.5"], "--threshold must be between 0 and 1, got 1.5"),
        (["--baseline", "missing.json"], "cannot read baseline 'missing.json'"),
    ],
)
def test_bad_flags_exit_2(dataset: Path, db: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
