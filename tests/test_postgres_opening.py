"""Opening a PostgreSQL store whose server is not up yet: it waits, within its patience.

A worker or ``serve`` and its database are often started together; the store waits for the
server to take connections (or to have one free), says so once, and gives a clear error
when its patience runs out. What waiting will not cure (a wrong password, an unknown
database) fails at once. A worker told to stop while its store waits stops then, between
two tries. The servers are real: the session's (tests/postgres.py), and one started here on
a port a store is already trying.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import pq

from agentrt import ConfigError, processes
from agentrt.budget import empty_usage
from agentrt.errors import StartupStopped
from agentrt.records import NewRun
from agentrt.store import OpenedStore, open_store
from agentrt.store.postgres import DatabaseUnavailable, PoolSettings, opening
from agentrt.store.postgres.migrating import MIGRATION_LOCK
from tests.conftest import FakeClock
from tests.postgres import ENV, PostgresServer, _free_port
from tests.serving import worker

ALICE = {"id": "alice", "roles": [], "tenant": "acme", "scopes": []}


def waits(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "; waiting up to " in r.getMessage()]


def test_a_store_opened_before_its_server_is_up_waits_for_it_and_works(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.environ.get(ENV):
        pytest.skip(f"{ENV} is set: the tests start no server of their own")
    caplog.set_level(logging.INFO, logger="agentrt")
    port = _free_port()
    password = secrets.token_hex(16)
    url = f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
    waiting = threading.Event()

    def pause(seconds: float) -> None:  # the backoff's own sleep, seen to have begun
        waiting.set()
        time.sleep(seconds)

    monkeypatch.setattr(opening, "_sleep", pause)
    opened: list[OpenedStore] = []
    failed: list[BaseException] = []

    def open_it() -> None:
        try:
            opened.append(open_store(url, pool=PoolSettings(patience=120.0)))
        except BaseException as exc:
            failed.append(exc)

    opener = threading.Thread(target=open_it, name="opener")
    opener.start()
    server: PostgresServer | None = None
    try:
        assert waiting.wait(timeout=30), failed  # refused, and waiting: nothing listens yet
        server = PostgresServer.start(port=port, password=password)
        opener.join(timeout=120)
        assert not opener.is_alive()
        assert failed == []
        (store,) = opened
        try:
            store.store.create_run(
                NewRun(thread_id="t1", goal="g", principal=ALICE, budget={}, usage=empty_usage())
            )
            run = store.store.get_run("t1")
            assert run is not None
            assert run.goal == "g"
        finally:
            store.close()
        (said,) = waits(caplog)  # once, however many tries it took
        assert said.startswith(
            f"database postgresql://postgres:***@127.0.0.1:{port}/postgres is not taking "
            "connections yet (connection failed: "
        )
        assert said.endswith("; waiting up to 120 s for it")
        assert password not in said
    finally:
        opener.join(timeout=120)
        if server is not None:
            server.stop()


def test_past_its_patience_opening_gives_up_naming_the_url_the_wait_and_the_cause(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="agentrt")
    clock = FakeClock(1000.0)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    monkeypatch.setattr(opening, "_clock", clock)
    monkeypatch.setattr(opening, "_sleep", sleep)
    port = _free_port()  # nothing listens there
    shown = f"postgresql://app:***@127.0.0.1:{port}/agentrt?pool_patience=5"
    with pytest.raises(DatabaseUnavailable) as info:
        open_store(shown.replace("***", "s3cret"))
    # A backoff that doubles, its last pause cut to end at the patience.
    assert slept == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 1.9])
    message = str(info.value)
    assert message.startswith(
        f"the database {shown!r} could not be used for "
        f'5 s (connection failed: connection to server at "127.0.0.1", port {port} failed: '
        "Connection refused); the store could not open. Check that its server is running "
    )
    assert message.endswith("with ?pool_patience=SECONDS in the URL")
    assert (info.value.location, info.value.patience) == (shown, 5)
    assert isinstance(info.value.__cause__, psycopg.OperationalError)
    (said,) = waits(caplog)
    assert "s3cret" not in message + said


def test_a_server_shutting_down_is_waited_out_not_refused_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if os.environ.get(ENV):
        pytest.skip(f"{ENV} is set: the tests start no server of their own")
    clock = FakeClock(1000.0)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    server = PostgresServer.start()
    held = psycopg.connect(server.admin_url)
    try:
        # A smart shutdown waits for the connection held, and meanwhile answers every new
        # one "the database system is shutting down" (57P03), as a server starting up does.
        server._ctl("stop", "-m", "smart", "-W")  # -W: not waiting for it to end
        deadline = time.monotonic() + 30
        while pq.PGconn.ping(server.admin_url.encode()) != pq.Ping.REJECT:
            assert time.monotonic() < deadline, "the server never began to shut down"
            time.sleep(0.01)
        monkeypatch.setattr(opening, "_clock", clock)
        monkeypatch.setattr(opening, "_sleep", sleep)
        with pytest.raises(DatabaseUnavailable) as info:
            open_store(server.admin_url, pool=PoolSettings(patience=1.0))
        assert slept == pytest.approx([0.1, 0.2, 0.4, 0.3])
        assert "FATAL:  the database system is shutting down" in str(info.value)
    finally:
        server.stop()
        held.close()


def _with(url: str, *, password: str | None = None, database: str | None = None) -> str:
    parts = urlsplit(url)
    if password is not None:
        user = parts.username or "postgres"
        parts = parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}")
    if database is not None:
        parts = parts._replace(path="/" + database)
    return urlunsplit(parts)


@pytest.mark.parametrize(
    ("wrong", "said"),
    [
        ({"password": "not-the-password"}, "password authentication failed"),
        ({"database": "agentrt_no_such_database"}, 'database "agentrt_no_such_database" does'),
    ],
    ids=["password", "database"],
)
def test_what_waiting_will_not_cure_fails_at_once(
    postgres_server: PostgresServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    wrong: dict[str, str],
    said: str,
) -> None:
    caplog.set_level(logging.INFO, logger="agentrt")
    slept: list[float] = []
    monkeypatch.setattr(opening, "_sleep", slept.append)
    url = _with(postgres_server.admin_url, **wrong)
    refused = _refusals(postgres_server)
    with pytest.raises(ConfigError) as info:
        open_store(url)
    message = str(info.value)
    shown = _with(url, password="***")
    assert message.startswith(f"cannot connect to {shown!r}: connection failed: ")
    assert said in message
    assert (slept, waits(caplog)) == ([], [])  # not one pause, not one line of waiting
    assert "not-the-password" not in message
    if refused is not None:
        # The try, and one more after the ping (asking no password) found the server up,
        # in case it came up between the two: never a third login to a server's log.
        assert _refusals(postgres_server) == refused + 2


def _refusals(server: PostgresServer) -> int | None:
    """The connections the server's log says it refused (a FATAL each), if it is ours."""
    if not server.owned:
        return None
    log = server.log_file
    return log.read_text(errors="replace").count("FATAL:") if log.exists() else 0


@pytest.fixture
def full(postgres_server: PostgresServer) -> Iterator[tuple[str, list[psycopg.Connection]]]:
    """A database whose role may hold two connections at once, and those two, held: the
    server refuses a third as it refuses one past ``max_connections`` (53300). A role of
    its own, since a superuser is let past every such limit."""
    role, password = f"agentrt_full_{secrets.token_hex(4)}", secrets.token_hex(16)
    name = f"{role}_db"
    with psycopg.connect(postgres_server.admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' CONNECTION LIMIT 2")
        admin.execute(f'CREATE DATABASE "{name}" OWNER {role}')
    at = urlsplit(postgres_server.url(name))
    url = urlunsplit(at._replace(netloc=f"{role}:{password}@{at.hostname}:{at.port}"))
    held = [psycopg.connect(url) for _ in range(2)]
    try:
        yield url, held
    finally:
        for conn in held:
            conn.close()
        with psycopg.connect(postgres_server.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_a_server_with_no_connection_free_is_waited_out_until_one_is(
    full: tuple[str, list[psycopg.Connection]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="agentrt")
    url, held = full
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # another client leaves during the second pause
        slept.append(seconds)
        if len(slept) == 2:
            for conn in held:
                conn.close()

    monkeypatch.setattr(opening, "_sleep", sleep)
    opened = open_store(url, pool=PoolSettings(min_size=0, max_size=2))
    try:
        opened.store.create_run(
            NewRun(thread_id="t1", goal="g", principal=ALICE, budget={}, usage=empty_usage())
        )
        assert opened.store.get_run("t1") is not None
    finally:
        opened.close()
    assert slept == pytest.approx([0.1, 0.2])
    (said,) = waits(caplog)
    assert " has no connection free (connection failed: " in said
    assert "too many connections for role" in said
    assert str(urlsplit(url).password) not in said


def test_a_server_that_stays_full_gives_up_at_the_patience_naming_why(
    full: tuple[str, list[psycopg.Connection]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = full
    clock = FakeClock(1000.0)

    def sleep(seconds: float) -> None:
        clock.advance(seconds)

    monkeypatch.setattr(opening, "_clock", clock)
    monkeypatch.setattr(opening, "_sleep", sleep)
    with pytest.raises(DatabaseUnavailable) as info:
        open_store(url, pool=PoolSettings(patience=1.0))
    message = str(info.value)
    assert "too many connections for role" in message
    assert "the server has no connection free for it. Raise its max_connections" in message
    assert "Check that its server is running" not in message  # it runs, and answered
    assert message.endswith("with ?pool_patience=SECONDS in the URL")


@pytest.fixture
def read_only(postgres_server: PostgresServer) -> Iterator[str]:
    """A database whose sessions are read-only, as a hot standby's are to libpq: its name."""
    name = f"agentrt_ro_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_server.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    try:
        yield name
    finally:
        with psycopg.connect(postgres_server.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_host_list_whose_primary_is_not_up_yet_is_waited_for(
    postgres_server: PostgresServer, read_only: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``standby,primary`` with ``target_session_attrs=read-write``, the primary not up: the
    ping must get past the standby's password request to find nothing at the primary."""
    at = urlsplit(postgres_server.admin_url)
    url = urlunsplit(
        at._replace(
            netloc=f"postgres:{at.password}@127.0.0.1:{at.port},127.0.0.1:{_free_port()}",
            path=f"/{read_only}",
            query="target_session_attrs=read-write&connect_timeout=2",
        )
    )
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # during the first pause the standby is promoted
        slept.append(seconds)
        if len(slept) == 1:
            with psycopg.connect(postgres_server.admin_url, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{read_only}" RESET default_transaction_read_only')

    monkeypatch.setattr(opening, "_sleep", sleep)
    open_store(url, pool=PoolSettings(min_size=0, patience=30.0)).close()
    assert slept == pytest.approx([0.1])


def test_ssl_required_of_a_server_without_it_fails_at_once(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server answered "no SSL": up, and no wait changes its answer."""
    if not postgres_server.owned:
        pytest.skip("needs the tests' own server, which has no SSL")
    slept: list[float] = []
    monkeypatch.setattr(opening, "_sleep", slept.append)
    with pytest.raises(ConfigError, match="server does not support SSL"):
        open_store(postgres_server.admin_url + "?sslmode=require", pool=PoolSettings(patience=5))
    assert slept == []


def test_a_url_with_an_empty_authority_opens(empty_postgres_url: str) -> None:
    """``postgresql:///db?host=...``, a local socket's usual URL: its "//" is kept."""
    at = urlsplit(empty_postgres_url)
    url = (
        f"postgresql://{at.path}?host={at.hostname}&port={at.port}"
        f"&user={at.username}&password={at.password}&pool_min_size=0"
    )
    assert url.startswith("postgresql:///")
    open_store(url).close()


# told to stop while opening --------------------------------------------------------------------


def test_a_stop_of_start_up_ends_the_wait_between_two_tries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processes._start_up, "stopped", False)  # this process's, put back after
    clock = FakeClock(1000.0)
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the third pause is where the signal's handler runs
        slept.append(seconds)
        clock.advance(seconds)
        if len(slept) == 3:
            processes.stop_start_up()

    monkeypatch.setattr(opening, "_clock", clock)
    monkeypatch.setattr(opening, "_sleep", sleep)
    port = _free_port()  # nothing listens there
    shown = f"postgresql://app:***@127.0.0.1:{port}/agentrt?pool_patience=60"
    with pytest.raises(StartupStopped) as info:
        open_store(shown.replace("***", "s3cret"))
    assert slept == pytest.approx([0.1, 0.2, 0.4])  # no try after the stop
    assert str(info.value) == (
        f"told to stop while waiting for the database {shown!r} to take connections; "
        "nothing was changed"
    )


def test_a_stop_of_start_up_ends_the_wait_for_another_migrator_before_any_change(
    empty_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processes._start_up, "stopped", True)
    with psycopg.connect(empty_postgres_url, autocommit=True) as migrator:
        migrator.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))  # migrating
        with pytest.raises(StartupStopped, match="waiting for another process to migrate"):
            open_store(empty_postgres_url, pool=PoolSettings(patience=5.0))
        tables = migrator.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchone()
    assert tables == (0,)  # as it was: nothing made


APP = "tests.worker_app:build_runtime"


def test_a_worker_told_to_stop_while_its_store_waits_for_the_server_stops_at_once(
    tmp_path: Path,
) -> None:
    port = _free_port()  # nothing listens there
    url = f"postgresql://app:s3cret@127.0.0.1:{port}/agentrt?pool_patience=60"
    env = {"WORKER_APP_SINK": str(tmp_path / "sink.db")}
    with worker(APP, url, tmp_path / "worker.log", env=env, started=False) as waiting:
        deadline = time.monotonic() + 60
        while "not taking connections yet" not in waiting.text():
            assert waiting.process.poll() is None, waiting.text()
            assert time.monotonic() < deadline, waiting.text()
            time.sleep(0.05)  # it starts in another process; nothing to wait on
        waiting.process.terminate()
        try:
            code = waiting.process.wait(timeout=10)  # its patience is 60 s
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker went on waiting after SIGTERM: {waiting.text()}")
    said = waiting.text()
    assert code == 0, said
    assert said.splitlines()[-1] == (
        "agentrt worker: SIGTERM: stopped before it was ready, claiming nothing"
    ), said
    assert "Traceback" not in said
