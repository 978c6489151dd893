"""The agentrt command on a database: --db alone for commands that need only its tables, and
clear errors (never a new empty file, never a traceback) for a path or an argument that is
wrong."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest
from typer.testing import CliRunner

from agentrt import AgentRuntime
from agentrt.cli import app
from agentrt.examples import refund_desk

ROOT = Path(__file__).resolve().parent.parent
DEMO = ["--app", "agentrt.examples.refund_desk:build_runtime"]
NOT_MADE = "check the path (this command reads an existing database and does not make a new one)"


@pytest.fixture(autouse=True)
def _no_ambient_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTRT_APP", raising=False)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def agentrt(*args: str | bytes) -> subprocess.CompletedProcess[str]:
    """The agentrt command in a process of its own, as a shell would start it."""
    return subprocess.run(
        [sys.executable, "-m", "agentrt", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUTF8": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_commands_that_need_only_the_database_work_with_db_alone(db: Path) -> None:
    code, out = cli("keys", "create", "--id", "alice", "--tenant", "acme", "--db", str(db))
    assert code == 0, out
    assert db.exists()  # keys create may make the database: that is how a service starts
    assert "alice" in cli("keys", "list", "--db", str(db))[1]
    cli("demo", "--db", str(db))
    code, out = cli("approvals", "--db", str(db))
    assert code == 0, out
    approval_id, thread_id = out.splitlines()[1].split()[0], out.splitlines()[1].split()[-1]
    # Without the app no tool says which of its arguments are sensitive: none are shown.
    assert (
        "(hidden: this app has no tool 'issue_refund')"
        in cli("approvals", "show", approval_id, "--db", str(db))[1]
    )
    for args, shown in [
        (["runs"], thread_id),
        (["show", thread_id], "status    awaiting_approval"),
        (["trace", thread_id], "invoke_agent refund-desk"),
    ]:
        code, out = cli(*args, "--db", str(db))
        assert (code, shown in out) == (0, True), (args, out)
    # A command that drives a run still needs the app, and says so.
    code, out = cli("resume", thread_id, "--db", str(db))
    assert (code, "error: no app given" in out) == (2, True), out


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "list"],
        ["keys", "revoke", "k1"],
        ["runs"],
        ["show", "t1"],
        ["approvals"],
        ["approvals", "show", "apr_1"],
        ["trace", "t1"],
        ["resume", "t1", *DEMO],
        ["approve", "apr_1", "--as", "bob", *DEMO],
        ["raise-limit", "apr_1", "--to", "40", "--as", "bob", *DEMO],
        ["prune", "--older-than", "30d", *DEMO],
        ["memory", "list", "--tenant", "acme"],
        ["artifacts", "t1"],
        ["stats"],
    ],
)
def test_a_database_that_does_not_exist_is_named_and_not_made(
    tmp_path: Path, args: list[str]
) -> None:
    typo = tmp_path / "typo.db"
    code, out = cli(*args, "--db", str(typo))
    assert (code, out.strip()) == (2, f"error: no database at {str(typo)!r}; {NOT_MADE}")
    assert list(tmp_path.iterdir()) == []


def _no_pool(*args: object, **kwargs: object) -> NoReturn:
    """In place of AgentRuntime.worker: a worker that got this far polls for ever."""
    raise AssertionError("the worker started on a database it should have refused")


def test_a_worker_on_a_database_that_does_not_exist_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It would poll an empty file for ever: a typo'd --db is said instead.
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)  # pytest's, kept
    monkeypatch.setattr(AgentRuntime, "worker", _no_pool)
    typo = tmp_path / "typo.db"
    code, out = cli("worker", *DEMO, "--db", str(typo))
    assert (code, out.strip()) == (2, f"error: no database at {str(typo)!r}; {NOT_MADE}")
    assert list(tmp_path.iterdir()) == []


FACTORY_DEFAULT = (
    "error: no database at 'agentrt.db' (the default db= of app factory "
    "'agentrt.examples.refund_desk:build_runtime'); give the database with --db FILE, or run "
    "where that file is (this command reads an existing database and does not make a new one)"
)


@pytest.mark.parametrize(
    "args",
    [
        ["runs"],
        ["show", "t1"],
        ["approvals"],
        ["trace", "t1"],
        ["resume", "t1"],
        ["memory", "list", "--tenant", "acme"],
        ["artifacts", "t1"],
        ["stats"],
        ["worker"],
    ],
)
def test_an_app_factory_without_db_opens_its_default_only_if_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)
    monkeypatch.setattr(AgentRuntime, "worker", _no_pool)
    code, out = cli(*args, *DEMO)
    assert (code, out.strip()) == (2, FACTORY_DEFAULT)
    assert list(tmp_path.iterdir()) == []  # no empty agentrt.db left in the working directory
    refund_desk.build_runtime(tmp_path / "agentrt.db").close()
    if args[0] != "worker":  # where the default is, it is the database read
        code, out = cli(*args, *DEMO)
        assert FACTORY_DEFAULT not in out, out


def test_a_file_that_is_not_an_sqlite_database_is_named(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping: milk, eggs\n", encoding="utf-8")
    for args in (
        ["runs"],
        ["show", "t1"],
        ["runs", *DEMO],
        ["keys", "create", "--id", "a", "--tenant", "acme"],
    ):
        code, out = cli(*args, "--db", str(notes))
        assert (code, out.strip()) == (
            2,
            f"error: {str(notes)!r} is not a SQLite database (it does not start with SQLite's "
            "header); check --db",
        ), args
    # SQLite's header, then garbage: SQLite itself refuses it, and that is said plainly too.
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    code, out = cli("runs", "--db", str(broken))
    assert code == 2
    assert out.startswith(f"error: cannot open database {str(broken)!r}: ")
    assert notes.read_text(encoding="utf-8") == "shopping: milk, eggs\n"  # left as it was


def _another_apps_file(path: Path) -> bytes:
    import sqlite3

    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER)")
        conn.execute("INSERT INTO stock VALUES ('A-1', 3)")
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize(
    "args",
    [
        ["runs"],
        ["show", "t1"],
        ["approvals"],
        ["trace", "t1"],
        ["stats"],
        ["runs", *DEMO],
        ["approve", "apr_1", "--as", "bob", *DEMO],
        # A command that may make a new database makes none inside another app's either.
        ["keys", "create", "--id", "a", "--tenant", "acme"],
    ],
)
def test_another_applications_sqlite_file_is_refused_and_left_alone(
    tmp_path: Path, args: list[str]
) -> None:
    theirs = tmp_path / "inventory.db"
    before = _another_apps_file(theirs)
    for db in (str(theirs), f"sqlite:///{theirs}"):
        code, out = cli(*args, "--db", db)
        assert (code, out.strip()) == (
            2,
            f"error: {db!r} is another application's SQLite database (tables stock; none of "
            "agentrt's), left as it is: check --db (or AGENTRT_DB, or db in agentrt.toml) and "
            "give agentrt's own database, the file your app's runtime opens",
        ), args
    assert theirs.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["inventory.db"]  # nothing beside it


def test_agentrts_own_database_and_an_empty_file_are_opened(db: Path, tmp_path: Path) -> None:
    refund_desk.build_runtime(db).close()
    assert cli("runs", "--db", str(db)) == (0, "(none)\n")
    empty = tmp_path / "empty.db"
    empty.touch()  # no tables yet: agentrt's database from its first open, as before
    assert cli("runs", "--db", str(empty)) == (0, "(none)\n")


def test_a_sqlite_url_that_names_no_file_yet_is_not_made(tmp_path: Path) -> None:
    typo = f"sqlite:///{tmp_path / 'typo.db'}"
    code, out = cli("runs", "--db", typo)
    assert (code, out.strip()) == (2, f"error: no database at {typo!r}; {NOT_MADE}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        "mysql://agent:hunter2-s3cret@db.internal/agentrt",
        "postgresql+psycopg://agent:hunter2-s3cret@db.internal/agentrt",
    ],
)
def test_a_database_url_of_another_scheme_is_a_usage_error_without_its_password(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for given in (["--db", url], []):
        monkeypatch.setenv("AGENTRT_DB", url)
        code, out = cli("runs", *given)
        scheme = url.split("://", maxsplit=1)[0]
        assert (code, out.strip()) == (
            2,
            f"error: database URL {url.replace('hunter2-s3cret', '***')!r} has scheme "
            f"{scheme!r}, which this agentrt cannot open; give a SQLite file path (agentrt.db), "
            "sqlite:///path/to/file.db or postgresql://user:password@host/database",
        )


def test_a_database_url_that_fails_to_open_is_not_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sqlite3

    from agentrt.cli import common

    def refused(*args: object, **kwargs: object) -> NoReturn:
        raise sqlite3.DatabaseError("file is not a database")

    monkeypatch.setattr(common, "load_runtime", refused)
    code, out = cli("runs", "--db", "postgresql://app:s3cret-pw@db.example/agentrt")
    assert (code, out.strip()) == (
        2,
        "error: cannot open the database --db names: file is not a database; is it an "
        "agentrt SQLite database?",
    )


@pytest.mark.parametrize("to", ["abc", "nan", "inf", ""])
def test_raise_limit_to_something_that_is_no_number_is_a_clear_error(db: Path, to: str) -> None:
    code, out = cli("raise-limit", "apr_1", "--to", to, "--as", "bob", *DEMO, "--db", str(db))
    assert (code, out.strip()) == (
        2,
        f"error: --to {to!r} is not a number; give the limit's new value, e.g. --to 40",
    )


def test_from_a_shell_errors_are_one_line_with_status_2_never_a_traceback(db: Path) -> None:
    no_number = agentrt("raise-limit", "apr_1", "--to", "abc", "--as", "bob", "--db", str(db))
    assert (no_number.returncode, no_number.stderr) == (
        2,
        "error: --to 'abc' is not a number; give the limit's new value, e.g. --to 40\n",
    )
    # Bytes that are not UTF-8 (e.g. $'\x80' in bash) reach Python as a lone surrogate.
    for args in (["show", b"order-\x80"], ["approvals", "--tenant", b"\xff", "--db", str(db)]):
        not_text = agentrt(*args)
        assert not_text.returncode == 2, not_text.stderr
        assert not_text.stderr.startswith("error: argument b'"), not_text.stderr
        assert "is not valid UTF-8 text" in not_text.stderr
        assert "Traceback" not in not_text.stderr
    assert not db.exists()
