"""The outbox and its webhook deliveries in SQLite.

Events are inserted by the other tables' writes, inside their transactions
(``insert_event``); this family reads them, makes each endpoint's deliveries from them
past its cursor, and claims and settles those deliveries with conditional writes. SQLite
has one writer at a time, so seq order is commit order and a cursor never passes an event
that commits later.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from agentrt.store.outbox import (
    Delivery,
    DeliveryOutcome,
    DeliveryQuery,
    DeliveryStatus,
    OutboxEvent,
)
from agentrt.store.sqlite.database import Database

__all__ = ["OutboxTable", "insert_event"]

_PENDING = DeliveryStatus.PENDING.value
_DELIVERY = (
    "d.endpoint, d.status, d.attempts, d.next_at, d.last_error, d.last_status, "
    "d.delivered_at, d.updated_at, o.seq, o.id, o.type, o.thread_id, o.tenant, o.data, "
    "o.created_at"
)


def insert_event(db: sqlite3.Connection, event: OutboxEvent | None) -> None:
    """Write ``event`` in the caller's transaction (nothing for None; an id written before,
    by a re-run of the same change, stays as it was)."""
    if event is None:
        return
    db.execute(
        "INSERT OR IGNORE INTO outbox (id, type, thread_id, tenant, data, created_at) "
        "VALUES (?,?,?,?,?,?)",
        (
            event.id,
            event.type,
            event.thread_id,
            event.tenant,
            json.dumps(event.data),
            event.created_at,
        ),
    )


class OutboxTable:
    """OutboxStore on SQLite."""

    db: Database

    def outbox_events(
        self, *, after: int = 0, limit: int = 500, thread_id: str | None = None
    ) -> list[OutboxEvent]:
        sql, params = "SELECT * FROM outbox WHERE seq > ?", list[Any]([after])
        if thread_id is not None:
            sql += " AND thread_id = ?"
            params.append(thread_id)
        return self.db.all(sql + " ORDER BY seq LIMIT ?", (*params, max(0, limit)), _event)

    def outbox_cursor(self, endpoint: str) -> int:
        found = self.db.one(
            "SELECT seq FROM webhook_cursors WHERE endpoint=?", (endpoint,), lambda r: r["seq"]
        )
        return int(found or 0)

    def add_deliveries(
        self, endpoint: str, events: Sequence[OutboxEvent], *, cursor: int, upto: int, now: float
    ) -> bool:
        with self.db.tx() as db:
            row = db.execute(
                "SELECT seq FROM webhook_cursors WHERE endpoint=?", (endpoint,)
            ).fetchone()
            if (row["seq"] if row else 0) != cursor:
                return False
            db.executemany(
                "INSERT OR IGNORE INTO webhook_deliveries (endpoint, event_id, seq, thread_id, "
                "status, next_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                [(endpoint, e.id, e.seq, e.thread_id, _PENDING, now, now) for e in events],
            )
            db.execute(
                "INSERT INTO webhook_cursors (endpoint, seq) VALUES (?, ?) "
                "ON CONFLICT (endpoint) DO UPDATE SET seq = excluded.seq",
                (endpoint, upto),
            )
        return True

    def claim_deliveries(
        self, endpoint: str, *, owner: str, now: float, until: float, limit: int
    ) -> list[Delivery]:
        with self.db.tx() as db:
            keys = [
                r["event_id"]
                for r in db.execute(
                    "SELECT d.event_id FROM webhook_deliveries d WHERE d.endpoint=? "
                    "AND d.status=? AND d.next_at<=? "
                    "AND (d.claimed_until IS NULL OR d.claimed_until<=?) "
                    "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE "
                    "p.endpoint=d.endpoint AND p.thread_id=d.thread_id AND p.status=? "
                    "AND p.seq<d.seq) ORDER BY d.seq LIMIT ?",
                    (endpoint, _PENDING, now, now, _PENDING, max(0, limit)),
                )
            ]
            db.executemany(
                "UPDATE webhook_deliveries SET claimed_by=?, claimed_until=? "
                "WHERE endpoint=? AND event_id=?",
                [(owner, until, endpoint, key) for key in keys],
            )
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        return self.db.all(
            f"SELECT {_DELIVERY} FROM webhook_deliveries d JOIN outbox o ON o.id = d.event_id "
            f"WHERE d.endpoint=? AND d.event_id IN ({marks}) ORDER BY o.seq",
            (endpoint, *keys),
            _delivery,
        )

    def finish_delivery(
        self, endpoint: str, event_id: str, *, owner: str, outcome: DeliveryOutcome
    ) -> bool:
        delivered = outcome.status is DeliveryStatus.DELIVERED
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE webhook_deliveries SET status=?, attempts=?, "
                "next_at=COALESCE(?, next_at), last_error=?, last_status=?, delivered_at=?, "
                "updated_at=?, claimed_by=NULL, claimed_until=NULL "
                "WHERE endpoint=? AND event_id=? AND claimed_by=? AND status=?",
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
            )
        return cur.rowcount == 1

    def list_deliveries(self, query: DeliveryQuery) -> list[Delivery]:
        sql = (
            f"SELECT {_DELIVERY} FROM webhook_deliveries d JOIN outbox o ON o.id = d.event_id "
            "WHERE 1=1"
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
                sql += f" AND {column}=?"
                params.append(value)
        sql += " ORDER BY o.seq DESC, d.endpoint LIMIT ?"
        return self.db.all(sql, (*params, max(0, query.limit)), _delivery)

    def retry_delivery(self, endpoint: str, event_id: str, *, now: float) -> bool:
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE webhook_deliveries SET status=?, attempts=0, next_at=?, updated_at=?, "
                "claimed_by=NULL, claimed_until=NULL WHERE endpoint=? AND event_id=? AND status=?",
                (_PENDING, now, now, endpoint, event_id, DeliveryStatus.DEAD.value),
            )
        return cur.rowcount == 1


def _event(row: sqlite3.Row) -> OutboxEvent:
    return OutboxEvent(
        id=row["id"],
        type=row["type"],
        thread_id=row["thread_id"],
        tenant=row["tenant"],
        data=json.loads(row["data"]),
        created_at=row["created_at"],
        seq=row["seq"],
    )


def _delivery(row: sqlite3.Row) -> Delivery:
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
