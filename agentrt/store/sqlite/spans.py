"""Finished spans in SQLite: the span store behind `agentrt trace` and the review page.

Span writes wait only briefly for the write lock: a busy file must never hold a run up for
the sake of its spans, so a write that cannot get the lock in time fails, and the exporter
counts the loss.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence

from agentrt.store.protocols import SpanRow
from agentrt.store.sqlite.database import Database, connect, record_of

__all__ = ["SPAN_LOCK_WAIT_MS", "SpansTable"]

SPAN_LOCK_WAIT_MS = 250
"""How long a batch of spans waits for the file's write lock before it is dropped."""


class SpansTable:
    """SpanStore on SQLite, on a connection of its own with a short busy timeout."""

    db: Database
    _span_conn: sqlite3.Connection | None
    _span_lock: threading.Lock

    def write_spans(self, rows: Sequence[SpanRow]) -> None:
        with self._span_lock:
            conn = self._span_conn
            if conn is None:
                conn = self._span_conn = connect(self.db.path)
                conn.execute(f"PRAGMA busy_timeout={SPAN_LOCK_WAIT_MS}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO spans (span_id, trace_id, parent_id, thread_id, "
                    "name, start_ns, end_ns, status, attributes, events, links) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [_values(r) for r in rows],
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def spans_of(self, trace_id: str) -> list[SpanRow]:
        return self.db.all(
            "SELECT * FROM spans WHERE trace_id=? ORDER BY start_ns, rowid", (trace_id,), _span
        )

    def close_spans(self) -> None:
        with self._span_lock:
            if self._span_conn is not None:
                self._span_conn.close()
                self._span_conn = None


# One encoder for every span (json.dumps with an argument builds a new one each call).
_encode = json.JSONEncoder(default=list).encode


def _values(row: SpanRow) -> tuple[object, ...]:
    return (
        row.span_id,
        row.trace_id,
        row.parent_id,
        row.thread_id,
        row.name,
        row.start_ns,
        row.end_ns,
        row.status,
        _encode(row.attributes),
        _encode(row.events) if row.events else "[]",
        _encode(row.links) if row.links else "[]",
    )


def _span(row: sqlite3.Row) -> SpanRow:
    return record_of(SpanRow, row, attributes=json.loads, events=json.loads, links=json.loads)
