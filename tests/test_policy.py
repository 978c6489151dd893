"""Tests for agentrt.policies: loading policy files, their errors, and the engine's decisions."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import agentrt.examples
from agentrt.errors import ConfigError
from agentrt.policies import Policy, PolicyDecision, PolicyFileError
from agentrt.policies.model import MAX_DURATION, Match, Rule, parse_duration
from agentrt.principal import Principal
from agentrt.tools import ToolSpec, tool

REFUNDS_YAML = Path(agentrt.examples.__file__).parent / "refunds.yaml"


@tool
def lookup_order(order_id: str) -> dict[str, Any]:
    """Look an order up."""
    return {"order_id": order_id}


@tool(effect="write", scopes=["orders:write"])
def add_order_note(order_id: str, text: str) -> str:
    """Add an internal note to an order."""
    return "ok"


@tool(effect="irreversible", scopes=["refunds:write"])
def issue_refund(order_id: str, amount: float) -> str:
    """Refund money to the customer."""
    return "refunded"


TOOLS: dict[str, ToolSpec] = {t.name: t for t in (lookup_order, add_order_note, issue_refund)}

AGENT = Principal(
    "agent-1", roles=["support"], tenant="acme", scopes=["orders:write", "refunds:write"]
)
NO_SCOPES = Principal("visitor", tenant="acme")


def decide(policy: Policy, tool_name: str, args: dict[str, Any], principal: Principal = AGENT):
    return policy.evaluate(TOOLS.get(tool_name), tool_name, args, principal)


def write_policy(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# loading -----------------------------------------------------------------------------------


def test_refunds_example_loads_and_decides() -> None:
    policy = Policy.from_file(REFUNDS_YAML)

    assert (policy.name, policy.default, [cr.rule.id for cr in policy.rules]) == (
        "refund-desk",
        "deny",
        ["reads", "notes", "not-positive", "small-refunds", "large-refunds"],
    )
    policy.check_tools(TOOLS)  # every tool the file names exists
    common = {"policy": "refund-desk", "policy_version": policy.version}
    assert decide(policy, "issue_refund", {"order_id": "7", "amount": 20.0}) == PolicyDecision(
        outcome="allow",
        rule_id="small-refunds",
        matched=("small-refunds",),
        reason="Refunds up to $50 need no approval.",
        **common,
    )
    assert decide(policy, "issue_refund", {"order_id": "7", "amount": 80.0}) == PolicyDecision(
        outcome="require_approval",
        rule_id="large-refunds",
        matched=("large-refunds",),
        reason="Refunds over $50 need a refund approver.",
        required_role="refund-approver",
        four_eyes=True,
        expires_in=259200.0,
        **common,
    )
    assert decide(policy, "lookup_order", {"order_id": "7"}) == PolicyDecision(
        outcome="allow",
        rule_id="reads",
        matched=("reads",),
        reason="Looking things up has no side effect.",
        **common,
    )
    # A refund of nothing or less (or of no number) is refused, never allowed as "small".
    for amount in (0.0, -5.0, -math.inf, math.nan):
        refused = decide(policy, "issue_refund", {"order_id": "7", "amount": amount})
        assert (refused.outcome, refused.rule_id) == ("deny", "not-positive"), amount


CASES = [
    ("lookup_order", {"order_id": "1"}),
    ("add_order_note", {"order_id": "1", "text": "hi"}),
    ("issue_refund", {"order_id": "1", "amount": 50.0}),
    ("issue_refund", {"order_id": "1", "amount": 50.01}),
    ("issue_refund", {"order_id": "1"}),  # the conditions cannot evaluate
    ("wipe_database", {}),
]


@pytest.mark.parametrize(("tool_name", "args"), CASES)
def test_from_yaml_and_python_rules_decide_alike(tool_name: str, args: dict[str, Any]) -> None:
    text = REFUNDS_YAML.read_text(encoding="utf-8")
    from_yaml = Policy.from_yaml(text)
    from_python = Policy(yaml.safe_load(text)["rules"], default="deny", name="refund-desk")

    # The versions hash different texts (YAML vs the model's JSON); everything else agrees.
    a = dataclasses.replace(decide(from_yaml, tool_name, args), policy_version="")
    b = dataclasses.replace(decide(from_python, tool_name, args), policy_version="")
    assert a == b


# malformed files ---------------------------------------------------------------------------

RULE_A = "rules:\n  - id: a\n    decision: allow\n"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        pytest.param(
            "version: 1\nname: a: b\n",
            "2:8",
            "not valid YAML: mapping values are not allowed here",
            id="invalid-yaml",
        ),
        pytest.param(
            "rules:\n  - id: a\n    decision: maybe\n",
            "3:15",
            "rule 'a', rules.0.decision: Input should be 'allow', 'deny' or 'require_approval' "
            "(got 'maybe')",
            id="unknown-decision",
        ),
        pytest.param(
            "rules:\n  - id: a\n    decision: allow\n  - id: b\n    decision: deny\n"
            "  - id: a\n    decision: deny\n",
            "6:9",
            "duplicate rule id 'a' (first used by rule #1)",
            id="duplicate-id",
        ),
        pytest.param(
            "version: 2\n" + RULE_A,
            "1:10",
            "version: Value error, unknown policy format version 2; this agentrt reads 1 (got 2)",
            id="unknown-version",
        ),
        pytest.param(
            "- id: a\n  decision: allow\n",
            "1:1",
            "a policy file is a mapping, got [{'id': 'a', 'decision': 'allow'}]",
            id="not-a-mapping",
        ),
        pytest.param(
            "rules:\n  - id: a\n    decision: require_approval\n    approval: {expires_in: soon}\n",
            "4:28",
            "rule 'a', rules.0.approval.expires_in: Value error, 'soon' is not a duration like "
            "'90s', '15m', '4h' or '3d' (got 'soon')",
            id="bad-duration",
        ),
        pytest.param(
            RULE_A + "  - id: refunds\n    match: {tools: [issue_refund}\n    decision: deny\n",
            "5:33",
            "rule 'refunds', not valid YAML: expected ',' or ']', but got '}'",
            id="flow-in-rule",
        ),
        pytest.param(
            RULE_A + "  - decision: deny\n    when: 'args.amount > 1\n",
            "6:1",
            "rule #2, not valid YAML: found unexpected end of stream",
            id="rule-without-id",
        ),
        pytest.param(
            RULE_A + "name: a: b\n",
            "4:8",
            "not valid YAML: mapping values are not allowed here",
            id="outside-any-rule",
        ),
        pytest.param(
            RULE_A + "  - decision: deny\n    when: 'x'\n    wen: 'y'\n",
            "6:5",
            "rule #2, rules.1.wen: unknown key 'wen' (got 'y') (and 1 more problems)",
            id="unknown-key-in-rule-without-id",
        ),
        pytest.param(
            "rules:\n  - id: wide\n    match: {scope: [payments:*]}\n    decision: deny\n",
            "3:13",
            "rule 'wide', rules.0.match.scope: unknown key 'scope' (got ['payments:*'])",
            id="unknown-key-in-match",
        ),
        # A YAML loader keeps the last of two equal keys: "deny" would load as "allow".
        pytest.param(
            "rules:\n  - id: refunds\n    decision: deny\n    decision: allow\n",
            "4:5",
            "rule 'refunds', rules.0: duplicate key 'decision' (first at line 3, column 5); "
            "YAML would keep only the last one, so say it once",
            id="duplicate-key-in-rule",
        ),
        pytest.param(
            "default: deny\n" + RULE_A + "default: allow\n",
            "5:1",
            "file: duplicate key 'default' (first at line 1, column 1); YAML would keep only "
            "the last one, so say it once",
            id="duplicate-top-level-key",
        ),
        pytest.param(
            "rules:\n  - id: a\n    match: {tools: [x], roles: [r], tools: [y]}\n"
            "    decision: allow\n",
            "3:37",
            "rule 'a', rules.0.match: duplicate key 'tools' (first at line 3, column 13); YAML "
            "would keep only the last one, so say it once",
            id="duplicate-key-in-flow-mapping",
        ),
        # An empty match list matches nothing: the rule would silently never apply.
        pytest.param(
            "rules:\n  - id: no-refunds\n    match: {tools: [issue_refund], roles: []}\n"
            "    decision: deny\n",
            "3:43",
            "rule 'no-refunds', rules.0.match.roles: Value error, an empty list matches "
            "nothing, so the rule would never apply; leave roles out to match any role (got [])",
            id="empty-roles",
        ),
        pytest.param(
            "rules:\n  - id: no-refunds\n    decision: deny\n    match:\n      tenants: []\n",
            "5:16",
            "rule 'no-refunds', rules.0.match.tenants: Value error, an empty list matches "
            "nothing, so the rule would never apply; leave tenants out to match any tenant "
            "(got [])",
            id="empty-tenants-block",
        ),
        # A number that is no duration: NaN compares false with anything, so say it.
        pytest.param(
            "rules:\n  - id: a\n    decision: require_approval\n    approval: {expires_in: .nan}\n",
            "4:28",
            "rule 'a', rules.0.approval.expires_in: Value error, a duration must be a finite "
            "number > 0, got nan (got nan)",
            id="nan-duration",
        ),
        # A request whose expiry no date can show (past the year 9999): refused here, not
        # left to break every page and command that shows the request.
        pytest.param(
            "rules:\n  - id: a\n    decision: require_approval\n"
            "    approval: {expires_in: 99999999999999999999d}\n",
            "4:28",
            "rule 'a', rules.0.approval.expires_in: Value error, a duration must be at most "
            "36500d (100 years), got '99999999999999999999d'; give a shorter one (a request "
            "that should never expire leaves expires_in out) (got '99999999999999999999d')",
            id="duration-past-any-date",
        ),
        # An empty role would let anyone approve: left out is how that is said.
        pytest.param(
            "rules:\n  - id: a\n    decision: require_approval\n    approval: {role: ''}\n",
            "4:22",
            "rule 'a', rules.0.approval.role: Value error, an empty role names no role; name "
            "one, or leave role out to let anyone approve (got '')",
            id="empty-approver-role",
        ),
        # Who approves, on a rule no one is asked about: a decision written wrong, most likely.
        pytest.param(
            "rules:\n  - id: a\n    decision: allow\n    approval: {role: manager}\n",
            "2:5",
            "rule 'a', rules.0: Value error, approval: says who approves, but this rule's "
            "decision is 'allow', which asks no one; make it require_approval, or remove "
            "approval: (got {'id': 'a', 'decision': 'allow', 'approval': {'role': 'manager'}})",
            id="approval-on-allow",
        ),
    ],
)
def test_malformed_file_error_names_file_line_column(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    path = write_policy(tmp_path, text)
    with pytest.raises(PolicyFileError) as info:
        Policy.from_file(path)
    assert str(info.value) == f"{path}:{where}: {message}"
    line, column = (int(n) for n in where.split(":"))
    assert (info.value.source, info.value.line, info.value.column) == (str(path), line, column)
    assert isinstance(info.value, ConfigError)
    assert path.read_text(encoding="utf-8") == text  # loading never touches the file


def test_a_duration_is_at_most_a_hundred_years_however_it_is_written() -> None:
    assert parse_duration("36500d") == MAX_DURATION == 36_500 * 86_400
    for longer in ("36501d", "876001h", MAX_DURATION + 1, 10**400, "1" + "0" * 400 + "s"):
        with pytest.raises(ValueError, match=r"a duration must be at most 36500d \(100 years\)"):
            parse_duration(longer)


UNKNOWN_KEY = "rules:\n  - id: ok\n    decision: allow\n  - id: refunds\n    decision: deny\n"


def test_unknown_key_in_rule_names_key_and_rule(tmp_path: Path) -> None:
    path = write_policy(tmp_path, UNKNOWN_KEY + "    reasn: typo\n")
    with pytest.raises(PolicyFileError) as info:
        Policy.from_file(path)
    assert info.value.line == 6
    assert str(info.value).endswith(
        ": rule 'refunds', rules.1.reasn: unknown key 'reasn' (got 'typo')"
    )


def test_unknown_key_error_points_at_the_key(tmp_path: Path) -> None:
    path = write_policy(tmp_path, UNKNOWN_KEY + "    reasn: typo\n")
    with pytest.raises(PolicyFileError) as info:
        Policy.from_file(path)
    assert str(info.value) == (
        f"{path}:6:5: rule 'refunds', rules.1.reasn: unknown key 'reasn' (got 'typo')"
    )


def test_misspelt_decision_key_is_reported_as_unknown_key(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "rules:\n  - id: refunds\n    decison: allow\n")
    with pytest.raises(PolicyFileError) as info:
        Policy.from_file(path)
    assert str(info.value).startswith(
        f"{path}:3:5: rule 'refunds', rules.0.decison: unknown key 'decison'"
    )


def test_cel_syntax_error_names_rule_and_place(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path, RULE_A + "  - id: big-refunds\n    decision: deny\n    when: 'args.amount >'\n"
    )
    with pytest.raises(PolicyFileError) as info:
        Policy.from_file(path)
    # Column 25 is just past the `>` inside the quotes: where the expression ends too soon.
    assert str(info.value) == (
        f"{path}:6:25: rule 'big-refunds': `when` is not a valid CEL expression "
        "'args.amount >': Syntax error: mismatched input '<EOF>'"
    )


def test_a_condition_reading_a_variable_it_does_not_have_is_refused(tmp_path: Path) -> None:
    # `arg` for `args`: at run time it fails closed (this deny would deny every refund),
    # so the file is refused where the typo is.
    path = write_policy(
        tmp_path, RULE_A + "  - id: big-refunds\n    decision: deny\n    when: arg.amount > 50\n"
    )
    with pytest.raises(PolicyFileError) as info:
        Policy.from_file(path)
    assert str(info.value) == (
        f"{path}:6:11: rule 'big-refunds': `when` reads 'arg', which a condition does not "
        "have (it has args, budget, principal, run, tool, usage); check the spelling"
    )


@pytest.mark.parametrize(
    "when",
    [
        "args.items.exists(i, i.price > 10.0)",
        "args.items.all(i, i.qty < 5) && args.items.exists_one(j, j.gift)",
        "args.items.map(i, i.price).filter(p, p > 3.0).size() > 0",
        "{'a': 1}.all(k, v, v > 0) && usage.tool_calls < 3",
        "cel.bind(big, args.amount > 50.0, big && principal.tenant == 'acme')",
        "has(budget.max_cost_usd) && run.goal != '' && tool.name == 'x'",
    ],
)
def test_a_condition_s_own_names_are_not_taken_for_unknown_variables(when: str) -> None:
    rules = f"rules:\n  - id: r\n    decision: allow\n    when: {json.dumps(when)}\n"
    assert Policy.from_yaml(rules).rules[0].program is not None


def test_rule_naming_a_missing_tool_is_refused(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path,
        "rules:\n  - id: globbed\n    match: {tools: ['issue_*']}\n    decision: allow\n"
        "  - id: refunds\n    match:\n      tools: [isue_refund]\n    decision: allow\n",
    )
    policy = Policy.from_file(path)
    with pytest.raises(PolicyFileError) as info:
        policy.check_tools(["issue_refund", "lookup_order"])
    assert str(info.value) == (
        f"{path}:7:15: rule 'refunds' names tool 'isue_refund', which this runtime does not "
        "have; known tools: ['issue_refund', 'lookup_order']"
    )
    policy.check_tools(["issue_refund", "isue_refund"])  # globs and known names pass


@pytest.mark.parametrize(
    "field", ["tools", "effects", "scopes", "roles", "tenants", "servers", "credentials"]
)
def test_an_empty_match_list_is_refused_naming_its_field(field: str) -> None:
    with pytest.raises(PolicyFileError) as info:
        Policy([{"id": "x", "match": {field: []}, "decision": "deny"}], name="p")
    assert str(info.value) == (
        f"<policy p>: rule 'x', rules.0.match.{field}: Value error, an empty list matches "
        f"nothing, so the rule would never apply; leave {field} out to match any "
        f"{field[:-1]} (got [])"
    )
    with pytest.raises(ValidationError, match=f"leave {field} out"):
        Match(**{field: ()})


@pytest.mark.parametrize(
    ("text", "place", "problem"),
    [
        pytest.param(
            "rules:\n  - id: refunds\n    match: {tools: [issue_refund]}\n"
            "    decision: require_approval\n    approval:\n"
            "      role:            # refund-approver, to be filled in\n"
            "      four_eyes: true\n",
            "6:12: rule 'refunds', rules.0.approval.role",
            "role is given with no value (YAML null: nothing but a comment after the key, or "
            "every item of its list commented out), which would read as anyone may approve; "
            "name the role that approves (role: approver), or remove the role key to let "
            "anyone approve (got None)",
            id="approval-role",
        ),
        pytest.param(
            "rules:\n  - id: managers-refund\n    match:\n      tools: [issue_refund]\n"
            "      roles:\n        # - manager\n    decision: allow\n",
            "5:13: rule 'managers-refund', rules.0.match.roles",
            "roles is given with no value (YAML null: nothing but a comment after the key, or "
            "every item of its list commented out), which would read as any role; list the "
            "roles the rule is about, or remove the roles key to match any role (got None)",
            id="match-roles-items-commented-out",
        ),
        pytest.param(
            "rules:\n  - id: small-refunds\n    match: {tools: [issue_refund]}\n"
            "    when:   # args.amount <= 50\n    decision: allow\n",
            "4:10: rule 'small-refunds', rules.0.when",
            "when is given with no value (YAML null: nothing but a comment after the key, or "
            "every item of its list commented out), which would read as no condition, a rule "
            "that applies whatever the arguments; write the CEL condition (when: args.amount "
            "<= 50), or remove the when key for a rule with none (got None)",
            id="when",
        ),
        pytest.param(
            "rules:\n  - id: refunds\n    decision: require_approval\n    approval:\n",
            "4:14: rule 'refunds', rules.0.approval",
            "approval is given with no value (YAML null: nothing but a comment after the key, "
            "or every item of its list commented out), which would read as anyone may approve; "
            "say who (approval: {role: approver}), or remove the approval key to let anyone "
            "approve (got None)",
            id="approval",
        ),
        pytest.param(
            "rules:\n  - id: refunds\n    decision: require_approval\n"
            "    approval: {role: manager, expires_in: }\n",
            "4:42: rule 'refunds', rules.0.approval.expires_in",
            "expires_in is given with no value (YAML null: nothing but a comment after the "
            "key, or every item of its list commented out), which would read as a request that "
            "never expires; give a duration such as '4h', or remove the expires_in key for one "
            "that never expires (got None)",
            id="expires-in",
        ),
    ],
)
def test_a_key_given_with_no_value_is_refused_not_read_as_any(
    tmp_path: Path, text: str, place: str, problem: str
) -> None:
    # YAML reads a key with nothing after it (or only commented-out items) as null, which
    # pydantic took for the key left out: the widest meaning, with nothing said.
    path = write_policy(tmp_path, text)
    with pytest.raises(PolicyFileError) as info:
        Policy.from_file(path)
    assert str(info.value) == f"{path}:{place}: Value error, {problem}"


@pytest.mark.parametrize(
    "field", ["tools", "effects", "scopes", "roles", "tenants", "servers", "credentials"]
)
def test_a_match_field_null_in_yaml_is_refused_and_none_in_python_is_left_out(field: str) -> None:
    text = f"rules:\n  - id: x\n    match:\n      {field}:\n    decision: deny\n"
    with pytest.raises(PolicyFileError) as info:
        Policy.from_yaml(text, source="p.yaml")
    assert str(info.value).startswith(
        f"p.yaml:4:{8 + len(field)}: rule 'x', rules.0.match.{field}: Value error, {field} is "
        "given with no value"
    )
    assert f"remove the {field} key to match any {field[:-1]} (got None)" in str(info.value)
    # In Python, None is written on purpose, and is what a field left out is (tools, whose
    # "any" is ["*"], takes no None at all).
    if field == "tools":
        with pytest.raises(ValidationError, match="Input should be a valid list"):
            Match(tools=None)  # type: ignore[arg-type]
        return
    python = Policy([{"id": "x", "match": {field: None}, "decision": "deny"}], name="p")
    assert python.rules[0].rule == Rule(id="x", decision="deny")
    assert Match(**{field: None}) == Match()


def test_a_tool_glob_that_matches_no_tool_is_refused(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path,
        "rules:\n  - id: fine\n    match: {tools: ['issue_*', 'l?okup_order', '*']}\n"
        "    decision: allow\n  - id: no-refunds\n    match:\n      tools: [lookup_order, "
        "'Issue_*']\n    decision: deny\n",
    )
    policy = Policy.from_file(path)
    with pytest.raises(PolicyFileError) as info:
        policy.check_tools(["issue_refund", "lookup_order"])
    assert str(info.value) == (
        f"{path}:7:29: rule 'no-refunds' names tools 'Issue_*', a pattern that matches no tool "
        "this runtime has (matching is case-sensitive); known tools: ['issue_refund', "
        "'lookup_order']"
    )
    policy.check_tools(["issue_refund", "lookup_order", "Issue_x"])
    # "*" (what a rule without tools: matches) stands for any tool, even with none.
    Policy.cautious().check_tools([])
    Policy([{"id": "x", "match": {"tools": ["*"]}, "decision": "deny"}]).check_tools([])
    for pattern in ("[A-Z]*", "lookup_order?", "add_*"):
        with pytest.raises(PolicyFileError, match=re.escape(f"names tools {pattern!r}")):
            Policy([{"id": "x", "match": {"tools": [pattern]}, "decision": "deny"}]).check_tools(
                ["issue_refund", "lookup_order"]
            )


@tool(name="wipe[prod]", effect="write", scopes=["db[eu]:write"], credentials=["vault[eu]"])
def wipe_prod(target: str) -> str:
    """Wipe a production target."""
    return "wiped"


@tool(effect="write")
def wiped(target: str) -> str:
    """Say a target was wiped."""
    return "noted"


@pytest.mark.parametrize(
    ("field", "entry"),
    [("tools", "wipe[prod]"), ("scopes", "db[eu]:write"), ("credentials", "vault[eu]")],
)
def test_a_rule_naming_a_name_with_glob_characters_exactly_matches_it(
    field: str, entry: str
) -> None:
    # Read only as a glob, "[prod]" is a class of one letter: the deny named the tool and
    # never applied to it (check_tools passed it, the name being the tool's).
    policy = Policy(
        [{"id": "no-wipe", "match": {field: [entry]}, "decision": "deny"}],
        default="allow",
        credentials={"vault[eu]": {}},
    )
    policy.check_tools(["wipe[prod]"], credentials=["vault[eu]"])
    boss = Principal("boss", tenant="acme", scopes=["db[eu]:write"])
    decision = policy.evaluate(wipe_prod, "wipe[prod]", {"target": "db"}, boss)
    assert (decision.outcome, decision.rule_id) == ("deny", "no-wipe")


def test_an_entry_that_is_one_name_and_a_glob_of_others_is_refused_saying_how_to_write_it() -> None:
    policy = Policy([{"id": "no-wipe", "match": {"tools": ["wipe[prod]"]}, "decision": "deny"}])
    with pytest.raises(PolicyFileError) as info:
        policy.check_tools(["wipe[prod]", "wiped"])
    assert str(info.value) == (
        "<policy policy>: rule 'no-wipe' names tools 'wipe[prod]', which is the tool "
        "'wipe[prod]' and, read as a glob, matches ['wiped'] too; write 'wipe[[]prod]' to name "
        "that tool alone (each of *?[ in brackets), or a glob that says which you mean"
    )
    alone = Policy(
        [{"id": "no-wipe", "match": {"tools": ["wipe[[]prod]"]}, "decision": "deny"}],
        default="allow",
    )
    alone.check_tools(["wipe[prod]", "wiped"])
    assert alone.evaluate(wipe_prod, "wipe[prod]", {"target": "x"}, AGENT).outcome == "deny"
    assert alone.evaluate(wiped, "wiped", {"target": "x"}, AGENT).outcome == "allow"


def test_a_rule_credential_is_checked_against_the_ones_tools_declare() -> None:
    policy = Policy(
        [
            {"id": "any", "match": {"credentials": ["*"]}, "decision": "deny"},
            {"id": "crm", "match": {"credentials": ["crm", "erp*"]}, "decision": "deny"},
        ],
        name="p",
    )
    policy.check_tools([], credentials=["crm", "erp_eu"])
    policy.check_tools([])  # not given (what-if, evals): not checked
    with pytest.raises(PolicyFileError) as info:
        policy.check_tools([], credentials=["crm"])
    assert str(info.value) == (
        "<policy p>: rule 'crm' names credentials 'erp*', a pattern that matches no "
        "credential its tools declare (matching is case-sensitive); the tools' credentials: "
        "['crm']"
    )
    with pytest.raises(PolicyFileError) as info:
        policy.check_tools([], credentials=["Crm", "erp"])
    assert str(info.value) == (
        "<policy p>: rule 'crm' names credential 'crm', which no tool of this runtime "
        "declares; the tools' credentials: ['Crm', 'erp']"
    )


def test_python_rules_naming_a_missing_tool_have_no_line() -> None:
    policy = Policy([{"id": "x", "match": {"tools": ["nope"]}, "decision": "deny"}], name="p")
    with pytest.raises(PolicyFileError) as info:
        policy.check_tools([])
    assert str(info.value) == (
        "<policy p>: rule 'x' names tool 'nope', which this runtime does not have; known tools: []"
    )


def test_python_rules_are_validated() -> None:
    with pytest.raises(ConfigError) as info:
        Policy([{"id": "x", "decision": "maybe"}], name="p")
    assert str(info.value) == (
        "<policy p>: rule 'x', rules.0.decision: Input should be 'allow', 'deny' or "
        "'require_approval' (got 'maybe')"
    )
    with pytest.raises(ConfigError) as info:
        Policy([{"id": "ok", "decision": "allow"}, "reads"], name="p")
    assert str(info.value) == (
        "<policy p>: rule #2 is 'reads'; give a Rule or a mapping such as "
        "{'id': 'reads', 'match': {'effects': ['read']}, 'decision': 'allow'}"
    )


@pytest.mark.parametrize(
    ("name", "problem"), [("missing.yaml", "No such file or directory"), (".", "Is a directory")]
)
def test_unreadable_policy_path(tmp_path: Path, name: str, problem: str) -> None:
    path = tmp_path / name
    with pytest.raises(ConfigError) as info:
        Policy.from_file(path)
    assert str(info.value) == f"cannot read policy file {str(path)!r}: {problem}; check the path"


def test_non_utf8_policy_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml"):
        Policy.from_file(path)


@pytest.mark.parametrize("text", ["", "\n  \n", "# refund rules\n", "---\n", "null\n"])
def test_a_policy_file_that_holds_nothing_is_refused(tmp_path: Path, text: str) -> None:
    """A file truncated on deploy would load as a policy of no rules, denying every action."""
    path = tmp_path / "refunds.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Policy.from_file(path)
    assert str(info.value) == (
        f"{path}: the policy file holds nothing, and as a policy it would deny every action; "
        "write its rules, or `rules: []` for a policy that is its default alone"
    )


@pytest.mark.parametrize("text", ["rules: []\n", "default: allow\n", "{}\n"])
def test_a_policy_that_says_it_has_no_rules_loads(tmp_path: Path, text: str) -> None:
    path = tmp_path / "defaults.yaml"
    path.write_text(text, encoding="utf-8")
    assert Policy.from_file(path).rules == ()


# engine semantics --------------------------------------------------------------------------


def rule(rid: str, decision: str, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "decision": decision, **extra}


def test_scopes_are_checked_before_any_rule() -> None:
    policy = Policy([rule("everything", "allow")], name="open")
    assert decide(policy, "issue_refund", {"order_id": "1", "amount": 1.0}, NO_SCOPES) == (
        PolicyDecision(
            outcome="deny",
            rule_id=None,
            matched=(),
            reason="principal 'visitor' lacks scopes ['refunds:write'] required by tool "
            "'issue_refund', so the tool is not offered to it",
            policy="open",
            policy_version=policy.version,
        )
    )
    assert decide(policy, "lookup_order", {"order_id": "1"}, NO_SCOPES).outcome == "allow"


@pytest.mark.parametrize("order", list(itertools.permutations(["ok", "ask", "no"])))
def test_most_restrictive_decision_wins_in_any_order(order: tuple[str, ...]) -> None:
    rules = {
        "ok": rule("ok", "allow"),
        "ask": rule("ask", "require_approval", approval={"role": "lead"}),
        "no": rule("no", "deny", reason="refunds are frozen"),
    }
    policy = Policy([rules[r] for r in order], name="p")
    assert decide(policy, "issue_refund", {"order_id": "1", "amount": 5.0}) == PolicyDecision(
        outcome="deny",
        rule_id="no",
        matched=order,
        reason="refunds are frozen",
        policy="p",
        policy_version=policy.version,
    )
    without_deny = Policy([rules[r] for r in order if r != "no"], name="p")
    assert decide(without_deny, "issue_refund", {"order_id": "1", "amount": 5.0}) == (
        PolicyDecision(
            outcome="require_approval",
            rule_id="ask",
            matched=tuple(r for r in order if r != "no"),
            reason="rule 'ask' says require_approval",
            required_role="lead",
            policy="p",
            policy_version=without_deny.version,
        )
    )


@pytest.mark.parametrize("default", ["deny", "allow"])
def test_no_match_falls_to_the_default(default: str) -> None:
    policy = Policy([rule("notes", "allow", match={"tools": ["add_order_note"]})], default=default)
    assert decide(policy, "lookup_order", {"order_id": "1"}) == PolicyDecision(
        outcome=default,
        rule_id=None,
        matched=(),
        reason=f"no rule matched; the policy default is {default}",
        policy="policy",
        policy_version=policy.version,
    )


def test_default_is_deny_when_not_said() -> None:
    assert Policy.from_yaml("name: quiet\n").default == "deny"
    assert decide(Policy([]), "lookup_order", {"order_id": "1"}).outcome == "deny"


def test_matched_lists_every_matching_rule_in_file_order() -> None:
    policy = Policy(
        [
            rule("writes", "allow", match={"effects": ["write", "irreversible"]}),
            rule("reads", "allow", match={"effects": ["read"]}),
            rule("refunds", "require_approval", match={"tools": ["issue_*"]}),
            rule("other-tenant", "deny", match={"tenants": ["globex"]}),
            rule("supporters", "allow", match={"roles": ["support", "admin"]}),
        ]
    )
    decision = decide(policy, "issue_refund", {"order_id": "1", "amount": 1.0})
    assert (decision.outcome, decision.rule_id, decision.matched) == (
        "require_approval",
        "refunds",
        ("writes", "refunds", "supporters"),
    )


@pytest.mark.parametrize(
    ("when", "tool_name", "args", "matches"),
    [
        ("args.amount > 50.0", "issue_refund", {"order_id": "1", "amount": 50.5}, True),
        ("args.amount > 50.0", "issue_refund", {"order_id": "1", "amount": 50.0}, False),
        ('args.order_id.startsWith("vip-")', "lookup_order", {"order_id": "vip-1"}, True),
        ('principal.tenant == "acme"', "lookup_order", {"order_id": "1"}, True),
        ('principal.tenant == "globex"', "lookup_order", {"order_id": "1"}, False),
        ('"support" in principal.roles', "lookup_order", {"order_id": "1"}, True),
        ('principal.id == "agent-1"', "lookup_order", {"order_id": "1"}, True),
        ('tool.effect == "irreversible"', "issue_refund", {"order_id": "1", "amount": 1.0}, True),
        ('tool.effect == "irreversible"', "add_order_note", {"order_id": "1", "text": "x"}, False),
        ('tool.name == "add_order_note"', "add_order_note", {"order_id": "1", "text": "x"}, True),
        ('"refunds:write" in tool.scopes', "issue_refund", {"order_id": "1", "amount": 1.0}, True),
    ],
)
def test_when_conditions_over_args_tool_and_principal(
    when: str, tool_name: str, args: dict[str, Any], matches: bool
) -> None:
    policy = Policy([rule("cond", "require_approval", when=when)], default="allow")
    decision = decide(policy, tool_name, args)
    assert (decision.outcome, decision.matched) == (
        ("require_approval", ("cond",)) if matches else ("allow", ())
    )


def test_tenantless_principal_is_seen_as_empty_tenant() -> None:
    policy = Policy([rule("no-tenant", "deny", when='principal.tenant == ""')], default="allow")
    loner = Principal("solo")
    assert decide(policy, "lookup_order", {"order_id": "1"}, loner).rule_id == "no-tenant"


def test_erroring_condition_never_allows() -> None:
    policy = Policy([rule("big", "allow", when="args.missing > 1")], name="p")
    assert decide(policy, "lookup_order", {"order_id": "1"}) == PolicyDecision(
        outcome="deny",
        rule_id=None,
        matched=(),
        reason="no rule matched; the policy default is deny",
        policy="p",
        policy_version=policy.version,
    )


@pytest.mark.parametrize("decision", ["deny", "require_approval"])
def test_restrictive_rule_with_erroring_condition_still_applies(decision: str) -> None:
    policy = Policy(
        [
            rule("reads", "allow"),
            rule("guard", decision, when="args.missing > 1", reason="guarded"),
        ],
        name="p",
    )
    assert decide(policy, "lookup_order", {"order_id": "1"}) == PolicyDecision(
        outcome=decision,
        rule_id="guard",
        matched=("reads", "guard"),
        reason="guarded (its condition failed to evaluate: KeyError('missing'))",
        policy="p",
        policy_version=policy.version,
    )


def test_unknown_tool_is_denied() -> None:
    policy = Policy(default="allow", name="lax")
    assert decide(policy, "wipe_database", {"really": True}) == PolicyDecision(
        outcome="deny",
        rule_id=None,
        matched=(),
        reason="unknown tool 'wipe_database': the runtime has no such tool",
        policy="lax",
        policy_version=policy.version,
    )


@pytest.mark.parametrize(
    ("expires_in", "seconds"), [("90s", 90.0), ("15m", 900.0), ("4h", 14400.0), ("3d", 259200.0)]
)
def test_require_approval_carries_role_four_eyes_and_expiry(
    expires_in: str, seconds: float
) -> None:
    policy = Policy.from_yaml(
        "rules:\n  - id: ask\n    decision: require_approval\n"
        f"    approval: {{role: lead, four_eyes: true, expires_in: {expires_in}}}\n"
    )
    decision = decide(policy, "lookup_order", {"order_id": "1"})
    assert (decision.required_role, decision.four_eyes, decision.expires_in) == (
        "lead",
        True,
        seconds,
    )


def test_policy_version_is_a_content_hash(tmp_path: Path) -> None:
    text = REFUNDS_YAML.read_text(encoding="utf-8")
    path = write_policy(tmp_path, text)
    first = Policy.from_file(path)
    assert Policy.from_file(path).version == first.version == Policy.from_yaml(text).version

    path.write_text(text.replace("$50 need a", "$50 needs a"), encoding="utf-8")
    changed = Policy.from_file(path)
    assert changed.version != first.version
    args = {"order_id": "1", "amount": 99.0}
    assert decide(changed, "issue_refund", args).policy_version == changed.version
    assert decide(first, "issue_refund", args).policy_version == first.version


# properties --------------------------------------------------------------------------------

_RANK = {"deny": 0, "require_approval": 1, "allow": 2}

_whens = st.sampled_from(
    [
        None,
        "args.amount > 50.0",
        "args.amount <= 50.0",
        'principal.tenant == "acme"',
        'tool.effect == "irreversible"',
        "args.missing > 1",  # always fails to evaluate
    ]
)
_matches = st.fixed_dictionaries(
    {},
    optional={
        "tools": st.lists(st.sampled_from(["*", "issue_*", "lookup_order", "nope"]), min_size=1),
        "effects": st.lists(st.sampled_from(["read", "write", "irreversible"]), min_size=1),
        "roles": st.lists(st.sampled_from(["support", "admin"]), min_size=1),
        "tenants": st.lists(st.sampled_from(["acme", "globex"]), min_size=1),
    },
)
_approvals = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["lead", "ops"]),
        "four_eyes": st.booleans(),
        "expires_in": st.sampled_from(["1h", "4h"]),
    },
)
# Who approves is never said on an allow (refused: it asks no one).
_rule_bodies = st.fixed_dictionaries(
    {"decision": st.just("allow"), "match": _matches},
    optional={"when": _whens},
) | st.fixed_dictionaries(
    {"decision": st.sampled_from(["deny", "require_approval"]), "match": _matches},
    optional={"when": _whens, "approval": _approvals},
)
_rule_lists = st.lists(_rule_bodies, max_size=6).map(
    lambda bodies: [{"id": f"r{i}", **b} for i, b in enumerate(bodies)]
)
_calls = st.sampled_from(
    [
        ("issue_refund", {"order_id": "1", "amount": 20.0}),
        ("issue_refund", {"order_id": "1", "amount": 80.0}),
        ("lookup_order", {"order_id": "1"}),
        ("add_order_note", {"order_id": "1", "text": "x"}),
    ]
)
_principals = st.sampled_from(
    [AGENT, Principal("boss", roles=["admin"], tenant="globex", scopes=["refunds:write"])]
)
_defaults = st.sampled_from(["allow", "deny"])
_fast = settings(max_examples=100, deadline=None, derandomize=True, database=None)


@_fast
@given(
    rules=_rule_lists,
    extra=_rule_bodies.filter(lambda b: b["decision"] == "deny"),
    position=st.integers(min_value=0),
    default=_defaults,
    call=_calls,
    principal=_principals,
)
def test_adding_a_deny_rule_never_loosens(
    *,
    rules: list[dict[str, Any]],
    extra: dict[str, Any],
    position: int,
    default: str,
    call: tuple[str, dict[str, Any]],
    principal: Principal,
) -> None:
    before = decide(Policy(rules, default=default), *call, principal)
    more = list(rules)
    more.insert(position % (len(rules) + 1), {"id": "added-deny", **extra})
    after = decide(Policy(more, default=default), *call, principal)
    assert _RANK[after.outcome] <= _RANK[before.outcome]
    # The other rules match as before, and a matching deny always decides.
    assert tuple(r for r in after.matched if r != "added-deny") == before.matched
    if "added-deny" in after.matched:
        assert after.outcome == "deny"


@_fast
@given(
    rules=_rule_lists,
    default=_defaults,
    call=_calls,
    principal=_principals,
    data=st.data(),
)
def test_rule_order_never_changes_the_decision(
    *,
    rules: list[dict[str, Any]],
    default: str,
    call: tuple[str, dict[str, Any]],
    principal: Principal,
    data: st.DataObject,
) -> None:
    shuffled = data.draw(st.permutations(rules))
    a = decide(Policy(rules, default=default), *call, principal)
    b = decide(Policy(shuffled, default=default), *call, principal)
    # The whole decision (deciding rule, reason, approval terms) is the same; only the
    # policy's content hash and the listing order of the matched rules follow the file.
    assert dataclasses.replace(a, matched=tuple(sorted(a.matched)), policy_version="") == (
        dataclasses.replace(b, matched=tuple(sorted(b.matched)), policy_version="")
    )
    assert a.matched == tuple(r["id"] for r in rules if r["id"] in a.matched)
    assert b.matched == tuple(r["id"] for r in shuffled if r["id"] in b.matched)


def test_a_condition_that_is_not_a_bool_fails_closed() -> None:
    policy = Policy(
        [
            {
                "id": "amount-typo",
                "match": {"tools": ["issue_refund"]},
                "when": "args.amount",
                "decision": "deny",
                "reason": "big",
            },
            {
                "id": "also-typo",
                "match": {"tools": ["issue_refund"]},
                "when": "args.amount",
                "decision": "allow",
            },
        ],
        default="allow",
    )
    decision = decide(policy, "issue_refund", {"order_id": "1", "amount": 5})
    assert (decision.outcome, decision.rule_id, decision.matched) == (
        "deny",
        "amount-typo",
        ("amount-typo",),
    )
    assert decision.reason == "big (its condition gave 5, not a bool)"


def test_rule_order_never_changes_any_part_of_the_decision() -> None:
    # Ties among the winning kind are broken by strictness, then rule id, not file order.
    rules = [
        rule("ask-lead", "require_approval", approval={"role": "lead", "expires_in": "4h"}),
        rule("ask-anyone", "require_approval", approval={"four_eyes": True, "expires_in": "1h"}),
        rule("ask-ops", "require_approval", approval={"role": "ops"}),
        rule("ok", "allow"),
    ]
    decisions = {
        dataclasses.replace(
            decide(Policy(list(order), name="p"), "lookup_order", {"order_id": "1"}),
            matched=(),
            policy_version="",
        )
        for order in itertools.permutations(rules)
    }
    assert decisions == {
        PolicyDecision(
            outcome="require_approval",
            rule_id="ask-lead",
            matched=(),
            reason="rule 'ask-lead' says require_approval",
            # Every matching approval rule holds: each one's role (the strictest rule's
            # first), four eyes from one, the shortest expiry.
            required_role="lead",
            required_roles=("lead", "ops"),
            four_eyes=True,
            expires_in=3600.0,
            policy="p",
        )
    }


def test_cel_syntax_error_in_a_block_scalar_points_at_the_expression(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path, RULE_A + "  - id: multi\n    decision: deny\n    when: >-\n      args.a &&\n"
    )
    with pytest.raises(PolicyFileError) as info:
        Policy.from_file(path)
    assert (info.value.line, info.value.column) == (6, 11)
    assert info.value.message.startswith(
        "rule 'multi': `when` is not a valid CEL expression 'args.a &&': Syntax error:"
    )


# match on scopes, conditions over run, usage and budget --------------------------------------


@pytest.mark.parametrize(
    ("scopes", "tool_name", "matches"),
    [
        (["refunds:*"], "issue_refund", True),
        (["refunds:write"], "issue_refund", True),
        (["orders:*"], "issue_refund", False),
        (["orders:*"], "add_order_note", True),
        (["*"], "lookup_order", False),  # a tool that needs no scope matches no scope glob
    ],
)
def test_match_on_the_scopes_a_tool_requires(
    scopes: list[str], tool_name: str, matches: bool
) -> None:
    policy = Policy(
        [rule("money", "require_approval", match={"scopes": scopes})], default="allow", name="p"
    )
    args = {
        "lookup_order": {"order_id": "1"},
        "add_order_note": {"order_id": "1", "text": "x"},
        "issue_refund": {"order_id": "1", "amount": 1.0},
    }[tool_name]
    assert decide(policy, tool_name, args).matched == (("money",) if matches else ())


CONTEXT = {
    "run": {"thread_id": "t-1", "goal": "refund order 42", "step_id": "3.0"},
    "usage": {"cost_usd": 0.45, "tool_calls": 7, "steps": 4},
    "budget": {"max_cost_usd": 0.5, "max_tool_calls": None},
}


@pytest.mark.parametrize(
    ("when", "matches"),
    [
        ('run.goal.contains("refund")', True),
        ('run.step_id == "3.0"', True),
        ("usage.tool_calls >= 5", True),
        ("usage.cost_usd + tool.cost_usd > 0.8 * budget.max_cost_usd", True),
        ("has(budget.max_cost_usd)", True),
        ("has(budget.max_tool_calls)", False),  # not set: absent, not null
        ("budget.max_tool_calls > 3", None),  # reading an unset limit fails closed
    ],
)
def test_when_sees_run_usage_and_budget(when: str, matches: bool | None) -> None:
    for decision_kind in ("deny", "allow"):
        policy = Policy([rule("r", decision_kind, when=when)], default="deny", name="p")
        decision = policy.evaluate(
            lookup_order, "lookup_order", {"order_id": "1"}, AGENT, **CONTEXT
        )
        if matches is None:
            # A broken condition: a deny still applies, an allow never does.
            assert decision.matched == (("r",) if decision_kind == "deny" else ())
        else:
            assert decision.matched == (("r",) if matches else ())


def test_explain_says_why_each_rule_matched_or_not() -> None:
    policy = Policy(
        [
            rule("reads", "allow", match={"effects": ["read"]}),
            rule("acme-only", "deny", match={"tenants": ["globex"]}),
            rule("admins", "allow", match={"roles": ["admin"]}),
            rule("money", "allow", match={"scopes": ["payments:*"]}),
            rule("notes", "allow", match={"tools": ["add_*"]}),
            rule("small", "allow", when="args.amount <= 50.0"),
            rule("typo", "allow", when="args.amont <= 50.0"),
            rule("big", "require_approval", when="args.amount > 50.0", reason="big refund"),
            rule("broken", "deny", when="args.amont > 1", reason="guard"),
        ],
        name="p",
    )
    explanation = policy.explain(
        issue_refund, "issue_refund", {"order_id": "1", "amount": 80.0}, AGENT
    )
    assert explanation.decision == decide(policy, "issue_refund", {"order_id": "1", "amount": 80.0})
    assert [(c.rule.id, c.matched, c.why) for c in explanation.checks] == [
        ("reads", False, "effect 'irreversible' is not in ['read']"),
        ("acme-only", False, "tenant 'acme' is not in ['globex']"),
        ("admins", False, "principal roles ['support'] hold none of ['admin']"),
        ("money", False, "the tool's scopes ['refunds:write'] match none of ['payments:*']"),
        ("notes", False, "tool 'issue_refund' is not in ['add_*']"),
        ("small", False, "`when` is false"),
        (
            "typo",
            False,
            "`when` failed to evaluate: KeyError('amont'); an allow rule never matches on an error",
        ),
        ("big", True, "`when` is true"),
        (
            "broken",
            True,
            "`when` failed to evaluate: KeyError('amont'); a deny rule applies anyway",
        ),
    ]
    assert explanation.decision.outcome == "deny"
    assert explanation.decision.matched == ("big", "broken")
    no_scopes = policy.explain(issue_refund, "issue_refund", {"amount": 1.0}, NO_SCOPES)
    assert (no_scopes.decision.outcome, no_scopes.checks) == ("deny", ())


# more properties ---------------------------------------------------------------------------

_tool_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)


@_fast
@given(rules=_rule_lists, default=_defaults, name=_tool_names, principal=_principals)
def test_an_unknown_tool_is_always_denied(
    *, rules: list[dict[str, Any]], default: str, name: str, principal: Principal
) -> None:
    if name in TOOLS:
        return
    decision = decide(Policy(rules, default=default), name, {"x": 1}, principal)
    assert (decision.outcome, decision.matched) == ("deny", ())


@_fast
@given(
    rules=_rule_lists,
    effect=st.sampled_from(["read", "write", "irreversible"]),
    scopes=st.lists(st.sampled_from(["orders:write", "refunds:write"]), max_size=2),
    principal=_principals,
)
def test_a_tool_no_rule_is_about_is_denied_under_default_deny(
    *, rules: list[dict[str, Any]], effect: str, scopes: list[str], principal: Principal
) -> None:
    # A tool the runtime has, but that no rule is about: it falls to the default.
    @tool(name="brand_new_tool", effect=effect, scopes=scopes)
    def brand_new_tool() -> None:
        """New."""

    unrelated = [
        {**r, "match": {**r.get("match", {}), "tools": ["issue_*", "lookup_order"]}} for r in rules
    ]
    decision = Policy(unrelated, default="deny").evaluate(
        brand_new_tool, "brand_new_tool", {}, principal
    )
    assert (decision.outcome, decision.matched) == ("deny", ())
