"""`agentrt policy check` and `agentrt policy explain`, and policy history in `agentrt show`."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrt import Decision, Policy
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR, POLICY_FILE
from tests.conftest import FakeClock, Ids
from tests.test_cli import DEMO, cli

FILE = str(POLICY_FILE)
VERSION = Policy.from_file(POLICY_FILE).version
ALICE = ["--principal", "alice", "--role", "operator", "--tenant", "acme"]


@pytest.fixture(autouse=True)
def _no_ambient_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTRT_APP", raising=False)


def test_check_lists_the_rules() -> None:
    code, out = cli("policy", "check", FILE)
    assert code == 0, out
    assert [" ".join(line.split()) for line in out.splitlines()] == [
        f"{FILE}: policy 'refund-desk' version {VERSION}, default deny, 5 rules",
        "ID DECISION APPROVAL MATCH WHEN REASON",
        "reads allow effects=read - Looking things up has no side effect.",
        "notes allow tools=add_order_note - Notes on an order are internal and easy to amend.",
        "not-positive deny tools=issue_refund !(args.amount > 0.0) "
        "A refund is an amount above zero.",
        "small-refunds allow tools=issue_refund args.amount <= 50.0 "
        "Refunds up to $50 need no approval.",
        "large-refunds require_approval role refund-approver, four eyes, expires 3d "
        "tools=issue_refund args.amount > 50.0 Refunds over $50 need a refund approver.",
        "tools not checked: give the app (--app module:attribute) to check the tool names rules "
        "use against the runtime's tools",
    ]


def test_check_with_the_app_checks_tool_names(db: Path, tmp_path: Path) -> None:
    code, out = cli("policy", "check", FILE, *DEMO, "--db", str(db))
    assert code == 0, out
    assert out.splitlines()[-1] == "every tool a rule names exists in the app (4 tools)"

    typo = tmp_path / "typo.yaml"
    typo.write_text(
        "name: t\nrules:\n  - id: refunds\n    match: {tools: [issue_refnd]}\n"
        "    decision: allow\n",
        encoding="utf-8",
    )
    code, out = cli("policy", "check", str(typo), *DEMO, "--db", str(db))
    assert code == 1
    assert out.strip() == (
        f"error: {typo}:4:21: rule 'refunds' names tool 'issue_refnd', which this runtime does "
        "not have; known tools: ['add_order_note', 'issue_refund', 'lookup_customer', "
        "'lookup_order']"
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("rules:\n  - id: a\n    decision: allow\n    match: {tools: [x}\n", ":4:22: rule 'a', "),
        ("rules:\n  - id: a\n    decision: perhaps\n", ":3:15: rule 'a', rules.0.decision:"),
        ("rules:\n  - id: a\n    decision: allow\n    wen: x\n", ":4:5: rule 'a', rules.0.wen:"),
        (
            "rules:\n  - id: a\n    decision: deny\n    when: args.x >\n",
            ":4:19: rule 'a': `when` is not a valid CEL expression",
        ),
        (
            "rules:\n  - id: a\n    decision: deny\n  - id: a\n    decision: allow\n",
            ":4:9: duplicate rule id 'a'",
        ),
        ("", ": the policy file holds nothing, and as a policy it would deny every action"),
        ("# rules to come\n\n", ": the policy file holds nothing"),
    ],
)
def test_check_reports_a_broken_file_with_its_place(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    code, out = cli("policy", "check", str(path))
    assert code == 1
    assert out.startswith(f"error: {path}{error}"), out
    assert len(out.strip().splitlines()) == 1


def test_check_a_missing_file() -> None:
    code, out = cli("policy", "check", "nowhere.yaml")
    assert (code, out.strip()) == (
        1,
        "error: cannot read policy file 'nowhere.yaml': No such file or directory; check the path",
    )


def test_explain_with_the_app(db: Path) -> None:
    args = '{"order_id": "42", "amount": "89"}'
    code, out = cli(
        "policy", "explain", FILE, "--tool", "issue_refund", "--args", args,
        *ALICE, "--scope", "payments:write", *DEMO, "--db", str(db),
    )  # fmt: skip
    assert code == 0, out
    assert out.splitlines() == [
        f"policy   refund-desk@{VERSION} ({FILE}), default deny",
        'action   issue_refund({"amount": 89.0, "order_id": "42"})',  # validated, as a run does
        "by       alice (roles ['operator'], tenant acme, scopes ['payments:write'])",
        "tool     irreversible, requires scopes ['payments:write']",
        "rules:",
        "       RULE           SAYS              WHY",
        "-      reads          allow             effect 'irreversible' is not in ['read']",
        "-      notes          allow             tool 'issue_refund' is not in ['add_order_note']",
        "-      not-positive   deny              `when` is false: !(args.amount > 0.0)",
        "-      small-refunds  allow             `when` is false: args.amount <= 50.0",
        "match  large-refunds  require_approval  `when` is true: args.amount > 50.0",
        "decision require_approval",
        "  by     large-refunds: Refunds over $50 need a refund approver.",
        "  matched large-refunds",
        "  approver role refund-approver, four eyes yes, expires 3d",
    ]


def test_commands_that_read_only_the_app_leave_no_database_behind(tmp_path: Path) -> None:
    args = '{"order_id": "42", "amount": "89"}'
    code, out = cli(
        "policy", "explain", FILE, "--tool", "issue_refund", "--args", args, *ALICE, *DEMO
    )
    assert code == 0, out
    assert "decision deny" in out.splitlines()  # alice holds no payments:write
    assert cli("policy", "check", FILE, *DEMO)[0] == 0
    assert cli("tools", *DEMO)[0] == 0
    # The demo factory's default is agentrt.db in the working directory (the test's own).
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_explain_without_scopes_consults_no_rule(db: Path) -> None:
    code, out = cli(
        "policy", "explain", FILE, "--tool", "issue_refund", "--args",
        '{"order_id": "42", "amount": 5}', *ALICE, *DEMO, "--db", str(db),
    )  # fmt: skip
    assert code == 0, out
    assert "rules:   not consulted (the action is refused before any rule)" in out
    assert "decision deny\n  by     (no rule): principal 'alice' lacks scopes" in out


def test_explain_invalid_arguments_as_a_run_would(db: Path) -> None:
    code, out = cli(
        "policy", "explain", FILE, "--tool", "issue_refund", "--args", '{"order_id": "42"}',
        *ALICE, *DEMO, "--db", str(db),
    )  # fmt: skip
    assert code == 0, out
    assert out.startswith("decision invalid_args: ")
    assert "amount" in out


def test_explain_without_an_app_describes_the_tool() -> None:
    code, out = cli(
        "policy", "explain", FILE, "--tool", "issue_refund", "--args",
        '{"order_id": "42", "amount": 20}', *ALICE, "--scope", "payments:write",
        "--effect", "irreversible", "--tool-scope", "payments:write",
    )  # fmt: skip
    assert code == 0, out
    assert "match small-refunds allow `when` is true: args.amount <= 50.0" in " ".join(out.split())
    assert "decision allow\n  by     small-refunds: Refunds up to $50 need no approval." in out


def test_explain_sees_usage_and_budget(tmp_path: Path) -> None:
    path = tmp_path / "spend.yaml"
    path.write_text(
        "default: allow\nrules:\n  - id: near-limit\n    decision: require_approval\n"
        "    when: has(budget.max_cost_usd) && usage.cost_usd > 0.8 * budget.max_cost_usd\n",
        encoding="utf-8",
    )
    base = ["policy", "explain", str(path), "--tool", "t", "--effect", "write"]
    code, out = cli(*base, "--usage", '{"cost_usd": 0.9}', "--budget", '{"max_cost_usd": 1}')
    assert (code, "decision require_approval" in out) == (0, True), out
    code, out = cli(*base, "--usage", '{"cost_usd": 0.1}', "--budget", '{"max_cost_usd": 1}')
    assert (code, "decision allow" in out) == (0, True), out


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--args", "{nope"], 2, "error: --args '{nope' is not JSON:"),
        (["--args", "[1]"], 2, "error: --args must be a JSON object, got '[1]'"),
        (["--usage", "x"], 2, "error: --usage 'x' is not JSON:"),
        (
            ["--usage", "[1]"],
            2,
            "error: --usage must be a JSON object, got '[1]'; e.g. --usage "
            """'{"cost_usd": 1.5, "tool_calls": 3}'""",
        ),
        (["--usage", "null"], 2, "error: --usage must be a JSON object, got 'null'"),
        (
            ["--budget", "5"],
            2,
            "error: --budget must be a JSON object, got '5'; e.g. "
            """--budget '{"max_cost_usd": 5}'""",
        ),
        (["--budget", '"x"'], 2, """error: --budget must be a JSON object, got '"x"'"""),
        (
            ["--budget", '{"max_stepz": 1, "max_cost_usd": 5}'],
            2,
            "error: --budget has unknown keys ['max_stepz']; its keys are max_tokens, "
            "max_cost_usd, max_tool_calls, max_steps, max_active_seconds, deadline, "
            "on_exceed, approver_role",
        ),
        (
            ["--budget", '{"max_steps": "x"}'],
            2,
            """error: --budget '{"max_steps": "x"}': Budget.max_steps must be a number or """
            "None, got 'x'",
        ),
        (["--budget", '{"max_cost_usd": NaN}'], 2, "Budget.max_cost_usd must be a finite"),
        (["--usage", '{"cost_usdd": 1}'], 2, "error: --usage has unknown keys ['cost_usdd']"),
        (["--usage", '{"steps": "3"}'], 2, "error: --usage 'steps' must be a number, got '3'"),
        ([], 2, "error: no app to take tool 'issue_refund' from: give --app module:attribute"),
        (["--effect", "sideways"], 1, "effect 'sideways' is not one of"),
        (["--principal", " "], 1, "error: a Principal needs a non-empty id"),
        ([*DEMO, "--effect", "read"], 2, "error: --effect and --tool-scope describe a tool"),
    ],
)
def test_explain_refuses_bad_options(extra: list[str], code: int, message: str) -> None:
    got, out = cli("policy", "explain", FILE, "--tool", "issue_refund", *extra)
    assert (got, message in out) == (code, True), out


def test_show_prints_each_decision_with_its_rules_and_version(
    db: Path, clock: FakeClock, tmp_path: Path
) -> None:
    with refund_desk.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        edited = tmp_path / "edited.yaml"
        edited.write_text(
            POLICY_FILE.read_text(encoding="utf-8").replace("$50 need a", "$50 needs a"),
            encoding="utf-8",
        )
        rt.policy = Policy.from_file(edited)
        new_version = rt.policy.version
        rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER))
    code, out = cli("show", run.thread_id, *DEMO, "--db", str(db))
    assert code == 0, out
    events = out.split("events:\n", 1)[1].splitlines()
    assert events[9] == (
        "  policy 2.0: require_approval (large-refunds: Refunds over $50 need a refund "
        f"approver.) matched: large-refunds; policy refund-desk@{VERSION}"
    )
    assert events[11] == f"  policy changed: refund-desk@{VERSION} -> refund-desk@{new_version}"
    assert events[12] == (
        "  policy 2.0: require_approval (large-refunds: Refunds over $50 needs a refund "
        f"approver.) matched: large-refunds; policy refund-desk@{new_version}"
    )


def test_repeatable_options_name_what_they_take() -> None:
    for command in (["policy", "explain"], ["tools"], ["keys", "create"]):
        code, out = cli(*command, "--help")
        assert code == 0, out
        assert "--role ROLE" in out, command
        assert "list[str]" not in out, command
