"""The outbox and its webhook deliveries in PostgreSQL.

Events are inserted by the other tables' writes, inside their transactions
(``insert_event``). Identity values are handed out before commit, so two writers could
commit seq 7 before seq 6, and a dispatcher reading between the two would move its cursor
past 6 for good. A writer therefore takes the outbox's advisory lock just before its
insert, and holds it to its commit: seq order is commit order. Claims take rows FOR
UPDATE SKIP LOCKED, so dispatchers claiming at once never take one delivery twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.rows import DictRow

from agentrt.store.outbox import (
    Delivery,
    DeliveryOutcome,
    DeliveryQuery,
    DeliveryStatus,
    OutboxEvent,
)
from agentrt.store.postgres.database import Conn, Database, doc, one_row

__all__ = ["OUTBOX_LOCK", "OutboxTable", "insert_event"]

OUTBOX_LOCK = 0x6167656E74_6F7574  # "agent" "out": one outbox writer commits at a time

_PENDING = DeliveryStatus.PENDING.value
_EVENT = "o.seq, o.id, o.type, o.thread_id, o.tenant, o.data, o.created_at"
_DELIVERY = (
    "d.endpoint, d.status, d.attempts, d.next_at, d.last_error, d.last_status, "
    f"d.delivered_at, d.updated_at, {_EVENT}"
)


def insert_event(conn: Conn, event: OutboxEvent | None) -> None:
    """Write ``event`` in the caller's transaction (nothing for None; an id written before,
    by a re-run of the same change, stays as it was)."""
    if event is None:
        return
    # The lock, then the row (its seq drawn after the lock is held), in one round trip.
    conn.execute(
        "WITH locked AS (SELECT pg_advisory_xact_lock(%s)) "
        "INSERT INTO outbox (id, type, thread_id, tenant, data, created_at) "
        "SELECT %s,%s,%s,%s,%s,%s FROM locked ON CONFLICT (id) DO NOTHING",
        (
            OUTBOX_LOCK,
            event.id,
            event.type,
            event.thread_id,
            event.tenant,
            doc(event.data),
            event.created_at,
        ),
    )


class OutboxTable:
    """OutboxStore on PostgreSQL."""

    db: Database

    def outbox_events(
        self, *, after: int = 0, limit: int = 500, thread_id: str | None = None
    ) -> list[OutboxEvent]:
        sql, params = f"SELECT {_EVENT} FROM outbox o WHERE o.seq > %s", list[Any]([after])
        if thread_id is not None:
            sql += " AND o.thread_id = %s"
            params.append(thread_id)
        return self.db.all(sql + " ORDER BY o.seq LIMIT %s", (*params, max(0, limit)), _event)

    def outbox_cursor(self, endpoint: str) -> int:
        found = self.db.one(
            "SELECT seq FROM webhook_cursors WHERE endpoint=%s", (endpoint,), lambda r: r["seq"]
        )
        return int(found or 0)

    def add_deliveries(
        self, endpoint: str, events: Sequence[OutboxEvent], *, cursor: int, upto: int, now: float
    ) -> bool:
        def add(conn: Conn) -> bool:
            conn.execute(
                "INSERT INTO webhook_cursors (endpoint, seq) VALUES (%s, 0) "
                "ON CONFLICT (endpoint) DO NOTHING",
                (endpoint,),
            )
            row = conn.execute(
                "SELECT seq FROM webhook_cursors WHERE endpoint=%s FOR UPDATE", (endpoint,)
            ).fetchone()
            assert row is not None
            if row["seq"] != cursor:
                return False
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO webhook_deliveries (endpoint, event_id, seq, thread_id, "
                    "status, next_at, updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT DO NOTHING",
                    [(endpoint, e.id, e.seq, e.thread_id, _PENDING, now, now) for e in events],
                )
            conn.execute("UPDATE webhook_cursors SET seq=%s WHERE endpoint=%s", (upto, endpoint))
            return True

        return self.db.write(add)

    def claim_deliveries(
        self, endpoint: str, *, owner: str, now: float, until: float, limit: int
    ) -> list[Delivery]:
        def claim(conn: Conn) -> list[str]:
            rows = conn.execute(
                "UPDATE webhook_deliveries SET claimed_by=%(owner)s, claimed_until=%(until)s "
                "WHERE (endpoint, event_id) IN (SELECT d.endpoint, d.event_id "
                "FROM webhook_deliveries d WHERE d.endpoint=%(endpoint)s "
                "AND d.status=%(pending)s AND d.next_at<=%(now)s "
                "AND (d.claimed_until IS NULL OR d.claimed_until<=%(now)s) "
                "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE "
                "p.endpoint=d.endpoint AND p.thread_id=d.thread_id AND p.status=%(pending)s "
                "AND p.seq<d.seq) ORDER BY d.seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
                "AND status=%(pending)s "
                "AND (claimed_until IS NULL OR claimed_until<=%(now)s) RETURNING event_id",
                {
                    "owner": owner,
                    "until": until,
                    "endpoint": endpoint,
                    "pending": _PENDING,
                    "now": now,
                    "limit": max(0, limit),
                },
            ).fetchall()
            return [r["event_id"] for r in rows]

        keys = self.db.write(claim)
        if not keys:
            return []
        return self.db.all(
            f"SELECT {_DELIVERY} FROM webhook_deliveries d JOIN outbox o ON o.id = d.event_id "
            "WHERE d.endpoint=%s AND d.event_id = ANY(%s) ORDER BY o.seq",
            (endpoint, keys),
            _delivery,
        )

    def finish_delivery(
        self, endpoint: str, event_id: str, *, owner: str, outcome: DeliveryOutcome
    ) -> bool:
        delivered = outcome.status is DeliveryStatus.DELIVERED
        return self.db.apply(
            "UPDATE webhook_deliveries SET status=%s, attempts=%s, "
            "next_at=COALESCE(%s::double precision, next_at), last_error=%s, last_status=%s, "
            "delivered_at=%s, updated_at=%s, claimed_by=NULL, claimed_until=NULL "
            "WHERE endpoint=%s AND event_id=%s AND claimed_by=%s AND status=%s",
            (
                outcome.status.value,
                outcome.attempts,
                outcome.next_at,
                outcome.error,
                outcome.http_status,
                outcome.now if delivered else None,
                outcome.now,
                endpoint,
                event_id,
                owner,
                _PENDING,
            ),
            one_row,
        )

    def list_deliveries(self, query: DeliveryQuery) -> list[Delivery]:
        sql = (
            f"SELECT {_DELIVERY} FROM webhook_deliveries d JOIN outbox o ON o.id = d.event_id "
            "WHERE TRUE"
        )
        params: list[Any] = []
        for column, value in (
            ("d.status", query.status),
            ("d.endpoint", query.endpoint),
            ("o.tenant", query.tenant),
            ("o.thread_id", query.thread_id),
            ("o.id", query.event_id),
        ):
            if value is not None:
                sql += f" AND {column}=%s"
                params.append(value)
        sql += " ORDER BY o.seq DESC, d.endpoint LIMIT %s"
        return self.db.all(sql, (*params, max(0, query.limit)), _delivery)

    def retry_delivery(self, endpoint: str, event_id: str, *, now: float) -> bool:
        return self.db.apply(
            "UPDATE webhook_deliveries SET status=%s, attempts=0, next_at=%s, updated_at=%s, "
            "claimed_by=NULL, claimed_until=NULL "
            "WHERE endpoint=%s AND event_id=%s AND status=%s",
            (_PENDING, now, now, endpoint, event_id, DeliveryStatus.DEAD.value),
            one_row,
        )


def _event(row: DictRow) -> OutboxEvent:
    return OutboxEvent(
        id=row["id"],
        type=row["type"],
        thread_id=row["thread_id"],
        tenant=row["tenant"],
        data=row["data"],
        created_at=row["created_at"],
        seq=row["seq"],
    )


def _delivery(row: DictRow) -> Delivery:
    return Delivery(
        endpoint=row["endpoint"],
        event=_event(row),
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        next_at=row["next_at"],
        last_error=row["last_error"],
        last_status=row["last_status"],
        delivered_at=row["delivered_at"],
        updated_at=row["updated_at"],
    )
