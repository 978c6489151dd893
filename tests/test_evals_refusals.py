"""`agentrt eval`: bad input refused (exit 2) before any run: the dataset, the flags, the
judge model, what the app lacks; and output files that cannot be written, or that would
be written over an input (the database, the dataset) or a file that is no report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.cli import app
from agentrt.examples import refund_desk
from tests.test_evals_cli import DATASET, DESK, eval_threads

runner = CliRunner()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "refunds.yaml"
    path.write_text(DATASET, encoding="utf-8")
    return path


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
    "json schema $ref to nowhere": (
        "output: {contains: Refunded, regex: '\\$89\\.00'}",
        "output: {json_schema: {$ref: '#/$defs/refund'}}",
        "refunds.yaml:28, case 'approved-refund-succeeds', field expect.output.json_schema: "
        "$ref '#/$defs/refund' resolves to nothing (PointerToNowhere); point it at a part of "
        "this schema, e.g. '#/$defs/NAME' with NAME under $defs (other documents are not "
        "fetched)",
    ),
    "json schema $ref to another document": (
        "output: {contains: Refunded, regex: '\\$89\\.00'}",
        "output: {json_schema: {$ref: 'https://example.com/refund.json'}}",
        "refunds.yaml:28, case 'approved-refund-succeeds', field expect.output.json_schema: "
        "$ref 'https://example.com/refund.json' resolves to nothing (Unresolvable)",
    ),
    "json schema of an unknown dialect": (
        "output: {contains: Refunded, regex: '\\$89\\.00'}",
        "output: {json_schema: {$schema: 'https://example.com/my-draft'}}",
        "field expect.output.json_schema: $schema 'https://example.com/my-draft' is not a JSON "
        "Schema dialect jsonschema knows; leave it out (draft 2020-12) or write "
        "'https://json-schema.org/draft/2020-12/schema'",
    ),
    "empty tools": (
        "      tools: {only: [issue_refund]}\n",
        "      tools: {}\n",
        "refunds.yaml:40, case 'small-refund', field expect.tools: {} checks nothing; name "
        "tools under called, not_called, only, sequence or counts, or leave tools out",
    ),
    "tools naming none": (
        "      tools: {only: [issue_refund]}\n",
        "      tools: {called: [], sequence: []}\n",
        "refunds.yaml:40, case 'small-refund', field expect.tools: {'called': [], "
        "'sequence': []} checks nothing",
    ),
    "empty output": (
        "      output: {contains: Refunded}\n",
        "      output: {contains: []}\n",
        "refunds.yaml:51, case 'negative-refund-is-refused', field expect.output: "
        "{'contains': []} checks nothing; give contains, not_contains, regex or json_schema, "
        "or leave output out",
    ),
    "empty text": (
        "      output: {contains: Refunded}\n",
        "      output: {contains: ''}\n",
        "refunds.yaml:51, case 'negative-refund-is-refused', field expect.output.contains: "
        "'' is in every output; give the text to look for",
    ),
    "empty regex": (
        "      output: {contains: Refunded}\n",
        "      output: {regex: ''}\n",
        "field expect.output.regex: the regex '' matches every output; give a pattern",
    ),
    "no status": (
        "      status: awaiting_approval\n",
        "      status: []\n",
        "refunds.yaml:12, case 'full-refund-waits-for-approval', field expect.status: no "
        "run's status is in an empty list; give one status or several",
    ),
    "no expectation": (
        "    expect:\n      status: succeeded\n      approvals: 0\n      tools: {only: "
        "[issue_refund]}\n",
        "",
        "refunds.yaml:31, case 'small-refund', field expect: the case expects nothing, so "
        "every run would pass it, a failed one too; give it an expectation (e.g. `expect: "
        "{status: succeeded}`), a scorer or a judge rubric",
    ),
    "decider": (
        "by: {id: bob,",
        "by: {id: '',",
        "refunds.yaml:25, case 'approved-refund-succeeds', field decide.by: a Principal needs "
        "a non-empty id, got ''",
    ),
    "rejection without a reason": (
        "decide: {decision: approve,",
        "decide: {decision: reject, reason: ' ',",
        "refunds.yaml:25, case 'approved-refund-succeeds', field decide.reason: a rejection "
        "needs a reason in words, got ' '; write one, or leave reason out",
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


ON_THE_APP = {
    "a tool the app lacks": (
        "      tools: {only: [issue_refund]}\n",
        "      tools: {not_called: [issue_refnd]}\n",
        "refunds.yaml, case 'small-refund', field expect.tools.not_called[0]: tool "
        "'issue_refnd' is not one of the app's tools, so this check could never tell a run "
        "that used it; did you mean 'issue_refund'? the app's tools: ['add_order_note', "
        "'issue_refund', 'lookup_customer', 'lookup_order']",
    ),
    "a count of a tool the app lacks": (
        "counts: {issue_refund: 1}",
        "counts: {Issue_Refund: 0}",
        "case 'full-refund-waits-for-approval', field expect.tools.counts.Issue_Refund: tool "
        "'Issue_Refund' is not one of the app's tools",
    ),
    "a cost ceiling on a model without a price": (
        "      max_tool_calls: 5\n",
        "      max_cost_usd: 0.0001\n",
        "case 'full-refund-waits-for-approval', field expect.max_cost_usd: max_cost_usd "
        "0.0001 could never fail: model 'refund-desk-script' has no known price, so every "
        "run costs $0; give the app's AgentRuntime prices={'refund-desk-script': (input, "
        "output)} in USD per million tokens, or expect max_tokens instead",
    ),
    "a cost ceiling on a script without a price": (
        "      approvals: 0\n",
        "      approvals: 0\n      max_cost_usd: 1\n",
        "case 'small-refund', field expect.max_cost_usd: max_cost_usd 1 could never fail: "
        "model 'refund-desk-script' has no known price",
    ),
}


@pytest.mark.parametrize("kind", sorted(ON_THE_APP))
def test_what_the_app_lacks_is_refused_before_any_run(dataset: Path, db: Path, kind: str) -> None:
    """A check that could never fail on this app (a typo's tool, a cost no price counts)
    passes every run: refused as a typo is, exit 2, before any case runs."""
    old, new, message = ON_THE_APP[kind]
    assert old in DATASET
    dataset.write_text(DATASET.replace(old, new, 1), encoding="utf-8")
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert eval_threads(db) == []


@pytest.mark.parametrize("flag", ["--junit", "--save-baseline"])
def test_an_output_path_that_cannot_be_written_is_refused_before_any_run(
    dataset: Path, db: Path, tmp_path: Path, flag: str
) -> None:
    missing = tmp_path / "no-such-dir" / "out"
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db), flag, str(missing)])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: {flag} {str(missing)!r}: there is no directory "
        f"{str(missing.parent)!r}; create it first, or give a path in one that exists\n"
    )
    assert not db.exists()
    folder = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db), flag, str(tmp_path)])
    assert folder.exit_code == 2, folder.output
    assert f"error: {flag} {str(tmp_path)!r} is a directory; give a file path" in folder.stderr
    assert not db.exists()


def test_junit_and_baseline_in_one_file_are_refused(
    dataset: Path, db: Path, tmp_path: Path
) -> None:
    out = str(tmp_path / "out")
    result = runner.invoke(
        app, ["eval", str(dataset), *DESK, "--db", str(db), "--junit", out, "--save-baseline", out]
    )
    assert result.exit_code == 2, result.output
    assert f"--junit and --save-baseline both name {out!r}; give each a file of its own" in (
        result.stderr
    )


def test_a_dataset_nested_past_reading_exits_2_before_any_run(dataset: Path, db: Path) -> None:
    dataset.write_text("cases: " + "[" * 2000 + "]" * 2000, encoding="utf-8")
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db)])
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr == (
        f"error: {dataset}: the dataset is nested too deeply to read (lists or mappings "
        "inside each other, hundreds of levels down); no case needs that: look for a "
        "runaway bracket\n"
    )
    assert not db.exists()


JUDGED = DATASET + "    judge: The answer says what was refused.\n"


@pytest.mark.parametrize(
    ("judge", "flags", "message"),
    [
        (
            "judge: {model: 'nosuchprovider:m'}\n",
            [],
            "error: {dataset}: judge.model: cannot load model 'nosuchprovider:m': Unable to "
            "infer model provider for model='nosuchprovider:m'. Please specify "
            "'model_provider' directly. Supported providers: anthropic,",
        ),
        (
            "",
            ["--judge", "json:loads"],
            "error: --judge 'json:loads': calling it failed: TypeError: loads() missing 1 "
            "required positional argument: 's'",
        ),
    ],
)
def test_a_judge_model_that_cannot_be_made_exits_2_before_any_run(
    dataset: Path, db: Path, judge: str, flags: list[str], message: str
) -> None:
    """A judge model of a provider LangChain does not know, a --judge that is no chat
    model's factory: bad input, one line, exit 2, before the app's database is made (it
    was made, then exit 1, once with a traceback)."""
    dataset.write_text(judge + JUDGED, encoding="utf-8")
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db), *flags])
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.startswith(message.format(dataset=dataset)), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not db.exists()


def made_database(db: Path) -> str:
    """An app's database holding one run, whose thread id it returns."""
    with refund_desk.build_runtime(db) as rt:
        return rt.start("Refund $20 on order 43.", principal=refund_desk.OPERATOR).thread_id


@pytest.mark.parametrize(
    ("flag", "target", "what"),
    [
        ("--save-baseline", "db", "is the app's database"),
        ("--junit", "db", "is the app's database"),
        ("--save-baseline", "wal", "is the app's database"),
        ("--junit", "dataset", "is the dataset"),
        ("--junit", "baseline", "is --baseline"),
        ("--save-baseline", "new db", "is the app's database"),
    ],
)
def test_an_output_path_that_is_an_input_is_refused_before_any_run(
    dataset: Path, db: Path, tmp_path: Path, *, flag: str, target: str, what: str
) -> None:
    """`--save-baseline evals.db` beside `--db evals.db` (a slip of the shell's history)
    ran every case, then wrote JSON over the SQLite database: every run, approval and
    ledger entry lost, and exit 0. An output path that is an input (the database, even
    one not made yet, or the journal beside it; the dataset; the --baseline read) is
    refused, exit 2, before anything runs."""
    kept = made_database(db) if target != "new db" else None
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"version": 1, "dataset": "d", "eval_id": "x", "runs": []}))
    paths = {
        "db": db,
        "new db": db,
        "wal": Path(f"{db}-wal"),
        "dataset": dataset,
        "baseline": baseline,
    }
    out = paths[target]
    before = {p: p.read_bytes() for p in (db, dataset, baseline, out) if p.exists()}
    args = [flag, str(out), "--baseline", str(baseline)]
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db), *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {flag} {str(out)!r} {what}"), result.stderr
    assert result.stderr.endswith(
        "which the report would be written over; give the report a file of its own\n"
    )
    assert {p: p.read_bytes() for p in before} == before
    assert not Path(f"{db}-wal").exists() or target == "wal"
    if kept is None:
        assert not db.exists()
    else:
        with refund_desk.build_runtime(db) as rt:
            assert [r.thread_id for r in rt.runs()] == [kept]  # and no eval's run


def test_the_app_factorys_own_database_is_refused_as_an_output_before_any_run(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no --db the app factory opens its default (agentrt.db here): known only once
    the runtime is made, and checked then, still before any case runs."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTRT_DB", raising=False)
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--save-baseline", "agentrt.db"])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "error: --save-baseline 'agentrt.db' is the app's database ('agentrt.db'), which the "
        "report would be written over; give the report a file of its own\n"
    )
    assert (tmp_path / "agentrt.db").read_bytes()[:16] == b"SQLite format 3\x00"
    assert eval_threads(tmp_path / "agentrt.db") == []


@pytest.mark.parametrize(
    ("flag", "content", "what"),
    [
        ("--junit", b"name,amount\nbob,10\n", "a file that is not a JUnit XML report"),
        ("--junit", b'{"version": 1}', "a file that is not a JUnit XML report"),
        ("--save-baseline", b"<testsuites/>", "a file that is not an eval report"),
        ("--save-baseline", b'{"version": 1, "runs": []}', "a file that is not an eval report"),
        ("--save-baseline", b"SQLite format 3\x00", "a SQLite database that is not an eval"),
    ],
)
def test_an_output_path_holding_something_else_is_left_as_it_is(
    dataset: Path, db: Path, tmp_path: Path, *, flag: str, content: bytes, what: str
) -> None:
    out = tmp_path / "out"
    out.write_bytes(content)
    result = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db), flag, str(out)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {flag} {str(out)!r} is {what}"), result.stderr
    assert result.stderr.endswith(
        "agentrt eval writes over its own earlier reports only: give another path, or move "
        "that file away first\n"
    )
    assert out.read_bytes() == content
    assert not db.exists()


def test_earlier_reports_and_empty_files_are_written_over(
    dataset: Path, db: Path, tmp_path: Path
) -> None:
    junit, baseline = tmp_path / "eval.xml", tmp_path / "baseline.json"
    outputs = ["--junit", str(junit), "--save-baseline", str(baseline)]
    for _ in range(2):  # empty files first (as `mktemp` makes them), then the reports
        junit.touch()
        baseline.touch()
        result = runner.invoke(
            app, ["eval", str(dataset), *DESK, "--db", str(db), "--threshold", "0", *outputs]
        )
        assert result.exit_code == 0, result.output
        assert junit.read_text(encoding="utf-8").startswith("<?xml version='1.0' encoding")
        assert json.loads(baseline.read_text(encoding="utf-8"))["aggregate"]["runs"] == 4
    printed = tmp_path / "printed.json"
    as_json = runner.invoke(app, ["eval", str(dataset), *DESK, "--db", str(db), "--json"])
    printed.write_text(as_json.stdout, encoding="utf-8")  # `--json > printed.json`
    again = runner.invoke(
        app, ["eval", str(dataset), *DESK, "--db", str(db), "--save-baseline", str(printed)]
    )
    assert again.exit_code == 1, again.output  # under the threshold; the file is written
    assert "threshold" not in json.loads(printed.read_text(encoding="utf-8"))
