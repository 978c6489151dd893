"""Scorers, the judge and datasets, through the Python API (the report's arithmetic,
regressions and JUnit: test_evals_report.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrt.evals import (
    Call,
    DatasetError,
    Score,
    Trajectory,
    parse_dataset,
    run_eval,
)
from agentrt.evals.scorers import checks_of
from agentrt.examples import refund_desk
from agentrt.principal import Principal
from tests.conftest import FakeClock, Ids


def trajectory(
    *calls: Call, output: str = "Refunded $89.00.", status: str = "succeeded"
) -> Trajectory:
    return Trajectory(
        thread_id="t",
        goal="Refund order 42",
        status=status,
        output=output,
        error=None,
        usage={
            "input_tokens": 900,
            "output_tokens": 100,
            "tokens": 1000,
            "cost_usd": 0.02,
            "tool_calls": len(calls),
            "steps": 3,
        },
        calls=calls,
        latency_seconds=0.5,
    )


def call(tool: str, decision: str = "allow", rule: str | None = "reads", **args: object) -> Call:
    return Call(
        step_id="0.0",
        tool=tool,
        args=dict(args),
        decision=decision,
        rule=rule,
        result="ok",
        content="{}",
    )


LOOKUP = call("lookup_order", order_id="42")
REFUND = call("issue_refund", "require_approval", "large-refunds", order_id="42", amount=89.0)
DENIED = call("issue_refund", "deny", None, order_id="42", amount=-1.0)


def scores(expect: str, t: Trajectory, scorers: str = "") -> list[Score]:
    text = f"cases:\n  - name: c\n    goal: g\n    principal: {{id: a}}\n    expect: {expect}\n" + (
        f"    scorers: {scorers}\n" if scorers else ""
    )
    [case] = parse_dataset(text).cases
    return [check(t) for check in checks_of(case)]


@pytest.mark.parametrize(
    ("expect", "reason"),
    [
        ("{tools: {called: [lookup_order, issue_refund]}}", ""),
        ("{tools: {called: [lookup_customer]}}", "never called ['lookup_customer']"),
        ("{tools: {not_called: [issue_refund]}}", "called ['issue_refund'], which it should not"),
        (
            "{tools: {only: [lookup_order]}}",
            "called the set ['issue_refund', 'lookup_order']; expected exactly ['lookup_order']",
        ),
        (
            "{tools: {sequence: [issue_refund, lookup_order]}}",
            "did not call ['issue_refund', 'lookup_order'] in that order",
        ),
        ("{tools: {counts: {lookup_order: 2}}}", "called 'lookup_order' 1 times; expected 2"),
    ],
)
def test_tools_expectations(expect: str, reason: str) -> None:
    [score] = scores(expect, trajectory(LOOKUP, REFUND))
    expected = reason + " (calls: ['lookup_order', 'issue_refund'])" if reason else ""
    assert (score.name, score.passed, score.reason) == ("tools", not reason, expected)


def test_where_conditions_read_the_trajectory() -> None:
    t = trajectory(LOOKUP, REFUND, DENIED)
    [ok] = scores(
        '{where: ["calls.exists(c, c.tool == \\"issue_refund\\" && c.args.amount > 50.0)", '
        '"size(denials) == 1 && denials[0].rule == \\"\\"", "usage.tokens < 5000"]}',
        t,
    )
    assert ok == Score("where", True)
    [false] = scores('{where: "size(approvals) == 2"}', t)
    assert false == Score("where", False, "'size(approvals) == 2' is false")
    [broken] = scores('{where: "calls[0].args.nope == 1"}', t)
    assert not broken.passed
    assert broken.reason.startswith("'calls[0].args.nope == 1' failed to evaluate:")
    [not_bool] = scores('{where: "size(calls)"}', t)
    assert not_bool.reason == "'size(calls)' gave 3, not true or false"


def test_approvals_denials_and_limits() -> None:
    t = trajectory(LOOKUP, REFUND, DENIED)
    assert scores("{approvals: [large-refunds], denials: ['(no rule)']}", t) == [
        Score("approvals", True),
        Score("denials", True),
    ]
    assert scores("{approvals: 0, denials: [not-positive]}", t) == [
        Score("approvals", False, "1 approvals (['large-refunds']); expected 0"),
        Score("denials", False, "denials by rules ['(no rule)']; expected ['not-positive']"),
    ]
    assert scores("{max_tokens: 999, max_cost_usd: 0.02, max_steps: 2}", t) == [
        Score("limits", False, "tokens 1000 > 999; steps 3 > 2")
    ]


def test_output_checks() -> None:
    schema = "{type: object, required: [refund_id], properties: {refund_id: {type: string}}}"
    passing = trajectory(output='{"refund_id": "rf_1"}')
    assert scores(f"{{output: {{json_schema: {schema}, contains: rf_}}}}", passing) == [
        Score("output", True)
    ]
    [failing] = scores(
        f"{{output: {{json_schema: {schema}, not_contains: refund_id, regex: '^\\d+$'}}}}",
        trajectory(output='{"refund_id": 7}'),
    )
    assert failing.reason == (
        "output contains 'refund_id'; does not match /^\\d+$/; does not fit the schema: 7 is not "
        "of type 'string'; it was '{\"refund_id\": 7}'"
    )


def test_custom_scorers_answer_in_any_form() -> None:
    names = [f"tests.eval_app:{n}" for n in ("says_amount", "low_score", "full_score", "broken")]
    found = scores("{}", trajectory(), scorers=json.dumps([*names, "tests.eval_app:wrong_type"]))
    assert found == [
        Score("tests.eval_app:says_amount", True),
        Score("tests.eval_app:low_score", False, "score 0.25", 0.25),
        Score("tests.eval_app:full_score", True, "every call was looked up first", 1.0),
        Score("tests.eval_app:broken", False, "raised KeyError: 'amount'"),
        Score(
            "tests.eval_app:wrong_type",
            False,
            "returned 'yes'; a scorer returns a bool, a number from 0 to 1 or a Score",
        ),
    ]


def test_a_score_whose_passed_is_no_bool_fails_saying_so() -> None:
    """A Score's `passed` of 0.2 or "no", taken as it was, is truthy: the run passed. A
    Score a scorer returns is checked as a plain answer is, and fails naming the value."""
    names = [f"tests.eval_app:{n}" for n in ("partly", "says_no")]
    found = scores("{}", trajectory(), scorers=json.dumps(names))
    assert found == [
        Score(
            "tests.eval_app:partly",
            False,
            "returned a Score whose passed is 0.2; a Score passes with True or fails with False",
        ),
        Score(
            "tests.eval_app:says_no",
            False,
            "returned a Score whose passed is 'no'; a Score passes with True or fails with False",
        ),
    ]


def test_a_jsonl_dataset_names_the_line_of_a_bad_case() -> None:
    good = json.dumps({"name": "a", "goal": "g", "principal": {"id": "x"}})
    bad = json.dumps({"name": "b", "goal": "g", "principal": {"id": "x"}, "expect": {"tool": {}}})
    with pytest.raises(DatasetError) as caught:
        parse_dataset(f"{good}\n\n{bad}\n", source="cases.jsonl", jsonl=True)
    assert str(caught.value).startswith(
        "cases.jsonl:3, case 'b', field expect.tool: unknown field; known fields: status,"
    )
    with pytest.raises(DatasetError, match=r"^cases.jsonl:2: not a JSON object"):
        parse_dataset(f"{good}\n{{nope\n", source="cases.jsonl", jsonl=True)


def test_a_key_given_twice_in_a_dataset_is_refused_at_its_line() -> None:
    # YAML and JSON keep the last silently: the case would check a limit it was not given.
    text = (
        "cases:\n"
        "  - name: a\n"
        "    goal: g\n"
        "    principal: {id: x}\n"
        "    expect: {status: succeeded, max_steps: 3, max_steps: 30}\n"
    )
    with pytest.raises(DatasetError) as caught:
        parse_dataset(text, source="cases.yaml")
    assert str(caught.value) == (
        "cases.yaml:5: cases.0.expect: duplicate key 'max_steps' (first at line 5, column 33); "
        "YAML would keep only the last one, so say it once"
    )
    good = json.dumps({"name": "a", "goal": "g", "principal": {"id": "x"}})
    twice = '{"name": "b", "goal": "g", "principal": {"id": "x", "id": "y"}}'
    with pytest.raises(DatasetError) as caught:
        parse_dataset(f"{good}\n{twice}\n", source="cases.jsonl", jsonl=True)
    assert str(caught.value) == (
        "cases.jsonl:2: duplicate key 'id'; JSON would keep only the last one, so say it once"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cases: []", "<string>: the dataset has no cases; add some under `cases:`"),
        ("cases:\n  - {name: a, goal: g}", "case 'a', field principal: no principal"),
        (
            "cases:\n  - {name: a, goal: g, principal: {id: x}}\n  - {name: a, goal: h, "
            "principal: {id: x}}",
            "<string>:3, case 'a', field name: two cases are named 'a'",
        ),
        (
            "cases:\n  - {name: a, goal: g, principal: {id: x}, model: {}}",
            "field model: give exactly one of script (a list of answers) or recorded",
        ),
        (
            "cases:\n  - {name: a, goal: g, principal: {id: x}, expect: {output: {regex: '('}}}",
            "field expect.output.regex: not a valid regular expression '('",
        ),
        ("cases: [1", "<string>:1: not valid YAML"),
    ],
)
def test_dataset_problems_are_named(text: str, message: str) -> None:
    with pytest.raises(DatasetError) as caught:
        parse_dataset(text)
    assert message in str(caught.value)


def nots(depth: int) -> dict[str, object]:
    """A JSON Schema of nots in nots, ``depth`` deep."""
    schema: dict[str, object] = {}
    for _ in range(depth):
        schema = {"not": schema}
    return schema


@pytest.mark.parametrize(
    ("text", "jsonl", "message"),
    [
        ("cases: " + "[" * 2000 + "]" * 2000, False, "d.yaml: the dataset is nested too deeply"),
        (
            '{"name": "a"}\n' + "[" * 100_000 + "]" * 100_000,
            True,
            "d.yaml:2: the case is nested too deeply",
        ),
        (
            '{"name": "a", "goal": "g", "principal": {"id": "x"}}\n'
            + json.dumps(
                {"name": "deep", "goal": "g", "expect": {"output": {"json_schema": nots(400)}}}
            ),
            True,
            "d.yaml:2, case 'deep': the case is nested too deeply",
        ),
    ],
)
def test_a_dataset_nested_past_reading_is_a_dataset_error(
    text: str, jsonl: bool, message: str
) -> None:
    """Lists thousands deep (a runaway bracket) raised RecursionError: a crash, not the
    error naming the file, line and case that bad input gets."""
    with pytest.raises(DatasetError) as caught:
        parse_dataset(text, source="d.yaml", jsonl=jsonl)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ("{max_cost_usd: .nan}", "field expect.max_cost_usd: nan checks nothing"),
        ("{max_cost_usd: .inf}", "field expect.max_cost_usd: inf checks nothing"),
        ("{max_cost_usd: 1e400}", "field expect.max_cost_usd: inf checks nothing"),
        ("{max_cost_usd: -.inf}", "field expect.max_cost_usd: -inf is below 0, so every run"),
        ("{max_cost_usd: -1}", "field expect.max_cost_usd: -1.0 is below 0, so every run"),
        ("{max_steps: -1}", "field expect.max_steps: -1 is below 0, so every run would fail"),
        ("{max_tokens: .nan}", "field expect.max_tokens: Input should be a finite number"),
        ("{approvals: -2}", "field expect.approvals: -2 is below 0"),
        ("{denials: -1}", "field expect.denials: -1 is below 0"),
        ("{max_tool_calls: true}", "field expect.max_tool_calls: True is no number"),
        ("{max_cost_usd: false}", "field expect.max_cost_usd: False is no number"),
        ("{tools: {counts: {a: 1, b: -1}}}", "field expect.tools.counts: no tool is called "),
    ],
)
def test_an_expectation_that_cannot_fail_or_cannot_pass_is_refused(
    expect: str, message: str
) -> None:
    """`used > nan` and `used > inf` are never true: such a limit passed any run, a failed
    one too; a count or limit below 0 fails every run. Each is named at load, with its
    case and field."""
    text = f"cases:\n  - {{name: c, goal: g, principal: {{id: x}}, expect: {expect}}}"
    with pytest.raises(DatasetError) as caught:
        parse_dataset(text, source="ds.yaml")
    assert str(caught.value).startswith("ds.yaml:2, case 'c', ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "expect", ["{max_cost_usd: 0}", "{max_cost_usd: 0.5}", "{max_steps: 0}", "{approvals: 0}"]
)
def test_limits_of_zero_and_above_are_expectations(expect: str) -> None:
    text = f"cases:\n  - {{name: c, goal: g, principal: {{id: x}}, expect: {expect}}}"
    [case] = parse_dataset(text).cases
    assert case.spec.expect.model_dump(exclude_unset=True)


def test_a_check_that_raises_fails_alone_naming_what_it_raised() -> None:
    """JSON nested past the interpreter's depth raises RecursionError in json.loads, which
    is not a ValueError: it fails the output scorer, and the others still score."""
    nested = "[" * 100_000
    found = scores(
        "{status: succeeded, output: {json_schema: {type: array}}}", trajectory(output=nested)
    )
    assert [(s.name, s.passed) for s in found] == [("status", True), ("output", False)]
    assert found[1].reason.startswith("the check raised RecursionError: maximum recursion depth")


def test_a_scorer_that_raises_in_a_run_fails_that_scorer_not_the_eval(
    db: Path, clock: FakeClock
) -> None:
    """A schema that refers to itself ({$ref: '#'}) resolves, yet validating against it
    recurses without end: that run's output scorer fails, every other run is reported."""
    text = """
defaults:
  principal: {id: alice, tenant: acme, scopes: [orders:read, orders:write, payments:write]}
cases:
  - name: self-referring-schema
    goal: Answer in JSON.
    model: {script: ['{"refund_id": "rf_1"}']}
    expect: {status: succeeded, output: {json_schema: {$ref: '#'}}}
  - name: plain
    goal: Answer in JSON.
    model: {script: ['{"refund_id": "rf_1"}']}
    expect: {status: succeeded, output: {json_schema: {type: object}}}
"""
    with refund_desk.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        report = run_eval(rt, parse_dataset(text))
    assert [(r.case, r.passed, r.error) for r in report.runs] == [
        ("self-referring-schema", False, None),
        ("plain", True, None),
    ]
    [failed] = report.runs[0].failures
    assert failed.name == "output"
    assert failed.reason.startswith("the check raised RecursionError:")


def test_json_schemas_resolve_refs_in_their_own_dialect() -> None:
    """A draft-07 schema's references (#/definitions/...) resolve at load and validate at
    scoring under draft 7, as jsonschema reads its $schema."""
    schema = (
        "{$schema: 'http://json-schema.org/draft-07/schema#', definitions: {id: {type: "
        "string}}, properties: {refund_id: {$ref: '#/definitions/id'}}}"
    )
    assert scores(
        f"{{output: {{json_schema: {schema}}}}}", trajectory(output='{"refund_id": "a"}')
    ) == [Score("output", True)]
    [unfit] = scores(
        f"{{output: {{json_schema: {schema}}}}}", trajectory(output='{"refund_id": 7}')
    )
    assert unfit.reason == (
        "output does not fit the schema: 7 is not of type 'string'; it was '{\"refund_id\": 7}'"
    )


@pytest.mark.parametrize(
    ("expect", "passed"),
    [
        ("{tools: {only: []}}", False),  # only: [] says no tool was called
        ("{approvals: []}", False),  # no approval asked
        ("{denials: []}", True),
        ("{tools: {counts: {lookup_order: 0}}}", False),
    ],
)
def test_an_empty_list_that_still_checks_something_is_kept(expect: str, passed: bool) -> None:
    [score] = scores(expect, trajectory(LOOKUP, REFUND))
    assert score.passed is passed


def test_a_case_with_only_a_scorer_or_a_rubric_expects_something() -> None:
    text = (
        "cases:\n"
        "  - {name: a, goal: g, principal: {id: x}, scorers: ['tests.eval_app:low_score']}\n"
        "  - {name: b, goal: g, principal: {id: x}, judge: The answer is polite.}\n"
    )
    assert [c.name for c in parse_dataset(text).cases] == ["a", "b"]


def test_the_decider_is_built_at_load() -> None:
    text = (
        "defaults: {decide: {decision: approve, by: {id: bob, roles: [refund-approver]}}}\n"
        "cases:\n  - {name: a, goal: g, principal: {id: x}, expect: {status: succeeded}}\n"
    )
    [case] = parse_dataset(text).cases
    assert case.decider == Principal("bob", roles=["refund-approver"])
    with pytest.raises(DatasetError) as caught:
        parse_dataset(text.replace("id: bob, roles: [refund-approver]", "id: ' '"))
    assert str(caught.value) == (
        "<string>:3, case 'a', field decide.by: a Principal needs a non-empty id, got ' '"
    )


def test_a_run_that_cannot_be_cancelled_fails_saying_it_is_live(
    db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run left at its gate that the eval could not cancel keeps a live request: it
    fails, whatever it scored, and says how to cancel it."""
    text = """
defaults:
  principal: {id: alice, tenant: acme, scopes: [orders:read, orders:write, payments:write]}
cases:
  - name: waits
    goal: The customer on order 42 says the blender arrived broken. Refund the order.
    expect: {status: awaiting_approval}
"""

    def refused(self: object, thread_id: str, *, reason: str) -> None:
        raise OSError("the database is read-only")

    monkeypatch.setattr("agentrt.runtime.AgentRuntime.cancel", refused)
    with refund_desk.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        [run] = run_eval(rt, parse_dataset(text)).runs
        assert rt.get(run.thread_id).status == "awaiting_approval"
    assert (run.status, run.cancelled, run.passed) == ("awaiting_approval", False, False)
    assert run.scores == (Score("status", True),)
    assert run.error == (
        "the run is left waiting, not cancelled (OSError: the database is read-only); "
        f"cancel it: agentrt cancel {run.thread_id} --reason 'an eval run'"
    )
