"""A throwaway PostgreSQL server for the tests, started once a session and stopped at its end.

Debian's ``postgresql`` (``make pytest`` installs it): ``initdb`` into a temporary
directory, the server on 127.0.0.1 at a free port with a random password, durability off
(nothing here must survive a power cut), and one fresh database per test: a copy of one
migrated once a session (``postgres_url``), or empty (``empty_postgres_url``). Running as
root (as the tests here do), the server runs as the ``postgres`` user, since PostgreSQL
refuses root. ``AGENTRT_TEST_POSTGRES=postgresql://...`` points the suite at an existing
server instead (it needs CREATEDB; the tests that restart the server are skipped then).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

__all__ = [
    "PostgresServer",
    "SilentRelay",
    "empty_postgres_url",
    "postgres_server",
    "postgres_url",
]

ENV = "AGENTRT_TEST_POSTGRES"


def _bin_dir() -> Path | None:
    """The newest installed server's bin directory (initdb and pg_ctl are not on PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A server the tests may use: its admin URL, fresh databases, and (if it is ours)
    restart and stop."""

    def __init__(self, admin_url: str, *, data: Path | None = None, bin_dir: Path | None = None):
        self.admin_url = admin_url
        self._data = data
        self._bin = bin_dir
        self._names = itertools.count(1)
        self._prefix = f"agentrt_test_{os.getpid()}_"
        self._migrated: str | None = None

    # ours --------------------------------------------------------------------------------

    @classmethod
    def start(cls, *, port: int | None = None, password: str | None = None) -> PostgresServer:
        """A new server, started: at ``port`` with ``password`` if given (a URL made
        before it is up), else at a free port with a random one."""
        bin_dir = _bin_dir()
        if bin_dir is None:
            pytest.fail(
                "PostgreSQL is missing: `make pytest` installs Debian's postgresql; or set "
                f"{ENV}=postgresql://user:password@host/db to use a server you have"
            )
        root = Path(tempfile.mkdtemp(prefix="agentrt-pg-"))
        data = root / "data"
        password = password or secrets.token_hex(16)
        (root / "pwfile").write_text(password + "\n")
        port = port or _free_port()
        server = cls(
            f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres",
            data=data,
            bin_dir=bin_dir,
        )
        server._chown(root)
        server._run(
            "initdb",
            "-D",
            str(data),
            "-U",
            "postgres",
            "--pwfile",
            str(root / "pwfile"),
            "--auth=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# a throwaway server for the tests: fast, not durable\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {port}\n"
                f"unix_socket_directories = '{root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\n"
            )
        server._ctl("start")
        return server

    def _chown(self, path: Path) -> None:
        if os.geteuid() != 0:
            return
        user = pwd.getpwnam("postgres")
        for dirpath, _, files in os.walk(path):
            os.chown(dirpath, user.pw_uid, user.pw_gid)
            for name in files:
                os.chown(os.path.join(dirpath, name), user.pw_uid, user.pw_gid)

    def _run(self, tool: str, *args: str) -> None:
        assert self._bin is not None
        command = [str(self._bin / tool), *args]
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    def _ctl(self, action: str, *extra: str) -> None:
        assert self._data is not None
        log = self.log_file
        self._run("pg_ctl", "-D", str(self._data), "-l", str(log), "-w", "-t", "30", action, *extra)

    @property
    def log_file(self) -> Path:
        """Where a server the tests started writes its log."""
        assert self._data is not None
        return self._data.parent / "server.log"

    @property
    def owned(self) -> bool:
        """True if the tests started this server (so may restart and stop it)."""
        return self._data is not None

    def restart(self) -> None:
        """Restart the server (fast shutdown: every connection is cut)."""
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        if self._migrated is not None:
            self.drop_database(self.url(self._migrated))
        if self._data is None:
            return
        try:
            self._ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self._data.parent, ignore_errors=True)

    # databases ---------------------------------------------------------------------------

    def url(self, database: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path="/" + database))

    def create_database(self, *, migrated: bool = True) -> str:
        """A new database, its URL: a copy of one agentrt migrated once this session (a copy
        costs a fraction of a migration), or (``migrated=False``) empty."""
        name = f"{self._prefix}{next(self._names)}"
        template = self._template() if migrated else "template1"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for _ in range(100):
                try:
                    conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                    break
                except psycopg.errors.ObjectInUse:  # the template's last client is leaving
                    time.sleep(0.01)
        return self.url(name)

    def _template(self) -> str:
        if self._migrated is None:
            from agentrt.store.postgres import PostgresStore

            url = self.create_database(migrated=False)
            PostgresStore(url).close()
            self._migrated = urlsplit(url).path.lstrip("/")
        return self._migrated

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the server takes connections again."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.admin_url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


class SilentRelay:
    """A TCP relay to a PostgreSQL server whose connections can go silent.

    After ``go_silent()``, nothing more passes either way on the connections open then, and
    their sockets stay open: what a NAT or a firewall that dropped an idle connection leaves
    (no FIN, no RST). Connections made after it pass as before.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._to = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._server = socket.create_server(("127.0.0.1", 0))
        userinfo = parts.netloc.rpartition("@")[0]
        here = f"127.0.0.1:{self._server.getsockname()[1]}"
        self.url = urlunsplit(parts._replace(netloc=f"{userinfo}@{here}" if userinfo else here))
        """The server's URL through the relay."""
        self._lock = threading.Lock()
        self._open: dict[int, tuple[socket.socket, socket.socket]] = {}
        self._silent: set[int] = set()
        threading.Thread(target=self._accept, name="silent-relay", daemon=True).start()

    def _accept(self) -> None:
        for key in itertools.count():
            try:
                client, _ = self._server.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(self._to)
            with self._lock:
                self._open[key] = (client, upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._relay, args=(src, dst, key), daemon=True).start()

    def _relay(self, src: socket.socket, dst: socket.socket, key: int) -> None:
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if key not in self._silent:  # a silent connection's bytes are dropped
                    dst.sendall(data)
            except OSError:
                return

    def go_silent(self) -> None:
        """Pass nothing more on the connections open now."""
        with self._lock:
            self._silent.update(self._open)

    def close(self) -> None:
        self._server.close()
        with self._lock:
            for pair in self._open.values():
                for end in pair:
                    end.close()

    def __enter__(self) -> SilentRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's server: started on first use, stopped when the session ends."""
    existing = os.environ.get(ENV)
    if existing:
        yield PostgresServer(existing)
        return
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database for one test, agentrt's tables in it, dropped after it."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture
def empty_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database for one test, dropped after it."""
    url = postgres_server.create_database(migrated=False)
    yield url
    postgres_server.drop_database(url)
