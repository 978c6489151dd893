"""What people read: times as ISO instants with how far they are, costs with their digits,
requests in words, flags as flags, and a demo prompt that understands y and n."""

from __future__ import annotations

import math
import re
import sqlite3
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from agentrt import AgentRuntime, Policy, Principal, RunBusy, RunStatus, tool
from agentrt.cli import app
from agentrt.cli.common import print_run
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import GOAL, OPERATOR
from agentrt.readable import LAST_INSTANT, iso, moment, span, usd
from agentrt.service.ui.views import templates
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import FakeClock


def cli(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=input)
    return result.exit_code, result.output


def test_money_keeps_its_significant_digits() -> None:
    assert [usd(v) for v in (0, 4.9e-05, 0.0012345, 0.01, 0.0123, 1.5, 89.0)] == [
        "$0",
        "$0.000049",
        "$0.0012",
        "$0.01",
        "$0.0123",
        "$1.50",
        "$89.00",
    ]
    # The review page says the same as the command line.
    assert templates.env.filters["spent"](4.9e-05, "cost_usd") == "$0.000049"


def test_an_instant_is_iso_in_utc_with_how_far_it_is_from_now() -> None:
    assert iso(1_800_000_000) == "2027-01-15T08:00:00Z"
    assert moment(1_800_000_029, now=1_800_000_000) == "2027-01-15T08:00:29Z (in 29s)"
    assert moment(1_800_000_000, now=1_800_011_100) == "2027-01-15T08:00:00Z (3h 5m ago)"
    assert moment(1_800_000_000, now=1_800_000_000.4) == "2027-01-15T08:00:00Z (now)"
    assert [span(s) for s in (0, 59.9, 125, 3600, 90_000, 2 * 86400)] == [
        "0s",
        "59s",
        "2m 5s",
        "1h",
        "1d 1h",
        "2d",
    ]


def test_run_busy_says_when_the_lease_ends_and_how_long_that_is() -> None:
    busy = RunBusy("t1", "host:12:tok", 1_800_000_029.0, now=1_800_000_000.0)
    assert str(busy) == (
        "run 't1' is being driven by 'host:12:tok' (lease held until 2027-01-15T08:00:29Z "
        "(in 29s)); wait for it to stop or for the lease to expire, then retry"
    )
    assert busy.expires_at == 1_800_000_029.0  # the field keeps the number


def test_a_run_shows_a_tiny_cost_with_its_digits(
    db: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    # A cheap model: the demo's few hundred tokens cost a few millionths of a dollar.
    with refund_desk.build_runtime(
        db, clock=clock, prices={"refund-desk-script": (0.01, 0.02)}
    ) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        cost = run.usage["cost_usd"]
        assert 0 < cost < 0.00005
        print_run(run, rt)
        # A run waiting to retry says when, as an instant and how far off.
        print_run(replace(run, retry_at=time.time() + 120), rt)
    shown = capsys.readouterr().out
    assert f"tokens, {usd(cost)}, " in shown
    assert "$0.0000," not in shown
    assert re.search(r"\nretry at  \S+Z \(in 1m 5\ds\) \(or now: agentrt resume\)\n", shown)


class Crash(BaseException):
    """Stands for the process dying mid-call."""


def in_doubt(db: Path) -> tuple[AgentRuntime, str]:
    """A run whose non-idempotent call died mid-way: it waits for a person to settle it."""
    crashed: list[bool] = []

    @tool(effect="write")
    def send_email(to: str) -> dict[str, Any]:
        """Send an email (the mail server has no idempotency keys)."""
        if not crashed:
            crashed.append(True)
            raise Crash
        return {"sent_to": to}

    model = ScriptedChatModel([ai("", tool_call("send_email", {"to": "al"})), "sent"])
    rt = AgentRuntime(model, tools=[send_email], policy=Policy.allow_all(), db=db)
    with pytest.raises(Crash):
        rt.start("mail al", principal=Principal("ops", tenant="acme"), thread_id="t1")
    run = rt.resume("t1")
    assert run.pending_approval is not None
    assert run.pending_approval.kind == "reconcile"
    return rt, run.pending_approval.id


def test_a_request_no_rule_asked_for_shows_its_reason_and_no_rule(db: Path) -> None:
    rt, request_id = in_doubt(db)
    rt.close()
    code, shown = cli("show", "t1", "--db", str(db))
    assert code == 0, shown
    assert "None" not in shown
    assert "waiting for a person to say whether an effect happened:" in shown
    assert "  reason        'send_email' is not idempotent" in shown
    assert f"agentrt reconcile resolve {request_id} --result" in shown
    code, one = cli("approvals", "show", request_id, "--db", str(db))
    assert code == 0, one
    assert "None" not in one
    assert "\nreason     'send_email' is not idempotent" in one
    assert "\nrule " not in one


def test_approvals_show_says_what_expiry_does_in_words(desk: AgentRuntime, db: Path) -> None:
    run = desk.start(GOAL, principal=OPERATOR)
    assert run.pending_approval is not None
    desk.close()
    code, one = cli("approvals", "show", run.pending_approval.id, "--db", str(db))
    assert code == 0, one
    assert "escalates" not in one
    assert (
        "on expiry  it is rejected: the agent is told nobody decided, and goes on without it" in one
    )
    assert f"expires    {iso(run.pending_approval.expires_at or 0)} (" in one


def test_an_instant_no_date_can_show_is_its_number_never_a_crash() -> None:
    # Kept before such times were refused where they are given (a deadline of 1e300, an
    # expiry 8.64e24 seconds away): every message and page still shows them.
    assert [iso(v) for v in (1e300, LAST_INSTANT + 1, math.nan)] == [
        "epoch 1e+300",
        "epoch 253402300800.0",
        "epoch nan",
    ]
    assert moment(8.64e24, now=1_800_000_000) == "epoch 8.64e+24"
    assert moment(LAST_INSTANT, now=LAST_INSTANT - 29) == "9999-12-31T23:59:59Z (in 29s)"
    assert [span(v) for v in (math.inf, -math.inf, math.nan)] == ["forever", "0s", "0s"]
    filters = templates.env.filters
    assert filters["when"](1e300) == "epoch 1e+300"
    assert filters["when"](LAST_INSTANT) == "9999-12-31 23:59:59 UTC"
    assert filters["spent"](1e300, "deadline") == "epoch 1e+300"
    assert filters["ago"](math.inf) == "forever"


def test_a_run_and_a_request_kept_with_times_past_any_date_are_shown(
    desk: AgentRuntime, db: Path
) -> None:
    run = desk.start(GOAL, principal=OPERATOR)
    assert run.pending_approval is not None
    desk.close()
    # As a version that took them wrote them: a policy's expires_in of 1e20 days, a
    # budget's deadline of 1e300.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE approvals SET expires_at = 8.64e24")
        conn.execute("UPDATE runs SET budget = json_set(budget, '$.deadline', 1e300)")
    conn.close()
    code, one = cli("approvals", "show", run.pending_approval.id, "--db", str(db))
    assert code == 0, one
    assert "\nexpires    epoch 8.64e+24\n" in one
    code, shown = cli("show", run.thread_id, "--db", str(db))
    assert code == 0, shown
    # Read as the last date, which it comes no sooner than: the run can still go on.
    assert "deadline 9999-12-31T23:59:59Z (in " in shown


def commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command's words, groups and their subcommands included."""
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += commands(sub, (*path, name))
    return found


def test_help_shows_flags_as_flags() -> None:
    every = commands(typer.main.get_command(app))
    assert ("trace",) in every
    for path in every:
        code, shown = cli(*path, "--help")
        assert code == 0, (path, shown)
        assert "<bool>" not in shown, (path, shown)
    shown = cli("trace", "--help")[1]
    assert any(line.split()[:2] == ["--json", "Print"] for line in shown.splitlines()), shown


def test_the_demo_prompt_takes_y_and_lists_the_choices_when_it_does_not_understand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules["agentrt.cli.demo"], "_on_terminal", lambda: True)
    code, out = cli("demo", "--db", str(tmp_path / "demo.db"), input="maybe\ny\n")
    assert code == 0, out
    assert "'maybe' is not a choice here: type approve (or y, yes) or reject (or n, no)" in out
    assert "approve by bob:" in out
    assert "status    succeeded" in out
    code, out = cli("demo", "--db", str(tmp_path / "again.db"), input="no\n")
    assert (code, "reject by bob:" in out, "not a choice" in out) == (0, True, False)
    assert RunStatus.SUCCEEDED.value in out  # the agent is told, and reports it did not refund
