"""`agentrt eval`: a dataset over the refund desk, its report, exit codes, JUnit and
baselines; bad input refused before any run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml
from typer.testing import CliRunner

from agentrt.cli import app
from agentrt.examples import refund_desk

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
        # The run left at the gate was scored there, then cancelled (see below).
        status = "cancelled" if run["cancelled"] else run["status"]
        assert f"status    {status}" in shown.output
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
    # Compared with the baseline, then saved over it: read before any case ran, it rolls on.
    was = json.loads(baseline.read_text())["eval_id"]
    rolled = runner.invoke(
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
            "--save-baseline",
            str(baseline),
        ],
    )
    assert rolled.exit_code == 0, rolled.output
    assert json.loads(baseline.read_text())["eval_id"] != was
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


def eval_threads(db: Path) -> list[str]:
    """The eval runs' thread ids in the database, if it was made."""
    if not db.exists():
        return []
    listed = runner.invoke(app, ["runs", "--db", str(db)])
    return [line.split()[0] for line in listed.output.splitlines() if line.startswith("eval-")]


def test_a_cost_ceiling_counts_on_a_priced_model(dataset: Path, db: Path) -> None:
    text = DATASET.replace("      max_tool_calls: 5\n", "      max_cost_usd: 0.01\n")
    dataset.write_text(text, encoding="utf-8")
    priced = ["--app", "tests.eval_app:priced_runtime", "--db", str(db)]
    result = runner.invoke(app, ["eval", str(dataset), *priced, "--json"])
    assert result.exit_code == 1, result.output
    [run] = [r for r in json.loads(result.stdout)["runs"] if r["case"].startswith("full")]
    [limits] = [s for s in run["scores"] if s["name"] == "limits"]
    assert run["cost_usd"] > 0.01
    assert limits == {
        "name": "limits",
        "passed": False,
        "reason": f"cost_usd {run['cost_usd']:g} > 0.01",
        "value": None,
    }


def test_cases_whose_names_make_the_same_slug_get_threads_of_their_own(
    dataset: Path, db: Path
) -> None:
    """Thread ids carry the case's number: names that slug alike ("small refund",
    "small/refund", or alike in their first 40 characters) are runs of their own."""
    long = "a refund that is large enough to wait for a person"
    cases = "".join(
        f"  - name: {name}\n    goal: Refund $20 on order 43.\n    model:\n      script:\n"
        '        - tool_calls: [{name: issue_refund, args: {order_id: "43", amount: 20.0}}]\n'
        "        - Refunded $20.00 on order 43.\n    expect: {status: succeeded}\n"
        for name in ("small refund", "small/refund", f"{long} (1)", f"{long} (2)")
    )
    dataset.write_text(
        DATASET.split("cases:\n", maxsplit=1)[0] + "cases:\n" + cases, encoding="utf-8"
    )
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["error"] for r in report["runs"]] == [None] * 4
    eval_id = report["eval_id"]
    assert [r["thread_id"] for r in report["runs"]] == [
        f"eval-{eval_id}-1-small-refund-1",
        f"eval-{eval_id}-2-small-refund-1",
        f"eval-{eval_id}-3-a-refund-that-is-large-enough-to-wait-fo-1",
        f"eval-{eval_id}-4-a-refund-that-is-large-enough-to-wait-fo-1",
    ]
    assert sorted(eval_threads(db)) == sorted(r["thread_id"] for r in report["runs"])


def test_a_run_left_at_a_gate_is_cancelled_once_scored_with_its_request(
    dataset: Path, db: Path
) -> None:
    """An eval's runs are real: a case that ends at a gate would leave a live request in
    the app's review queue, which a reviewer could approve into a real refund. Scored
    there, the run is cancelled with its request, and the report says so."""
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db), "--threshold", "0"])
    assert result.exit_code == 0, result.output
    assert (
        "1 run was left waiting (awaiting_approval) and cancelled once scored, their "
        "requests with them: an eval leaves nothing a reviewer could approve into a real "
        "effect"
    ) in result.stdout
    queue = runner.invoke(app, ["approvals", "--db", str(db)])
    assert queue.exit_code == 0, queue.output
    assert "issue_refund" not in queue.output
    as_json = runner.invoke(
        app, ["eval", str(dataset), *DESK, "--db", str(db), "--threshold", "0", "--json"]
    )
    runs = json.loads(as_json.stdout)["runs"]
    # Scored as it stood at the gate, then cancelled.
    assert [(r["case"], r["status"], r["cancelled"]) for r in runs] == [
        ("full-refund-waits-for-approval", "awaiting_approval", True),
        ("approved-refund-succeeds", "succeeded", False),
        ("small-refund", "succeeded", False),
        ("negative-refund-is-refused", "succeeded", False),
    ]
    # Webhooks: the request was told (approval.requested) like any run's, and so is its
    # end (run.cancelled), so a receiver that was told of the request learns it is gone.
    with refund_desk.build_runtime(db) as rt:
        events = rt.store.outbox_events(thread_id=runs[0]["thread_id"])
        assert [e.type for e in events] == ["approval.requested", "run.cancelled"]
        assert rt.approvals(status="pending") == []


def test_a_run_whose_decision_fails_at_the_gate_is_cancelled_too(dataset: Path, db: Path) -> None:
    other = DATASET.replace("tenant: acme}}", "tenant: globex}}")  # bob decides for globex
    dataset.write_text(other, encoding="utf-8")
    result = runner.invoke(
        app, ["eval", str(dataset), *DESK, "--db", str(db), "--threshold", "0", "--json"]
    )
    [run] = [r for r in json.loads(result.stdout)["runs"] if r["case"].startswith("approved")]
    assert (run["status"], run["cancelled"], run["passed"]) == ("awaiting_approval", True, False)
    assert run["error"].startswith("NotAuthorized: 'bob' of tenant 'globex' cannot decide")
    shown = runner.invoke(app, ["show", run["thread_id"], "--db", str(db)])
    assert "status    cancelled" in shown.output


def test_junit_holds_control_characters_written_out(
    dataset: Path, db: Path, tmp_path: Path
) -> None:
    """XML 1.0 cannot hold most control characters: a bell in a case name is written as
    \\x07, so a CI reader parses the file and the name still says what it was."""
    text = DATASET.replace("- name: small-refund", '- name: "small\\x07refund"')
    dataset.write_text(text, encoding="utf-8")
    junit = tmp_path / "eval.xml"
    result = runner.invoke(
        app, ["eval", str(dataset), *DESK, "--db", str(db), "--junit", str(junit)]
    )
    assert result.exit_code == 1, result.output
    [suite] = list(JUnitXml.fromfile(str(junit)))
    assert "small\\x07refund" in {case.name for case in suite}


@pytest.mark.parametrize(
    ("flag", "target"),
    [
        ("--junit", "agentrt.evals.write_junit"),
        ("--save-baseline", "agentrt.evals.EvalReport.save"),
    ],
)
def test_an_output_file_that_fails_to_write_is_one_line_after_the_report(
    dataset: Path,
    db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    flag: str,
    target: str,
) -> None:
    """The disk fills, or the directory goes, while the cases run: the report is printed,
    then one line says which file was not written (exit 2), not a traceback."""

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(target, full)
    out = str(tmp_path / "out")
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db), flag, out])
    assert result.exit_code == 2, result.output
    assert result.stdout.splitlines()[-1].startswith("pass rate 75.0% (3/4)")
    # (stderr starts with the progress bar's line, cleared)
    assert result.stderr.endswith(
        f"\nerror: cannot write {flag} {out!r}: No space left on device\n"
    )
