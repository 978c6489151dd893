"""One SQLite file: its connection, its transactions, and the wait for another writer.

One connection per store, shared across threads under a lock; every write is its own
short transaction (BEGIN IMMEDIATE takes the write lock up front, so two writers never
deadlock upgrading), so a process killed at any instant leaves the file consistent.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, TypeVar

from agentrt.errors import ConfigError
from agentrt.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "BUSY_TIMEOUT_MS",
    "LOCK_PATIENCE",
    "Database",
    "begin_waiting",
    "connect",
    "foreign_tables",
    "locked",
    "record_of",
    "retry_locked",
]

BUSY_TIMEOUT_MS = 10_000
"""How long one statement waits for another writer's lock before SQLite says busy."""

LOCK_PATIENCE = 120.0
"""Seconds a write keeps trying past busy_timeout while another process holds SQLite's
write lock (a backup, a long migration, a stuck process), before it gives up."""

_T = TypeVar("_T")
_sleep = time.sleep  # between tries of a locked write; tests count the tries through it


def connect(path: str | Path, *, autocommit: bool = True) -> sqlite3.Connection:
    """Open the file with the pragmas every agentrt connection uses.

    autocommit=False gives Python's implicit transactions, which LangGraph's SqliteSaver
    expects (it commits after each checkpoint's statements).
    """
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    if autocommit:
        conn.isolation_level = None
    try:
        conn.execute("PRAGMA journal_mode=WAL")  # the first read: a file that is no database
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        # NORMAL is durable across process crashes in WAL mode; only power loss can drop the
        # last commits, and that is the trade SQLite documents for WAL.
        conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def locked(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" / "busy": another writer, not a fault."""
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def retry_locked(attempt: Callable[[], _T], *, undo: Callable[[], None] | None = None) -> _T:
    """``attempt()``, tried again with backoff while SQLite says the database is locked.

    Each try already waited busy_timeout; between tries ``undo`` rolls back what a failed
    one left open. Past LOCK_PATIENCE the error goes up: the run that wrote it then waits
    to be retried (status waiting_retry), it does not fail.
    """
    waited, pause = 0.0, 0.05
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            if not locked(exc) or waited >= LOCK_PATIENCE:
                raise
            if undo is not None:
                undo()
            _sleep(pause)
            waited += pause + BUSY_TIMEOUT_MS / 1000
            pause = min(pause * 2, 2.0)


def begin_waiting(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, retried while another process holds the write lock."""
    retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))


class Database:
    """The file's one connection, its migrations, and a transaction API for the tables."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self.clock = clock
        """Epoch seconds for the times the tables write."""
        self._lock = threading.RLock()
        if Path(self.path).is_dir():
            raise ConfigError(
                f"db {self.path!r} is a directory; give a SQLite file (in it, or a new path)"
            )
        try:
            self._conn = connect(self.path)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(_unusable(self.path, exc)) from None
        self._conn.row_factory = sqlite3.Row
        try:
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if locked(exc):  # another writer held it past LOCK_PATIENCE: not the file's fault
                raise
            raise ConfigError(_unusable(self.path, exc)) from None
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on leaving, rolled back on an exception."""
        with self._lock:
            begin_waiting(self._conn)
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection, for reads (WAL: they never wait for a writer)."""
        with self._lock:
            yield self._conn

    def one(
        self, sql: str, params: Sequence[Any], record: Callable[[sqlite3.Row], _T]
    ) -> _T | None:
        """The first row ``sql`` reads, as ``record`` makes it; None if there is none."""
        with self.read() as db:
            row = db.execute(sql, params).fetchone()
        return record(row) if row is not None else None

    def all(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any],
        record: Callable[[sqlite3.Row], _T],
    ) -> list[_T]:
        """Every row ``sql`` reads (its parameters by place or by name), as ``record`` makes
        each."""
        with self.read() as db:
            rows = db.execute(sql, params).fetchall()
        return [record(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _migrate(self) -> None:
        with self.tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS agentrt_meta (key TEXT PRIMARY KEY, value TEXT)")
            row = db.execute("SELECT value FROM agentrt_meta WHERE key='schema_version'").fetchone()
            version = int(row["value"]) if row else 0
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path!r} has agentrt schema version {version}, newer than this "
                    f"agentrt understands ({SCHEMA_VERSION}); upgrade agentrt"
                )
            for step in MIGRATIONS[version:]:
                for statement in step.split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(
                "INSERT OR REPLACE INTO agentrt_meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    @property
    def schema_version(self) -> int:
        with self.read() as db:
            row = db.execute("SELECT value FROM agentrt_meta WHERE key='schema_version'").fetchone()
        return int(row["value"])

    def redaction_salt(self) -> str:
        """This file's own key for the Redactor's hash mode, made once at random.

        A salt everyone knows would let anyone hash guesses (a card number, an email) and
        match them against hashed content; one per store keeps digests comparable within
        the store and useless outside it.
        """
        with self.tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO agentrt_meta (key, value) VALUES ('redaction_salt', ?)",
                (secrets.token_hex(16),),
            )
            row = db.execute("SELECT value FROM agentrt_meta WHERE key='redaction_salt'").fetchone()
        return str(row["value"])


def foreign_tables(path: str | Path) -> list[str]:
    """The tables of the SQLite file at ``path`` if it holds another application's data:
    none for agentrt's database, or for a file with no tables yet. Read only (the file is
    left as it is); sqlite3.DatabaseError for a file SQLite cannot read."""
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        tables = [str(row[0]) for row in rows]
    finally:
        conn.close()
    # Every agentrt database has agentrt_meta from its first open (Database._migrate).
    return [] if "agentrt_meta" in tables else tables


def _unusable(path: str, exc: sqlite3.DatabaseError) -> str:
    """Why the file at ``path`` cannot be agentrt's database, and what to do."""
    if "not a database" in str(exc):
        hint = "give agentrt's SQLite file, or a path where there is none yet"
    elif "malformed" in str(exc):
        hint = "the file is damaged: restore it from a backup"
    else:
        hint = "check that its directory exists and that this process may write there"
    return f"cannot open db {path!r} as a SQLite database ({exc}); {hint}"


def record_of(cls: type[_T], row: sqlite3.Row, **decode: Callable[[Any], Any]) -> _T:
    """A record of dataclass ``cls`` from a row whose columns are named as its fields.

    ``decode`` turns a column's stored form into the field's value (JSON text, an enum); a
    NULL column leaves a field that has a default to it.
    """
    values: dict[str, Any] = {}
    for at, name, required in _fields_at(cls, tuple(row.keys())):
        raw = row[at]
        if raw is None:
            if required:
                values[name] = None
            continue
        convert = decode.get(name)
        values[name] = raw if convert is None else convert(raw)
    return cls(**values)


_FieldsAt = tuple[tuple[int, str, bool], ...]
_fields_seen: dict[tuple[type[Any], tuple[str, ...]], _FieldsAt] = {}


def _fields_at(cls: type[Any], columns: tuple[str, ...]) -> _FieldsAt:
    """Each field of ``cls`` that a row of ``columns`` holds: the column's index, the
    field's name, and whether it lacks a default. Worked out once a class and query shape:
    reading a run's row by name, field by field, cost twice the SELECT."""
    seen = _fields_seen.get((cls, columns))
    if seen is None:
        index = {column: at for at, column in enumerate(columns)}
        seen = _fields_seen[cls, columns] = tuple(
            (index[f.name], f.name, f.default is MISSING and f.default_factory is MISSING)
            for f in fields(cls)
            if f.name in index
        )
    return seen
