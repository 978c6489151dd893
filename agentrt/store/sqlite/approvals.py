"""Approval requests in SQLite: inserted once, decided or expired by conditional updates."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from agentrt.approvals.model import ApprovalQuery, ApprovalRequest, ApprovalStatus, Decided
from agentrt.store.outbox import EventType, approval_event
from agentrt.store.sqlite.database import Database, record_of
from agentrt.store.sqlite.outbox import insert_event

__all__ = ["ApprovalsTable"]


class ApprovalsTable:
    """ApprovalStore on SQLite."""

    db: Database

    def put_approval(self, req: ApprovalRequest) -> ApprovalRequest:
        """Insert the request unless it exists; return the stored one (re-runs are no-ops)."""
        now = self.db.clock()
        with self.db.tx() as db:
            if _insert_approval(db, req):
                insert_event(db, approval_event(EventType.APPROVAL_REQUESTED, req, now=now))
        stored = self.get_approval(req.id)
        assert stored is not None
        return stored

    def get_approval(self, approval_id: str) -> ApprovalRequest | None:
        return self.db.one("SELECT * FROM approvals WHERE id=?", (approval_id,), _approval)

    def list_approvals(self, query: ApprovalQuery) -> list[ApprovalRequest]:
        sql, params = "SELECT * FROM approvals WHERE 1=1", list[Any]()
        for column, value in (
            ("status", query.status),
            ("tenant", query.tenant),
            ("thread_id", query.thread_id),
            ("tool", query.tool),
            ("rule_id", query.rule_id),
        ):
            if value is not None:
                sql += f" AND {column}=?"
                params.append(value)
        if query.requested_before is not None:
            sql += " AND requested_at <= ?"
            params.append(query.requested_before)
        if query.role is not None:
            # A combined requirement is listed under each role it needs.
            sql += (
                " AND (required_role=? OR (required_roles IS NOT NULL AND EXISTS "
                "(SELECT 1 FROM json_each(required_roles) WHERE value=?)))"
            )
            params += [query.role, query.role]
        if query.after is not None:
            sql += " AND (requested_at, id) > (?, ?)"
            params.extend(query.after)
        sql += " ORDER BY requested_at, id LIMIT ?"
        return self.db.all(sql, (*params, query.limit), _approval)

    def due_approvals(self, now: float, *, limit: int = 1000) -> list[ApprovalRequest]:
        """Pending requests whose expiry has passed, soonest-expired first."""
        return self.db.all(
            "SELECT * FROM approvals WHERE status=? AND expires_at<=? "
            "ORDER BY expires_at, id LIMIT ?",
            (ApprovalStatus.PENDING.value, now, limit),
            _approval,
        )

    def expire_approval(
        self, approval_id: str, *, now: float, escalation: ApprovalRequest | None = None
    ) -> bool:
        """Mark a pending request expired (and insert its escalation) in one transaction.

        Conditional on the request still being pending, like a decision: of a sweep and a
        decider racing, exactly one wins. False if the request was no longer pending.
        """
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE approvals SET status=?, decided_at=?, comment=?, escalated_to=? "
                "WHERE id=? AND status=?",
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
                _tell(db, EventType.APPROVAL_EXPIRED, approval_id, now=now)
            if cur.rowcount == 1 and escalation is not None:
                _insert_approval(db, escalation)
                insert_event(db, approval_event(EventType.APPROVAL_ESCALATED, escalation, now=now))
        return cur.rowcount == 1

    def decide_approval(self, approval_id: str, decided: Decided) -> bool:
        resolved = decided.status is ApprovalStatus.RESOLVED
        now = self.db.clock()
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE approvals SET status=?, decided_by=?, decided_at=?, comment=?, "
                "edited_args=?, result=? WHERE id=? AND status=?",
                (
                    decided.status.value,
                    decided.by,
                    now,
                    decided.comment,
                    json.dumps(decided.edited_args) if decided.edited_args is not None else None,
                    json.dumps(decided.result) if resolved else None,
                    approval_id,
                    ApprovalStatus.PENDING.value,
                ),
            )
            if cur.rowcount == 1:
                _tell(db, EventType.APPROVAL_DECIDED, approval_id, now=now)
        return cur.rowcount == 1


def _tell(db: sqlite3.Connection, kind: EventType, approval_id: str, *, now: float) -> None:
    """The event of ``kind`` about the request as the transaction has just left it."""
    row = db.execute("SELECT * FROM approvals WHERE id=?", (approval_id,)).fetchone()
    insert_event(db, approval_event(kind, _approval(row), now=now))


_APPROVAL_COLUMNS = (
    "id, thread_id, step_id, kind, tool, args, args_digest, rule_id, reason, required_role, "
    "four_eyes, requested_by, tenant, requested_at, expires_at, status, on_expiry, "
    "escalate_to, escalated_from, required_roles, edited_by, edited_from"
)


def _insert_approval(db: sqlite3.Connection, req: ApprovalRequest) -> bool:
    """Insert ``req`` unless its id exists; True if it was inserted."""
    cur = db.execute(
        f"INSERT OR IGNORE INTO approvals ({_APPROVAL_COLUMNS}) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            req.id,
            req.thread_id,
            req.step_id,
            req.kind,
            req.tool,
            json.dumps(req.args),
            req.args_digest,
            req.rule_id,
            req.reason,
            req.required_role,
            int(req.four_eyes),
            req.requested_by,
            req.tenant,
            req.requested_at,
            req.expires_at,
            req.status.value,
            req.on_expiry,
            req.escalate_to,
            req.escalated_from,
            json.dumps(list(req.required_roles)) if req.required_roles else None,
            req.edited_by,
            req.edited_from,
        ),
    )
    return cur.rowcount == 1


def _approval(row: sqlite3.Row) -> ApprovalRequest:
    return record_of(
        ApprovalRequest,
        row,
        args=json.loads,
        edited_args=json.loads,
        result=json.loads,
        four_eyes=bool,
        status=ApprovalStatus,
        required_roles=lambda text: tuple(json.loads(text)),
    )
