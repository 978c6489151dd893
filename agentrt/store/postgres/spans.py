"""Finished spans in PostgreSQL: the span store behind `agentrt trace` and the review page.

A batch of spans never holds a run up: it waits at most SPAN_LOCK_WAIT_MS for a row lock
and tries a lost connection again only briefly; past that the write fails and the exporter
counts the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg.rows import DictRow

from agentrt.store.postgres.database import Conn, Database, columns_of, doc, record_of
from agentrt.store.protocols import SpanRow

__all__ = ["SPAN_LOCK_WAIT_MS", "SPAN_PATIENCE", "SpansTable"]

SPAN_LOCK_WAIT_MS = 250
"""How long a batch of spans waits for a row another transaction holds."""

SPAN_PATIENCE = 1.0
"""Seconds a batch keeps trying while connections break (one restart's stale connections)."""

SPAN = columns_of(SpanRow)

# A batch is one statement, whatever its size (a row per span would be one statement per
# span): the columns as arrays, unnested in the batch's order, which the seq column keeps.
_WRITE = (
    "INSERT INTO spans (span_id, trace_id, parent_id, thread_id, name, start_ns, end_ns, "
    "status, attributes, events, links) "
    "SELECT span_id, trace_id, parent_id, thread_id, name, start_ns, end_ns, status, "
    "attributes, events, links FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], "
    "%b::text[], %b::bigint[], %b::bigint[], %b::text[], %b::json[], %b::json[], %b::json[]) "
    "WITH ORDINALITY AS batch (span_id, trace_id, parent_id, thread_id, name, start_ns, "
    "end_ns, status, attributes, events, links, n) ORDER BY n "
    "ON CONFLICT (span_id) DO UPDATE SET trace_id=excluded.trace_id, "
    "parent_id=excluded.parent_id, thread_id=excluded.thread_id, "
    "name=excluded.name, start_ns=excluded.start_ns, end_ns=excluded.end_ns, "
    "status=excluded.status, attributes=excluded.attributes, "
    "events=excluded.events, links=excluded.links"
)


class SpansTable:
    """SpanStore on PostgreSQL."""

    db: Database

    def write_spans(self, rows: Sequence[SpanRow]) -> None:
        if not rows:
            return

        # One statement may not upsert a row twice: a span given twice in a batch is
        # written once, as it was given last (as one upsert after another would leave it).
        last = {r.span_id: r for r in rows}
        columns = [list(c) for c in zip(*(_values(r) for r in last.values()), strict=True)]

        def write(conn: Conn) -> None:
            conn.execute(f"SET LOCAL lock_timeout = '{SPAN_LOCK_WAIT_MS}ms'")
            conn.execute(_WRITE, columns)

        self.db.execute_all(write, patience=SPAN_PATIENCE)  # an upsert: twice is once

    def spans_of(self, trace_id: str) -> list[SpanRow]:
        return self.db.all(
            f"SELECT {SPAN} FROM spans WHERE trace_id=%s ORDER BY start_ns, seq",
            (trace_id,),
            _span,
        )


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
        doc(row.attributes, default=list),
        doc(row.events, default=list),
        doc(row.links, default=list),
    )


def _span(row: DictRow) -> SpanRow:
    return record_of(SpanRow, row)
