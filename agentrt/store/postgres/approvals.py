"""Approval requests in PostgreSQL: inserted once, decided or expired by conditional updates.

The queue is a keyset page on (requested_at, id): on the index (status, requested_at, id),
or (status, tenant, requested_at, id) for one tenant; a role's requests are found through
the GIN index on ``roles``, every role a request needs.
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import DictRow

from agentrt.approvals.model import ApprovalQuery, ApprovalRequest, ApprovalStatus, Decided
from agentrt.store.outbox import EventType, approval_event
from agentrt.store.postgres.database import (
    Conn,
    Database,
    columns_of,
    doc,
    record_of,
)
from agentrt.store.postgres.outbox import insert_event

__all__ = ["ApprovalsTable", "queue_sql"]

APPROVAL = columns_of(ApprovalRequest)


class ApprovalsTable:
    """ApprovalStore on PostgreSQL."""

    db: Database

    def put_approval(self, req: ApprovalRequest) -> ApprovalRequest:
        """Insert the request unless it exists; return the stored one (re-runs are no-ops)."""

        now = self.db.clock()

        def put(conn: Conn) -> ApprovalRequest:
            if _insert_approval(conn, req):
                insert_event(conn, approval_event(EventType.APPROVAL_REQUESTED, req, now=now))
            # A statement of its own: under READ COMMITTED it sees a row that a racing
            # insert committed while this one waited on the id.
            row = conn.execute(
                f"SELECT {APPROVAL} FROM approvals WHERE id=%s", (req.id,)
            ).fetchone()
            assert row is not None
            return _approval(row)

        return self.db.write(put)

    def get_approval(self, approval_id: str) -> ApprovalRequest | None:
        return self.db.one(
            f"SELECT {APPROVAL} FROM approvals WHERE id=%s", (approval_id,), _approval
        )

    def list_approvals(self, query: ApprovalQuery) -> list[ApprovalRequest]:
        sql, params = queue_sql(query)
        return self.db.all(sql, params, _approval)

    def due_approvals(self, now: float, *, limit: int = 1000) -> list[ApprovalRequest]:
        """Pending requests whose expiry has passed, soonest-expired first."""
        return self.db.all(
            f"SELECT {APPROVAL} FROM approvals WHERE status=%s AND expires_at<=%s "
            "ORDER BY expires_at, id LIMIT %s",
            (ApprovalStatus.PENDING.value, now, max(0, limit)),
            _approval,
        )

    def expire_approval(
        self, approval_id: str, *, now: float, escalation: ApprovalRequest | None = None
    ) -> bool:
        """Mark a pending request expired (and insert its escalation) in one transaction.

        Conditional on the request still being pending, like a decision: of a sweep and a
        decider racing, exactly one wins. False if the request was no longer pending.
        """

        def expire(conn: Conn) -> bool:
            cur = conn.execute(
                "UPDATE approvals SET status=%s, decided_at=%s, comment=%s, escalated_to=%s "
                "WHERE id=%s AND status=%s",
                (
                    ApprovalStatus.EXPIRED.value,
                    now,
                    "expired undecided" + (", escalated" if escalation else ""),
                    escalation.id if escalation else None,
                    approval_id,
                    ApprovalStatus.PENDING.value,
                ),
            )
            if cur.rowcount == 1:
                _tell(conn, EventType.APPROVAL_EXPIRED, approval_id, now=now)
            if cur.rowcount == 1 and escalation is not None:
                _insert_approval(conn, escalation)
                told = approval_event(EventType.APPROVAL_ESCALATED, escalation, now=now)
                insert_event(conn, told)
            return cur.rowcount == 1

        return self.db.write(expire)

    def decide_approval(self, approval_id: str, decided: Decided) -> bool:
        resolved = decided.status is ApprovalStatus.RESOLVED
        now = self.db.clock()

        def decide(conn: Conn) -> bool:
            cur = conn.execute(
                "UPDATE approvals SET status=%s, decided_by=%s, decided_at=%s, comment=%s, "
                "edited_args=%s, result=%s WHERE id=%s AND status=%s",
                (
                    decided.status.value,
                    decided.by,
                    now,
                    decided.comment,
                    doc(decided.edited_args),
                    doc(decided.result) if resolved else None,
                    approval_id,
                    ApprovalStatus.PENDING.value,
                ),
            )
            if cur.rowcount == 1:
                _tell(conn, EventType.APPROVAL_DECIDED, approval_id, now=now)
            return cur.rowcount == 1

        return self.db.write(decide)


def _tell(conn: Conn, kind: EventType, approval_id: str, *, now: float) -> None:
    """The event of ``kind`` about the request as the transaction has just left it."""
    row = conn.execute(f"SELECT {APPROVAL} FROM approvals WHERE id=%s", (approval_id,)).fetchone()
    assert row is not None
    insert_event(conn, approval_event(kind, _approval(row), now=now))


def queue_sql(query: ApprovalQuery) -> tuple[str, list[Any]]:
    """The statement and parameters that read one page of the queue."""
    sql, params = f"SELECT {APPROVAL} FROM approvals WHERE TRUE", list[Any]()
    for column, value in (
        ("status", query.status),
        ("tenant", query.tenant),
        ("thread_id", query.thread_id),
        ("tool", query.tool),
        ("rule_id", query.rule_id),
    ):
        if value is not None:
            sql += f" AND {column}=%s"
            params.append(value)
    if query.requested_before is not None:
        sql += " AND requested_at <= %s"
        params.append(query.requested_before)
    if query.role is not None:
        # A combined requirement is listed under each role it needs.
        sql += " AND roles @> ARRAY[%s::text]"
        params.append(query.role)
    if query.after is not None:
        sql += " AND (requested_at, id) > (%s, %s)"
        params.extend(query.after)
    sql += " ORDER BY requested_at, id LIMIT %s"
    params.append(max(0, query.limit))
    return sql, params


_INSERT_COLUMNS = (
    "id, thread_id, step_id, kind, tool, args, args_digest, rule_id, reason, required_role, "
    "four_eyes, requested_by, tenant, requested_at, expires_at, status, on_expiry, "
    "escalate_to, escalated_from, required_roles, edited_by, edited_from"
)


def _insert_approval(conn: Conn, req: ApprovalRequest) -> bool:
    """Insert ``req`` unless its id exists; True if it was inserted."""
    cur = conn.execute(
        f"INSERT INTO approvals ({_INSERT_COLUMNS}) "
        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
        "ON CONFLICT (id) DO NOTHING",
        (
            req.id,
            req.thread_id,
            req.step_id,
            req.kind,
            req.tool,
            doc(req.args),
            req.args_digest,
            req.rule_id,
            req.reason,
            req.required_role,
            req.four_eyes,
            req.requested_by,
            req.tenant,
            req.requested_at,
            req.expires_at,
            req.status.value,
            req.on_expiry,
            req.escalate_to,
            req.escalated_from,
            list(req.required_roles),
            req.edited_by,
            req.edited_from,
        ),
    )
    return cur.rowcount == 1


def _approval(row: DictRow) -> ApprovalRequest:
    return record_of(ApprovalRequest, row, status=ApprovalStatus, required_roles=tuple)
