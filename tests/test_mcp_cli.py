"""`agentrt tools`: every tool an app offers, with its effect, scopes and source, and for a
principal the rule that would decide a call of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import cli

pytestmark = pytest.mark.subprocess

APP = ["--app", "tests.mcp_mixed_app:build_runtime"]


def lines(out: str) -> list[str]:
    return [" ".join(line.split()) for line in out.splitlines()]


def test_tools_lists_every_tool_with_its_effect_scopes_and_source(db: Path) -> None:
    code, out = cli("tools", *APP, "--db", str(db))
    assert code == 0, out
    assert lines(out) == [
        "TOOL EFFECT IDEMPOTENT SCOPES SOURCE",
        "lookup_order read no orders:read function",
        "add_note write no - langchain",
        "get_current_time read yes - mcp:time",
        "convert_time read yes clock:convert mcp:time",
    ]


def test_tools_for_a_principal_says_what_decides_each(db: Path) -> None:
    code, out = cli(
        "tools", *APP, "--db", str(db), "--principal", "alice", "--role", "operator",
        "--tenant", "acme", "--scope", "orders:read",
    )  # fmt: skip
    assert code == 0, out
    version = lines(out)[-1].split("@")[1].split(",")[0]
    assert lines(out) == [
        "TOOL EFFECT IDEMPOTENT SCOPES SOURCE OFFERED DECISION RULE",
        "lookup_order read no orders:read function yes allow lookups",
        "add_note write no - langchain yes require_approval (lead) big-notes [when: big-notes]",
        "get_current_time read yes - mcp:time yes allow clocks",
        "convert_time read yes clock:convert mcp:time no deny (scopes)",
        "decided for alice (roles ['operator'], tenant acme, scopes ['orders:read']) by "
        f"policy mixed@{version}, with no arguments known",
    ]
    code, out = cli("tools", *APP, "--db", str(db), "--scope", "clock:convert", "--json")
    assert code == 0, out
    rows = {row["tool"]: row for row in map(json.loads, out.splitlines())}
    assert rows["convert_time"] == {
        "tool": "convert_time",
        "effect": "read",
        "idempotent": True,
        "scopes": ["clock:convert"],
        "source": "mcp:time",
        "offered": True,
        "decision": "allow",
        "rule": "clocks",
        "reason": "rule 'clocks' says allow",
        "approvers": [],
        "depends_on_args": [],
    }
    assert rows["lookup_order"]["decision"] == "deny"
