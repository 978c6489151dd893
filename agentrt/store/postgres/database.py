"""One PostgreSQL database: its connection pool, its migrations, and writes that outlast a
lost connection.

Every write is its own transaction. A write that fails because the server went away, a
connection broke, or the server broke a deadlock is tried again on another connection until
``PoolSettings.patience`` runs out: such a transaction never committed, so trying again is
safe. The one doubtful moment is a COMMIT whose answer never came: the transaction may have
committed. A write that may run twice to the same end (an upsert, a plain set) is simply
run again (``execute``, ``execute_all``: one round trip). Any other (``apply``, ``write``)
notes its transaction id before it commits, and after such a loss asks the server what
became of that transaction (``pg_xact_status``): committed, the write is done and its
result stands; aborted, it is tried again. So a conditional write (a status move, a
lease, a decision) is never applied twice and never reported lost when it won.
"""

from __future__ import annotations

import contextlib
import functools
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any, TypeAlias, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Json
from psycopg_pool import ConnectionPool

from agentrt.errors import ConfigError, DatabaseUnavailable
from agentrt.logs import get_logger
from agentrt.store.postgres.failures import may_pass, too_long
from agentrt.store.postgres.migrating import migrate
from agentrt.store.postgres.opening import first_connection
from agentrt.urls import hidden_password

__all__ = [
    "CommitInDoubt",
    "Conn",
    "Cursor",
    "Database",
    "DatabaseUnavailable",
    "PoolSettings",
    "columns_of",
    "doc",
    "hidden_password",
    "one_row",
    "record_of",
]

Conn: TypeAlias = psycopg.Connection[DictRow]
Cursor: TypeAlias = psycopg.Cursor[DictRow]
Pool: TypeAlias = ConnectionPool[Conn]
Params: TypeAlias = Sequence[Any] | Mapping[str, Any]

_XID = "SELECT pg_current_xact_id()::text AS xid"

logger = get_logger()

_T = TypeVar("_T")
_sleep = time.sleep  # between tries of a write; tests count the tries through it

# The connections LangGraph's PostgresSaver expects, and the store uses the same: each
# statement its own transaction unless one is begun, rows as dicts, statements prepared.
CONNECTION: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}

POOL_QUERY = {
    "pool_min_size": "min_size",
    "pool_max_size": "max_size",
    "pool_timeout": "timeout",
    "pool_patience": "patience",
}
"""The URL's query parameters that configure the pool (libpq never sees them)."""
_SECONDS = frozenset({"timeout", "patience"})


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSettings:
    """How a store holds its connections, and how long a call keeps trying a server it
    cannot reach. The URL's query may set each (``?pool_max_size=20&pool_patience=30``)."""

    min_size: int = 1
    """Connections kept open while idle."""
    max_size: int = 10
    """At most this many at once; the store's calls, checkpoints, spans and lease
    heartbeats share them."""
    timeout: float = 10.0
    """Seconds one try waits for a free connection, or to connect, before it fails."""
    patience: float = 120.0
    """Seconds a call keeps trying while the server is gone or connections break (a restart,
    a failover), before the error goes up; and that opening the store waits for a server
    not taking connections yet (started beside it)."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_size <= self.max_size or self.max_size < 1:
            raise ConfigError(
                f"pool sizes must satisfy 0 <= min_size <= max_size and max_size >= 1, got "
                f"min_size={self.min_size!r}, max_size={self.max_size!r}"
            )
        if not (self.timeout > 0 and self.patience >= 0):  # NaN, from a URL, is neither
            raise ConfigError(
                f"pool timeout must be > 0 and patience >= 0 seconds, got "
                f"timeout={self.timeout!r}, patience={self.patience!r}"
            )


def parse_url(url: str, settings: PoolSettings) -> tuple[str, PoolSettings]:
    """libpq's connection string for ``url``, and the pool settings its query gives."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    overrides: dict[str, Any] = {}
    for key, value in pairs:
        if key in POOL_QUERY:
            field = POOL_QUERY[key]
            try:
                overrides[field] = float(value) if field in _SECONDS else int(value)
            except ValueError:
                raise ConfigError(
                    f"database URL {hidden_password(url)!r}: {key}={value!r} is not a number"
                ) from None
    settings = replace(settings, **overrides)
    rest = urlencode([(k, v) for k, v in pairs if k not in POOL_QUERY])
    # Written back whole: urlunsplit drops the "//" of an empty authority
    # ("postgresql:///db?host=/run/postgresql", a local socket's URL), which libpq needs.
    conninfo = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{rest}" if rest else "")
    try:
        given = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"database URL {hidden_password(url)!r} is not valid: {exc}") from None
    if "connect_timeout" not in given:
        conninfo = make_conninfo(conninfo, connect_timeout=max(1, round(settings.timeout)))
    return conninfo, settings


class CommitInDoubt(Exception):
    """A COMMIT got no answer and the server still says the transaction is in progress."""


class Database:
    """One database's pool, migrations, and a transaction API for the tables."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        pool: PoolSettings | None = None,
    ) -> None:
        self.location = hidden_password(url)
        """The URL, its password hidden: for messages."""
        self.clock = clock
        """Epoch seconds for the times the tables write."""
        self.conninfo, self.settings = parse_url(url, pool or PoolSettings())
        self._migrate()
        self.pool: Pool = ConnectionPool(
            self.conninfo,
            connection_class=psycopg.Connection[DictRow],
            kwargs=CONNECTION,
            min_size=self.settings.min_size,
            max_size=self.settings.max_size,
            timeout=self.settings.timeout,
            open=False,
            name="agentrt",
        )
        self.pool.open(wait=False)

    # writes ------------------------------------------------------------------------------

    def execute(self, sql: str, params: Params) -> int:
        """One statement that may run twice to the same end (an upsert, a plain set, an
        update whose condition a second run finds already met): autocommitted in one round
        trip, and simply run again after a lost connection. The rows it touched."""

        def attempt() -> int:
            with self.pool.connection() as conn:
                return conn.execute(sql, params).rowcount

        return self.patiently(attempt)

    def execute_all(self, work: Callable[[Conn], None], *, patience: float | None = None) -> None:
        """``work(conn)``, statements that may run twice to the same end (upserts), in one
        transaction sent in one round trip (nothing in it reads a result), and simply run
        again after a lost connection; tried up to ``patience`` seconds (the pool's by
        default)."""

        def attempt() -> None:
            with self.pool.connection() as conn:
                try:
                    # BEGIN and COMMIT as statements: a transaction() block in a pipeline
                    # would wait for the server at each end of it.
                    with conn.pipeline():
                        conn.execute("BEGIN")
                        work(conn)
                        conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise

        self.patiently(attempt, patience)

    def apply(self, sql: str, params: Params, result: Callable[[Cursor], _T]) -> _T:
        """One statement whose second run would differ from its first (an insert that may
        conflict, an update conditional on what it changes): ``result`` of its cursor, the
        statement committed once (see the module's doc). Two round trips."""

        def run(conn: Conn) -> tuple[str, _T]:
            with conn.pipeline():  # BEGIN, the transaction's id and the statement at once
                conn.execute("BEGIN")
                ids = conn.execute(_XID)
                cur = conn.execute(sql, params)
            return _xid(ids), result(cur)

        return self._checked(run, None)

    def write(self, work: Callable[[Conn], _T], *, patience: float | None = None) -> _T:
        """``work(conn)``, several statements, in one transaction committed once (see the
        module's doc); tried again while the server is out of reach, up to ``patience``
        seconds (the pool's by default)."""

        def run(conn: Conn) -> tuple[str, _T]:
            with conn.pipeline():
                conn.execute("BEGIN")
                ids = conn.execute(_XID)
            return _xid(ids), work(conn)

        return self._checked(run, patience)

    def _checked(self, run: Callable[[Conn], tuple[str, _T]], patience: float | None) -> _T:
        """A transaction ``run`` began (its id and result), committed; a COMMIT that got no
        answer is settled by asking the server what became of the transaction."""
        in_doubt: list[tuple[str, _T]] = []

        def attempt() -> _T:
            if in_doubt:
                xid, value = in_doubt[0]
                status = self._xact_status(xid)
                if status == "committed":
                    return value
                if status == "in progress":
                    raise CommitInDoubt(xid)
                in_doubt.clear()  # aborted (or forgotten): it did nothing; do it again
            with self.pool.connection() as conn:
                try:
                    xid, value = run(conn)
                except BaseException:
                    _rollback(conn)
                    raise
                try:
                    self._commit(conn)
                except psycopg.OperationalError:
                    # Most often the server said no, or never got it; but an answer lost on
                    # the way back may hide a commit. The next try asks which.
                    in_doubt.append((xid, value))
                    raise
                return value

        return self.patiently(attempt, patience)

    def _commit(self, conn: Conn) -> None:
        conn.execute("COMMIT")

    def _xact_status(self, xid: str) -> str | None:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT pg_xact_status(%s::xid8) AS status", (xid,)).fetchone()
        return None if row is None else row["status"]

    def patiently(self, attempt: Callable[[], _T], patience: float | None = None) -> _T:
        """``attempt()``, tried again while the server is out of reach (up to ``patience``
        seconds, the pool's by default): for work that is safe to repeat. Past that,
        DatabaseUnavailable, from the last error. An error no retry gets past (a value too
        long for an index, a cancelled statement: see failures.py) goes up at once."""
        patience = self.settings.patience if patience is None else patience
        deadline = time.monotonic() + patience
        pause = 0.0
        while True:
            try:
                return attempt()
            except (psycopg.OperationalError, CommitInDoubt) as exc:
                if isinstance(exc, psycopg.OperationalError) and not may_pass(exc):
                    clearer = too_long(exc, self.pool)
                    if clearer is None:
                        raise
                    raise clearer from exc
                if time.monotonic() + pause > deadline:
                    raise DatabaseUnavailable(self.location, patience, exc) from exc
                logger.info("database %s: %s; trying again", self.location, _first_line(exc))
                # Connections the server dropped (a restart) are all broken at once: test
                # the idle ones now rather than meeting them one failed try at a time.
                with contextlib.suppress(psycopg.Error):
                    self.pool.check()
                _sleep(pause)
                pause = min(max(pause * 2, 0.05), 2.0)

    # reads -------------------------------------------------------------------------------

    def one(
        self,
        sql: str,
        params: Params,
        record: Callable[[DictRow], _T],
    ) -> _T | None:
        """The first row ``sql`` reads, as ``record`` makes it; None if there is none."""
        rows = self._read(sql, params, one=True)
        return record(rows[0]) if rows else None

    def all(
        self,
        sql: str,
        params: Params,
        record: Callable[[DictRow], _T],
    ) -> list[_T]:
        """Every row ``sql`` reads, as ``record`` makes each."""
        return [record(r) for r in self._read(sql, params)]

    def _read(self, sql: str, params: Params, *, one: bool = False) -> list[DictRow]:
        values = params.values() if isinstance(params, Mapping) else params
        if any(isinstance(v, str) and "\x00" in v for v in values):
            return []  # Postgres text holds no NUL, so no stored key has one

        def attempt() -> list[DictRow]:
            with self.pool.connection() as conn:
                cur = conn.execute(sql, params)
                if one:
                    row = cur.fetchone()
                    return [] if row is None else [row]
                return cur.fetchall()

        return self.patiently(attempt, None)

    # the database ------------------------------------------------------------------------

    def close(self) -> None:
        self.pool.close()

    def _migrate(self) -> None:
        """agentrt's tables, then LangGraph's, brought to this agentrt's schema if they are
        not there yet (migrating.py), on a connection that first waits for a server not
        taking connections yet (opening.py)."""
        conn = first_connection(
            lambda: psycopg.Connection[DictRow].connect(self.conninfo, **CONNECTION),
            self.conninfo,
            self.location,
            self.settings.patience,
        )
        with conn:
            migrate(conn, self.location, self.settings.patience)

    @property
    def schema_version(self) -> int:
        row = self._read("SELECT value FROM agentrt_meta WHERE key='schema_version'", ())
        return int(row[0]["value"])

    def redaction_salt(self) -> str:
        """This database's own key for the Redactor's hash mode, made once at random."""

        def salt(conn: Conn) -> str:
            conn.execute(
                "INSERT INTO agentrt_meta (key, value) VALUES ('redaction_salt', %s) "
                "ON CONFLICT (key) DO NOTHING",
                (secrets.token_hex(16),),
            )
            row = conn.execute(
                "SELECT value FROM agentrt_meta WHERE key='redaction_salt'"
            ).fetchone()
            assert row is not None
            return str(row["value"])

        return self.write(salt)


def one_row(cur: Cursor) -> bool:
    """True if the statement touched exactly one row: a conditional write that applied."""
    return cur.rowcount == 1


def _xid(cur: Cursor) -> str:
    row = cur.fetchone()
    assert row is not None
    return str(row["xid"])


def _rollback(conn: Conn) -> None:
    if conn.closed or conn.pgconn.transaction_status == pq.TransactionStatus.IDLE:
        return
    # On a broken connection ROLLBACK fails: the pool discards it, the server rolled back.
    with contextlib.suppress(psycopg.Error):
        conn.execute("ROLLBACK")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def record_of(cls: type[_T], row: Mapping[str, Any], **decode: Callable[[Any], Any]) -> _T:
    """A record of dataclass ``cls`` from a row whose columns are named as its fields.

    ``decode`` turns a column's stored form into the field's value (an enum, a tuple); a
    NULL column leaves a field that has a default to it. JSON columns come decoded.
    """
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in row:
            continue
        raw = row[f.name]
        if raw is None:
            if f.default is MISSING and f.default_factory is MISSING:
                values[f.name] = None
            continue
        values[f.name] = decode[f.name](raw) if f.name in decode else raw
    return cls(**values)


def doc(value: Any, *, default: Callable[[Any], Any] | None = None) -> Json | None:
    """``value`` as a json parameter (None stays NULL); ``default`` for what JSON lacks."""
    if value is None:
        return None
    return Json(value, dumps=functools.partial(json.dumps, default=default))


def columns_of(cls: type[Any], *, prefix: str = "") -> str:
    """The select list of a record: its fields, which are its table's column names."""
    return ", ".join(prefix + f.name for f in fields(cls))
