"""An eval's report: its arithmetic (percentiles), regressions against a baseline, JUnit
XML, and the JSON that --json and --save-baseline write, through the Python API."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from agentrt.evals import (
    EvalReport,
    RunResult,
    Score,
    parse_dataset,
    percentile,
    regressions,
    run_eval,
)
from agentrt.evals.junit import junit_xml
from agentrt.examples import refund_desk
from tests.conftest import FakeClock, Ids


def test_percentiles_interpolate_between_ranks() -> None:
    values = [0.4, 0.1, 0.3, 0.2, 1.0]
    assert (percentile(values, 50), percentile(values, 95), percentile([], 50)) == (
        0.3,
        pytest.approx(0.88),
        0.0,
    )


def run(case: str, n: int, passed: bool, *failing: str) -> RunResult:
    scores_ = [Score(name, False, "no") for name in failing] or [Score("status", passed)]
    return RunResult(
        case=case, repeat=n, thread_id=f"{case}-{n}", status="succeeded", scores=tuple(scores_)
    )


def test_regressions_name_the_case_and_the_scorers_that_now_fail() -> None:
    baseline = EvalReport(
        dataset="d",
        eval_id="a",
        repeat=2,
        runs=(run("a", 1, True), run("a", 2, True), run("b", 1, False, "tools"), run("b", 2, True)),
    )
    now = EvalReport(
        dataset="d",
        eval_id="b",
        repeat=2,
        runs=(
            run("a", 1, True),
            run("a", 2, False, "status"),
            run("b", 1, True),
            run("c", 1, False, "x"),
        ),
    )
    assert regressions(baseline, now) == [
        "case 'a' passed 2/2 in the baseline, 1/2 now (status now fail)"
    ]
    assert regressions(now, now) == []
    assert EvalReport.from_dict(json.loads(json.dumps(now.to_dict()))) == now


def test_junit_writes_out_what_xml_cannot_hold() -> None:
    """A scorer's reason with a terminal's colours, a case name with a bell, a lone
    surrogate: the document parses, and each is there as \\x1b, \\x07, \\ud800."""
    report = EvalReport(
        dataset="d\x00",
        eval_id="x",
        runs=(
            RunResult(
                case="bell\x07case",
                repeat=1,
                thread_id="t1",
                status="succeeded",
                scores=(Score("s", False, "colour \x1b[31mred\x1b[0m\ttab\nline"),),
            ),
            RunResult(
                case="c", repeat=1, thread_id="t2", status="failed", scores=(), error="odd \ud800"
            ),
        ),
    )
    text = ET.tostring(junit_xml(report).getroot(), encoding="unicode")
    root = ET.fromstring(text.encode("utf-8"))
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("name") == "d\\x00"
    first, second = suite.findall("testcase")
    assert first.get("name") == "bell\\x07case"
    failure = first.find("failure")
    assert failure is not None
    assert failure.get("message") == "s: colour \\x1b[31mred\\x1b[0m\ttab\nline"
    assert failure.text == "s: colour \\x1b[31mred\\x1b[0m\ttab\nline"
    error = second.find("error")
    assert error is not None
    assert error.get("message") == error.text == "odd \\ud800"


def not_json(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON: jq, JSON.parse and CI readers refuse it")


def test_a_scorer_value_that_is_no_number_keeps_the_report_json(
    db: Path, clock: FakeClock, tmp_path: Path
) -> None:
    """A custom Score's value of NaN went into the report as it was: the mean too, and
    --json and --save-baseline wrote `NaN`. The scorer fails instead, saying why, and the
    report is JSON."""
    text = (
        "cases:\n  - name: c\n    goal: g\n    principal: {id: a}\n"
        "    model: {script: [done]}\n    scorers: ['tests.eval_app:unmeasured']\n"
    )
    with refund_desk.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        report = run_eval(rt, parse_dataset(text))
    [run] = report.runs
    assert run.scores == (
        Score(
            "tests.eval_app:unmeasured",
            False,
            "returned a Score whose value is nan; a Score's value is None or a number from 0 to 1",
        ),
    )
    assert [s.mean_value for s in report.scorers()] == [None]
    saved = tmp_path / "baseline.json"
    report.save(saved)
    for written in (json.dumps(report.to_dict()), saved.read_text(encoding="utf-8")):
        json.loads(written, parse_constant=not_json)
