"""Bringing a PostgreSQL database to this agentrt's schema: agentrt's tables, LangGraph's
checkpointer's and its long-term store's.

A database already at this version is only read: no DDL, no lock. So a role with data
rights only (SELECT, INSERT, UPDATE, DELETE), as production apps often run, opens a
database its owner migrated; PostgreSQL checks CREATE on the schema before it looks whether
a table exists, so even ``CREATE TABLE IF NOT EXISTS`` would be refused it. A database
that is not current is migrated under a lock (two processes opening a new database at once
migrate it once); a role that may not do that gets a ConfigError saying what to do.
"""

from __future__ import annotations

import time

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.store.postgres import PostgresStore as PostgresMemories
from psycopg.rows import DictRow

from agentrt import processes
from agentrt.errors import ConfigError, StartupStopped
from agentrt.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["MIGRATION_LOCK", "migrate", "missing"]

MIGRATION_LOCK = 0x6167656E74_7274  # "agentrt": one migrator at a time per database

_Conn = psycopg.Connection[DictRow]

# Each part's version table, and the version it is at once migrated by this agentrt (the
# last migration's number: LangGraph counts from 0, agentrt from 1).
_PARTS = (
    ("agentrt's tables", "agentrt_meta", SCHEMA_VERSION),
    ("LangGraph's checkpoint tables", "checkpoint_migrations", len(PostgresSaver.MIGRATIONS) - 1),
    ("LangGraph's long-term store", "store_migrations", len(PostgresMemories.MIGRATIONS) - 1),
)

_VERSIONS = {
    "agentrt_meta": "SELECT value::int AS v FROM agentrt_meta WHERE key = 'schema_version'",
    "checkpoint_migrations": "SELECT max(v) AS v FROM checkpoint_migrations",
    "store_migrations": "SELECT max(v) AS v FROM store_migrations",
}


def missing(conn: _Conn, location: str) -> list[str]:
    """The parts of the schema not yet at this agentrt's version, read without a change;
    ConfigError if agentrt's tables are newer than this agentrt."""
    absent: list[str] = []
    for part, table, current in _PARTS:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (table,)).fetchone()
        found = conn.execute(_VERSIONS[table]).fetchone() if row and row["present"] else None
        version = None if found is None else found["v"]
        if table == "agentrt_meta" and version is not None and version > current:
            raise ConfigError(
                f"{location!r} has agentrt schema version {version}, newer than this "
                f"agentrt understands ({current}); upgrade agentrt"
            )
        if version is None or version < current:
            absent.append(part)
    return absent


def migrate(conn: _Conn, location: str, patience: float) -> None:
    """Bring the database on ``conn`` (autocommitted) to this agentrt's schema, if it is
    not there already; ConfigError if the role may not."""
    what = "its schema"  # until the versions are read
    try:
        absent = missing(conn, location)
        if not absent:
            return
        what = ", ".join(absent)
        _lock(conn, location, patience)
        _migrate(conn, location)
    except psycopg.errors.InsufficientPrivilege as exc:
        first = (exc.diag.message_primary or str(exc)).strip()
        raise ConfigError(
            f"{location!r} is not at this agentrt's schema ({what} missing or older), and "
            f"role {conn.info.user!r} may not migrate it: {first}. Have a role that may "
            "create tables in its schema (the database's owner) open it once with this "
            "agentrt, which migrates it: any command that opens it does (there is no "
            "separate migrate command), e.g. `agentrt runs --db <the owner's URL>`; then "
            f"grant {conn.info.user!r} SELECT, INSERT, UPDATE, DELETE on its tables and "
            "USAGE, SELECT on its sequences"
        ) from None


def _migrate(conn: _Conn, location: str) -> None:
    """agentrt's tables, then LangGraph's, the lock held."""
    with conn.transaction():
        conn.execute("CREATE TABLE IF NOT EXISTS agentrt_meta (key TEXT PRIMARY KEY, value TEXT)")
        row = conn.execute("SELECT value FROM agentrt_meta WHERE key='schema_version'").fetchone()
        version = int(row["value"]) if row else 0
        if version > SCHEMA_VERSION:  # migrated by a newer agentrt while this one waited
            raise ConfigError(
                f"{location!r} has agentrt schema version {version}, newer than this "
                f"agentrt understands ({SCHEMA_VERSION}); upgrade agentrt"
            )
        for step in MIGRATIONS[version:]:
            conn.execute(step, prepare=False)  # several statements: not preparable
        conn.execute(
            "INSERT INTO agentrt_meta (key, value) VALUES ('schema_version', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )
    # LangGraph's own migrations (its CREATE INDEX CONCURRENTLY needs autocommit): the
    # checkpointer's, and the long-term store's (the runs' memory).
    PostgresSaver(conn).setup()
    PostgresMemories(conn).setup()


def _lock(conn: _Conn, location: str, patience: float) -> None:
    """The database's migration lock (a session lock: closing the connection frees it).

    Tried, not waited for: LangGraph's CREATE INDEX CONCURRENTLY waits for every statement
    in flight, and a statement waiting for this lock would wait on it back. A process told
    to stop meanwhile (processes.stop_start_up) gives up here, before it has changed
    anything; once it holds the lock, the migration runs to its end, never cut short
    between LangGraph's steps, and the process stops after.
    """
    deadline = time.monotonic() + patience
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s) AS taken", (MIGRATION_LOCK,)).fetchone()
        if row is not None and row["taken"]:
            return
        if processes.start_up_stopped():
            raise StartupStopped(location, f"another process to migrate {location!r}")
        if time.monotonic() > deadline:
            raise ConfigError(
                f"{location!r}: another process has been migrating the database for over "
                f"{patience:g} s; try again when it is done"
            )
        time.sleep(0.05)
