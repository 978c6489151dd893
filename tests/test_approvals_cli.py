"""The review queue from a terminal: the table, pages, one request, sweep, cancel."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.cli import app
from agentrt.readable import iso
from tests import threads_app
from tests.gate_app import GOAL, OPS, T0, build_runtime

DAY = 86400.0
GATES = ["--app", "tests.gate_app:build_runtime"]


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def waiting(db: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two runs at their gates; the app's clock then reads two days later."""
    monkeypatch.setenv("GATE_APP_NOW", str(T0))
    with build_runtime(db) as rt:
        ids = [r.id for _ in range(2) for r in rt.start(GOAL, principal=OPS).pending_approvals]
    monkeypatch.setenv("GATE_APP_NOW", str(T0 + 2 * DAY))
    return ids


def test_the_queue_masks_sensitive_fields_and_pages(db: Path, waiting: list[str]) -> None:
    code, out = cli("approvals", *GATES, "--db", str(db), "--limit", "3")
    assert code == 0, out
    header, *rows, more = out.splitlines()
    assert header.split() == ["ID", "AGE", "TOOL", "ARGS", "RULE", "ROLE", "THREAD"]
    assert len(rows) == 3
    for row in rows:
        assert row.split()[1:3] == ["2d", "pay"]
        assert '"card": "[REDACTED:field]"' in row
        assert "large-payments  payer" in row
    # The whole numbers: ids and the cursor are random enough to contain "4111".
    assert "4111-1111" not in out
    assert "4333-3333" not in out
    assert more.startswith("more: --cursor ")

    code, out = cli("approvals", *GATES, "--db", str(db), "--limit", "3", *more.split()[1:])
    assert code == 0, out
    _, last = out.splitlines()
    assert {r.split()[0] for r in [*rows, last]} == set(waiting)

    code, out = cli("approvals", *GATES, "--db", str(db), "--role", "treasurer")
    assert (code, out) == (0, "(none)\n")


def test_show_sweep_and_cancel(db: Path, waiting: list[str]) -> None:
    code, out = cli("approvals", "show", waiting[0], *GATES, "--db", str(db))
    assert code == 0, out
    assert "status     pending" in out
    assert '"card": "[REDACTED:field]"' in out
    assert "role       payer (four eyes)" in out
    assert f"expires    {iso(T0 + 7 * DAY)} (in 5d)" in out  # the app's clock: two days on
    assert "on expiry  it escalates: a new request for role treasurer" in out

    code, out = cli("approvals", "sweep", *GATES, "--db", str(db), "--now", str(T0 + 7 * DAY))
    assert code == 0, out
    assert out.count("escalated to apr_") == 4
    assert out.splitlines()[-1] == "4 expired, 4 escalated"
    code, out = cli("approvals", "sweep", *GATES, "--db", str(db), "--now", str(T0 + 7 * DAY))
    assert out.splitlines()[-1] == "0 expired, 0 escalated"

    for nowhen in ("inf", "nan", "-inf"):  # no time: one line, and nothing expired
        code, out = cli("approvals", "sweep", *GATES, "--db", str(db), "--now", nowhen)
        assert (code, out.splitlines()) == (
            2,
            [
                f"error: --now {float(nowhen)!r} is not a time; give epoch seconds, e.g. "
                "--now 1767225600"
            ],
        )
    code, out = cli("approvals", *GATES, "--db", str(db), "--status", "expired")
    assert len(out.splitlines()) == 5  # the header and the four the sweep above expired

    code, out = cli("approvals", *GATES, "--db", str(db), "--role", "treasurer")
    thread = out.splitlines()[1].split()[-1]
    code, out = cli("cancel", thread, "--reason", "duplicate", *GATES, "--db", str(db))
    assert code == 0, out
    assert "status    cancelled" in out
    assert "error     duplicate" in out
    code, out = cli("approvals", *GATES, "--db", str(db), "--status", "cancelled")
    assert len(out.splitlines()) == 3  # the header and the run's two escalated requests


def test_show_says_why_a_superseded_request_never_ran(db: Path) -> None:
    threads = ["--app", "tests.threads_app:build_runtime", "--db", str(db)]
    with threads_app.build_runtime(db) as rt:
        run = rt.start("pay 500", principal=threads_app.OPS)
        (asked,) = run.pending_approvals
        rt.send(run.thread_id, "hello", principal=threads_app.OPS, double_texting="interrupt")
        (waiting,) = rt.start("pay 700", principal=threads_app.OPS).pending_approvals
    code, out = cli("approvals", "show", asked.id, *threads)
    assert code == 0, out
    assert "status     cancelled" in out
    assert "superseded superseded by message #1" in out
    assert out.count("superseded by message #1") == 1  # not again as a comment no one made
    code, out = cli("approvals", "show", waiting.id, *threads)
    assert code == 0, out
    assert "superseded" not in out  # a pending request: nothing superseded it
    # Its words are shown as a request's others are, masked: a row written by another
    # hand that quotes a card shows none of it.
    said = "superseded by message #1; card 4111 1111 1111 1111"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE approvals SET superseded=? WHERE id=?", (said, asked.id))
    code, out = cli("approvals", "show", asked.id, *threads)
    assert code == 0, out
    assert "superseded superseded by message #1; card [REDACTED:card]" in out
    assert "4111 1111" not in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        # A status that is none is a typo, a usage error (2) as `webhooks deliveries` says.
        (
            ["--status", "stale"],
            2,
            "error: --status 'stale' is not a request status; give one of pending, approved, "
            "rejected, edited, expired, cancelled, resolved, retried, all",
        ),
        (["--cursor", "zzz"], 1, "queue cursor 'zzz' is not one this queue handed out"),
        (["show", "apr_nope"], 1, "no approval request has id 'apr_nope'"),
    ],
)
def test_queue_commands_refuse_clearly(
    db: Path, waiting: list[str], args: list[str], code: int, message: str
) -> None:
    if args[0] == "show":
        got, out = cli("approvals", *args, *GATES, "--db", str(db))
    else:
        got, out = cli("approvals", *GATES, "--db", str(db), *args)
    assert got == code, out
    assert message in out
