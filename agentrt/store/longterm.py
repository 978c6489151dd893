"""Memory across threads: LangGraph's long-term store (``BaseStore``) on the run's database.

In a SQLite file, LangGraph's SqliteStore on a connection of its own to the same file; in
PostgreSQL, its PostgresStore on the store's pool (its tables are migrated with agentrt's,
under the same lock, in store/postgres/database.py). Whose an item is (which tenant, which
principal) is the namespace's business, decided above the store (agentrt.tools.memory).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from langgraph.store.base import BaseStore
from langgraph.store.sqlite import SqliteStore

from agentrt.store.sqlite.database import begin_waiting, connect

if TYPE_CHECKING:
    from agentrt.store.postgres.database import Database

__all__ = ["SqliteMemories", "postgres_memories"]


class SqliteMemories(SqliteStore):
    """LangGraph's SqliteStore in agentrt's SQLite file: each batch one transaction that
    takes the write lock up front and waits out another process's, as agentrt's writes do.

    SqliteStore's own deferred BEGIN can fail at once with "database is locked" when it
    reads, then writes while another connection has written in between (WAL snapshots).
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(connect(path))
        self._migrate()

    def _migrate(self) -> None:
        """SqliteStore's migrations in one write transaction: two processes opening a new
        file at once migrate it once (LangGraph's setup runs each in its own script)."""
        conn = self.conn
        with self.lock:
            begin_waiting(conn)
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS store_migrations (v INTEGER PRIMARY KEY)")
                row = conn.execute("SELECT max(v) FROM store_migrations").fetchone()
                done = -1 if row[0] is None else int(row[0])
                for version, sql in enumerate(self.MIGRATIONS[done + 1 :], start=done + 1):
                    conn.execute(sql)
                    conn.execute("INSERT INTO store_migrations (v) VALUES (?)", (version,))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self.is_setup = True

    @contextmanager
    def _cursor(self, *, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        with self.lock:
            if transaction:
                begin_waiting(self.conn)
            cur = self.conn.cursor()
            try:
                yield cur
            except BaseException:
                if transaction:
                    self.conn.execute("ROLLBACK")
                raise
            else:
                if transaction:
                    self.conn.execute("COMMIT")
            finally:
                cur.close()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def postgres_memories(db: Database) -> BaseStore:
    """LangGraph's PostgresStore on the store's pool (already migrated by ``db``), its calls
    as patient as agentrt's own: each batch is tried again while the server is out of reach
    or a pooled connection turns out broken (a restart, a failover, idle sessions ended)."""
    from langgraph.store.base import Op, Result
    from langgraph.store.postgres import PostgresStore

    class PatientMemories(PostgresStore):
        def batch(self, ops: Iterable[Op]) -> list[Result]:
            # Safe to run again: reads, upserts and deletes, each autocommitted.
            listed = list(ops)  # an iterator would be spent by the first try
            return db.patiently(lambda: PostgresStore.batch(self, listed))

    return PatientMemories(db.pool)
