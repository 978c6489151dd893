"""The agentrt command, in-process through typer's runner."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentrt.cli import app
from agentrt.examples import refund_desk

runner = CliRunner()
DEMO = ["--app", "agentrt.examples.refund_desk:build_runtime"]
HUGE = "99999999999999999999999"  # past SQLite's integers and any datetime


def cli(*args: str, input: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.output


def test_demo_without_a_terminal_prints_the_commands(db: Path) -> None:
    code, out = cli("demo", "--db", str(db))
    assert code == 0
    assert "status    awaiting_approval" in out
    assert "No terminal to ask on. To decide, run one of:" in out
    line = next(ln for ln in out.splitlines() if " approve apr_" in ln)
    command, _, rest = line.strip().partition(" approve ")
    approval_id = rest.split()[0]
    # Under pytest the command is not invoked as `agentrt`, so it names the interpreter.
    assert command == f"{Path(sys.executable).name} -m agentrt"
    assert rest == (
        f"{approval_id} --as bob --role refund-approver --tenant acme "
        f"--app agentrt.examples.refund_desk:build_runtime --db {db}"
    )

    # The printed command works as printed.
    code, out = cli("approve", *rest.split())
    assert code == 0, out
    assert f"approve recorded for {approval_id}; the run is now succeeded" in out


@pytest.mark.parametrize(
    ("decision", "status"), [("approve", "succeeded"), ("reject", "succeeded")]
)
def test_demo_decides_when_told(db: Path, decision: str, status: str) -> None:
    code, out = cli("demo", "--db", str(db), "--decision", decision)
    assert code == 0, out
    assert f"{decision} by bob:" in out
    assert f"status    {status}" in out
    expected = "Refunded $89.00" if decision == "approve" else "I did not refund order 42"
    assert expected in out


def test_inspect_and_decide_from_the_cli(db: Path) -> None:
    cli("demo", "--db", str(db))
    code, out = cli("approvals", *DEMO, "--db", str(db))
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["ID", "AGE", "TOOL", "ARGS", "RULE", "ROLE", "THREAD"]
    approval_id, thread_id = row.split()[0], row.split()[-1]
    assert "issue_refund" in row
    assert "large-refunds" in row

    code, out = cli("runs", *DEMO, "--db", str(db), "--status", "awaiting_approval")
    assert code == 0
    assert thread_id in out

    code, out = cli(
        "approve", approval_id, "--as", "carol", "--role", "operator", *DEMO, "--db", str(db)
    )
    assert code == 1
    assert "error: 'carol' cannot decide" in out

    code, out = cli(
        "reject",
        approval_id,
        "--as",
        "bob",
        "--role",
        "refund-approver",
        "--tenant",
        "acme",
        "--reason",
        "duplicate claim",
        *DEMO,
        "--db",
        str(db),
    )
    assert code == 0, out
    code, out = cli("show", thread_id, *DEMO, "--db", str(db))
    assert code == 0
    assert "approval 2.0: issue_refund rejected by bob: duplicate claim" in out
    assert "[rejected]" in out


def test_edit_from_the_cli(db: Path) -> None:
    cli("demo", "--db", str(db))
    code, out = cli("approvals", *DEMO, "--db", str(db))
    approval_id = out.splitlines()[1].split()[0]
    code, out = cli(
        "edit",
        approval_id,
        "--as",
        "bob",
        "--role",
        "refund-approver",
        "--tenant",
        "acme",
        "--args",
        "{not json",
        *DEMO,
        "--db",
        str(db),
    )
    assert code == 2
    assert "--args '{not json' is not JSON" in out
    code, out = cli(
        "edit",
        approval_id,
        "--as",
        "bob",
        "--role",
        "refund-approver",
        "--tenant",
        "acme",
        "--args",
        '{"order_id": "42", "amount": 30}',
        *DEMO,
        "--db",
        str(db),
    )
    assert code == 0, out
    assert "the run is now succeeded" in out


def factory_of_two(db: str, model: str) -> None:
    """An app factory that needs more than db=."""


def factory_with_a_bug(db: str = "agentrt.db") -> None:
    """An app factory that takes db= and fails inside it with a TypeError of its own."""
    raise TypeError("a bug of the app's own")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["runs"], 2, "error: no app given: pass --app module:attribute"),
        (["runs", "--app", "nonsense"], 2, "app 'nonsense' is not of the form module:attribute"),
        (["runs", "--app", "no_such_module:rt"], 2, "cannot import module 'no_such_module'"),
        (
            ["runs", "--app", "agentrt.examples.refund_desk:nope"],
            2,
            "module 'agentrt.examples.refund_desk' has no attribute 'nope'",
        ),
        (["runs", "--app", "agentrt.examples.refund_desk:GOAL"], 2, "neither an AgentRuntime"),
        (["show", "ghost", *DEMO], 1, "error: no run with thread id 'ghost'"),
        (["resume", "ghost", *DEMO], 1, "error: no run with thread id 'ghost'"),
        (["approve", "apr_x", "--as", "bob", *DEMO], 1, "no approval request has id 'apr_x'"),
        (
            ["runs", *DEMO, "--status", "paused"],
            2,
            "error: --status 'paused' is not a run status; give one of pending, running, "
            "awaiting_approval, waiting_retry, succeeded, failed, cancelled, budget_exceeded",
        ),
        (["demo", "--decision", "maybe"], 2, "--decision must be approve or reject"),
        (
            ["runs", "--app", "agentrt.examples.refund_desk:demo_model"],
            2,
            "error: app factory 'agentrt.examples.refund_desk:demo_model' cannot be called "
            "with db= alone (got an unexpected keyword argument 'db'); a command calls it with "
            "db= (the SQLite file or postgresql:// URL), so give it that parameter and defaults "
            "for the rest, as in def build_runtime(db='agentrt.db'), or give an AgentRuntime as "
            "--app",
        ),
        (
            ["runs", "--app", "tests.test_cli:factory_of_two"],
            2,
            "error: app factory 'tests.test_cli:factory_of_two' cannot be called with db= "
            "alone (missing a required argument: 'model'); a command calls it with db=",
        ),
        *(
            (
                ["runs", *DEMO, "--limit", n],
                2,
                "Invalid value for '--limit': Input should be greater than or equal to 1",
            )
            for n in ("0", "-1")
        ),
        (
            ["approvals", *DEMO, "--limit", "0"],
            2,
            "Invalid value for '--limit': Input should be greater than or equal to 1",
        ),
        (
            ["worker", *DEMO, "--concurrency", "0"],
            2,
            "Invalid value for '--concurrency': Input should be greater than or equal to 1",
        ),
        # Numbers past what the store or a datetime holds: a usage error, not an OverflowError.
        *(
            (
                [*command, *DEMO, flag, HUGE],
                2,
                f"Invalid value for '{flag}': {HUGE} is not from {low} to {high}",
            )
            for command, flag, low, high in (
                (["runs"], "--limit", 1, 10000),
                (["approvals"], "--limit", 1, 10000),
                (["memory", "list", "--tenant", "acme"], "--limit", 1, 10000),
                (["webhooks", "deliveries"], "--limit", 1, 10000),
                (["eval", "--replay"], "--last", 1, 10000),
                (["prune", "--older-than", "30d"], "--keep-latest", 0, 1000000000),
            )
        ),
        (
            ["runs", *DEMO, "--limit", "10001"],
            2,
            "Invalid value for '--limit': 10001 is not from 1 to 10000",
        ),
        (
            ["stats", *DEMO, "--since", f"{HUGE}d"],
            2,
            f"error: --since '{HUGE}d' is more than 100 years; give an age up to 36500d",
        ),
        (
            ["prune", *DEMO, "--older-than", "36501d"],
            2,
            "error: --older-than '36501d' is more than 100 years; give an age up to 36500d",
        ),
        (
            ["worker", *DEMO, "--poll", "-1"],
            2,
            "error: --poll -1.0 is not a number of seconds >= 0 (0: the database's default)",
        ),
        (
            ["worker", *DEMO, "--sweep-every", "-0.5"],
            2,
            "error: --sweep-every -0.5 is not a number of seconds >= 0 (0: no sweep)",
        ),
    ],
)
def test_errors_are_one_clear_line(
    db: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, message: str
) -> None:
    monkeypatch.chdir(db.parent)
    monkeypatch.delenv("AGENTRT_APP", raising=False)
    if "--app" in args and args[0] != "demo":
        args = [*args, "--db", str(db)]
        refund_desk.build_runtime(db).close()  # these commands use an existing database
    got_code, out = cli(*args)
    assert (got_code, message in out) == (code, True), out


def test_app_from_agentrt_toml(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(db.parent)
    monkeypatch.delenv("AGENTRT_APP", raising=False)
    Path("agentrt.toml").write_text(
        '[agentrt]\napp = "agentrt.examples.refund_desk:build_runtime"\ndb = "from-toml.db"\n'
    )
    code, out = cli("runs")
    assert (code, out.strip().splitlines()[-1]) == (
        2,
        "error: no database at 'from-toml.db'; "
        "check the path (this command reads an existing database and does not make a new one)",
    )
    assert not (db.parent / "from-toml.db").exists()
    refund_desk.build_runtime("from-toml.db").close()
    code, out = cli("runs")
    assert (code, out.strip()) == (0, "(none)")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            b"[agentrt]\napp = 5\n",
            'agentrt.toml: [agentrt] app must be a string, app = "module:attribute" (e.g. '
            '"myapp:build_runtime"), got an integer',
        ),
        (
            b'[agentrt]\napp = ""\n',
            'agentrt.toml: [agentrt] app must be a string, app = "module:attribute" (e.g. '
            '"myapp:build_runtime"), got an empty string',
        ),
        (
            # Only its kind is said: a db value may be a URL with a password in it.
            b'[agentrt]\ndb = ["postgresql://app:s3cret@db/agentrt"]\n',
            'agentrt.toml: [agentrt] db must be a string, db = "agentrt.db" (a SQLite file or '
            "a postgresql:// URL), got an array",
        ),
        (
            b"[agentrt]\ndb = 2024-01-01\n",
            'agentrt.toml: [agentrt] db must be a string, db = "agentrt.db" (a SQLite file or '
            "a postgresql:// URL), got a date or a time",
        ),
        (
            b"agentrt = 5\n",
            "agentrt.toml: agentrt must be a table ([agentrt], then app = ... and db = ... under "
            "it), got an integer",
        ),
        (
            '[agentrt]\napp = "m:a"\n'.encode("utf-16"),
            "agentrt.toml is not UTF-8 text (byte 0); save it as UTF-8",
        ),
        (b"[agentrt\n", "agentrt.toml is not valid TOML: "),
        (
            b'[agentrt]\nap = "m:a"\n',
            "agentrt.toml: [agentrt] takes app and db only, not 'ap'; check its spelling "
            "(other tools' settings go in tables of their own)",
        ),
    ],
    ids=[
        "app-number",
        "app-empty",
        "db-list",
        "db-date",
        "section-number",
        "utf16",
        "no-toml",
        "unknown-key",
    ],
)
def test_an_agentrt_toml_of_the_wrong_shape_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: bytes, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTRT_APP", raising=False)
    (tmp_path / "agentrt.toml").write_bytes(toml)
    from agentrt.examples.refund_desk import POLICY_FILE

    for args in (["runs"], ["policy", "check", str(POLICY_FILE)], ["keys", "list", "--db", "x"]):
        code, out = cli(*args)
        assert (code, out.startswith(f"error: {message}")) == (2, True), (args, out)
        assert len(out.strip().splitlines()) == 1, out
    assert "s3cret" not in out


def test_an_error_inside_an_app_factory_is_the_apps_own_in_one_line(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only a call the factory's signature refuses is said to be about db=; an error raised
    # inside a factory that takes db= (or by its module as it is imported) is the app's own:
    # said as it is, with the app's line that raised it, in one line as every start-up
    # failure is, not a traceback of the command's frames.
    refund_desk.build_runtime(db).close()
    bug = "tests.test_cli:factory_with_a_bug"
    line = inspect.getsourcelines(factory_with_a_bug)[1] + 2
    code, out = cli("runs", "--app", bug, "--db", str(db))
    assert (code, out.strip()) == (
        2,
        f"error: app factory {bug!r} failed: TypeError: a bug of the app's own "
        f"(raised at {__file__}:{line})",
    )
    monkeypatch.chdir(db.parent)
    Path("broken_app.py").write_text("import os\nKEY = os.environ['NO_SUCH_KEY']\n")
    code, out = cli("runs", "--app", "broken_app:build", "--db", str(db))
    assert (code, out.strip()) == (
        2,
        "error: module 'broken_app' of app 'broken_app:build' failed: KeyError: "
        f"'NO_SUCH_KEY' (raised at {db.parent / 'broken_app.py'}:2)",
    )


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """uvicorn.run's and AgentRuntime.worker's calls, recorded in their place: a command
    that gets that far returns at once instead of serving or polling for ever."""
    import signal

    import uvicorn

    from agentrt.runtime import AgentRuntime

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    monkeypatch.setattr("agentrt.cli.serve.tune_for_serving", lambda: None)
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)  # pytest's, kept
    monkeypatch.setattr(AgentRuntime, "worker", lambda rt, **options: calls.append(options))
    return calls


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # uvicorn takes port 99999 without a word, and nothing is reachable there.
        (["serve", "--port", "99999"], "Invalid value for '--port': 99999 is not from 0 to 65535"),
        (["serve", "--port", "65536"], "Invalid value for '--port': 65536 is not from 0 to 65535"),
        (["serve", "--port", "-1"], "Invalid value for '--port': -1 is not from 0 to 65535"),
        (
            ["serve", "--rate-limit", "bogus"],
            "error: rate limit 'bogus' is not understood; write it like '120/minute', "
            "'10/second' or '5000/hour' (see agentrt serve --help)",
        ),
        (["serve", "--threads", "0"], "Invalid value for '--threads': Input should be greater"),
        # uvicorn raised KeyError: 'loud' after "serving" was printed.
        (
            ["serve", "--log-level", "loud"],
            "Invalid value for '--log-level': 'loud' is not one of 'critical', 'error', "
            "'warning', 'info', 'debug', 'trace'",
        ),
        (["serve", "--max-body-bytes", "-5"], "Invalid value for '--max-body-bytes': Input"),
        (["serve", "--max-concurrent-runs", "0"], "Invalid value for '--max-concurrent-runs'"),
        (
            ["serve", "--sweep-every", "nan"],
            "error: --sweep-every nan is not a number of seconds >= 0 (0: none)",
        ),
        (
            ["worker", "--poll", "inf"],
            "error: --poll inf is not a number of seconds >= 0 (0: the database's default)",
        ),
        (
            ["worker", "--sweep-every", "nan"],
            "error: --sweep-every nan is not a number of seconds >= 0 (0: no sweep)",
        ),
    ],
)
def test_serve_and_worker_refuse_bad_options_before_they_start(
    db: Path, started: list[dict[str, Any]], args: list[str], message: str
) -> None:
    refund_desk.build_runtime(db).close()
    code, out = cli(*args, *DEMO, "--db", str(db))
    assert (code, message in out) == (2, True), out
    assert started == []
    assert "Traceback" not in out
    assert "serving" not in out


def test_serve_takes_uvicorns_log_levels_in_any_case(
    db: Path, started: list[dict[str, Any]]
) -> None:
    from uvicorn.config import LOG_LEVELS

    from agentrt.cli.serve import LOG_LEVELS as OFFERED

    assert set(OFFERED) == set(LOG_LEVELS)
    code, out = cli("serve", "--log-level", "WARNING", *DEMO, "--db", str(db))
    assert code == 0, out
    assert started[-1]["log_level"] == "warning"


def test_serve_takes_every_port_from_0_to_65535(db: Path, started: list[dict[str, Any]]) -> None:
    for port in ("0", "65535"):
        code, out = cli("serve", "--port", port, *DEMO, "--db", str(db))
        assert code == 0, out
    assert [call["port"] for call in started] == [0, 65535]
