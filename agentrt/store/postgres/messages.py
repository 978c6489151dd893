"""A thread's messages in PostgreSQL: queued, taken (one transaction with the run's move),
closed."""

from __future__ import annotations

from typing import Any

from psycopg.rows import DictRow

from agentrt.approvals.model import ApprovalStatus
from agentrt.records import MessageOpening, MessageRecord, NewMessage, RunRecord
from agentrt.state import TERMINAL, RunStatus
from agentrt.store.postgres.database import Conn, Database, columns_of, doc, record_of

__all__ = ["MessagesTable"]

QUEUED = "queued"
CURRENT = "current"
_RUN = columns_of(RunRecord)

# The index a thread's next message gets (no row: no such run). The run's row is locked,
# so two messages sent at once are numbered one after the other.
_NEXT = """
SELECT greatest(r.message, COALESCE((SELECT max(idx) FROM messages m
                                     WHERE m.thread_id = r.thread_id), 0)) + 1 AS idx
FROM runs r WHERE r.thread_id = %s FOR UPDATE
"""

_INSERT = """
INSERT INTO messages (thread_id, idx, text, principal, status, budget, interrupt, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""


class MessagesTable:
    """MessageStore on PostgreSQL."""

    db: Database

    def add_message(
        self, message: NewMessage, *, only_if_idle: bool = False
    ) -> MessageRecord | None:
        now = self.db.clock()

        def add(conn: Conn) -> int | None:
            index = _next_index(conn, message.thread_id)  # the run's row locked
            if index is None or (only_if_idle and not _idle(conn, message.thread_id)):
                return None
            _insert(conn, message, index, QUEUED, now)
            return index

        index = self.db.write(add)
        if index is None:
            return None
        return self.db.one(
            "SELECT * FROM messages WHERE thread_id=%s AND idx=%s",
            (message.thread_id, index),
            _message,
        )

    def thread_messages(self, thread_id: str) -> list[MessageRecord]:
        return self.db.all(
            "SELECT * FROM messages WHERE thread_id=%s ORDER BY idx", (thread_id,), _message
        )

    def queued_message(self, thread_id: str) -> MessageRecord | None:
        return self.db.one(
            "SELECT * FROM messages WHERE thread_id=%s AND status=%s "
            "ORDER BY interrupt DESC, idx LIMIT 1",
            (thread_id, QUEUED),
            _message,
        )

    def open_message(self, thread_id: str, opening: MessageOpening) -> RunRecord | None:
        now = self.db.clock()
        return self.db.write(lambda conn: _open(conn, thread_id, opening, now))

    def stop_mark(self) -> None:
        return None  # workers on other machines: each look reads

    def stop_requests(self, thread_id: str) -> tuple[str | None, bool]:
        found = self.db.one(
            "SELECT cancel_requested, EXISTS (SELECT 1 FROM messages m WHERE "
            "m.thread_id = r.thread_id AND m.status = %s AND m.interrupt) AS interrupt "
            "FROM runs r WHERE r.thread_id = %s",
            (QUEUED, thread_id),
            lambda row: (row["cancel_requested"], bool(row["interrupt"])),
        )
        return found or (None, False)


def _open(conn: Conn, thread_id: str, opening: MessageOpening, now: float) -> RunRecord | None:
    """The opening's writes, in the caller's transaction; None (and nothing kept: the
    transaction rolls back) if the run or the queued message moved meanwhile."""
    lease = opening.lease
    index = opening.index
    queued = conn.execute(
        "SELECT 1 FROM messages WHERE thread_id=%s AND idx=%s AND status=%s FOR UPDATE",
        (thread_id, index, QUEUED),
    ).fetchone()
    if queued is None:  # taken meanwhile
        return None
    report = None
    if opening.closing == RunStatus.BUDGET_EXCEEDED.value:
        # What stopped the message, read before the run's row drops it; the row locked,
        # so it is the report the move below replaces (or the move finds nothing).
        stopped = conn.execute(
            "SELECT budget_report FROM runs WHERE thread_id=%s AND status=%s AND message=%s "
            "FOR UPDATE",
            (thread_id, opening.from_status.value, opening.from_message),
        ).fetchone()
        if stopped is None:  # the run moved meanwhile
            return None
        report = stopped["budget_report"]
    moved = conn.execute(
        "UPDATE runs SET status=%s, message=%s, output=NULL, error=NULL, budget_report=NULL, "
        "cancel_requested=NULL, retry_at=NULL, transient_failures=0, "
        "waited_seconds=waited_seconds+%s, updated_at=%s, lease_owner=%s, lease_host=%s, "
        "lease_pid=%s, lease_expires_at=%s WHERE thread_id=%s AND status=%s AND message=%s "
        f"RETURNING {_RUN}",
        (
            RunStatus.RUNNING.value,
            index,
            opening.add_waited,
            now,
            lease.owner,
            lease.host,
            lease.pid,
            lease.expires_at,
            thread_id,
            opening.from_status.value,
            opening.from_message,
        ),
    ).fetchone()
    if moved is None:
        return None
    if (first := opening.first) is not None:
        conn.execute(
            "INSERT INTO messages (thread_id, idx, text, principal, status, usage_before, "
            "created_at, started_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
            (
                first.thread_id,
                first.index,
                first.text,
                doc(first.principal),
                CURRENT,  # closed as the opening says, with every later message
                doc(first.usage_before),
                first.created_at,
                first.started_at,
            ),
        )
    conn.execute(
        "UPDATE messages SET status=%s, output=%s, error=%s, usage=%s, ended_at=%s, "
        "budget_report=%s WHERE thread_id=%s AND idx=%s AND status=%s",
        (
            opening.closing,
            opening.output,
            opening.error,
            doc(opening.spent),
            now if opening.ended_at is None else opening.ended_at,
            doc(report),
            thread_id,
            opening.from_message,
            CURRENT,
        ),
    )
    conn.execute(
        "UPDATE messages SET status=%s, usage_before=%s, started_at=%s "
        "WHERE thread_id=%s AND idx=%s",
        (CURRENT, doc(opening.usage_before), now, thread_id, index),
    )
    if opening.cancel_pending is not None:
        conn.execute(
            "UPDATE approvals SET status=%s, decided_at=%s, comment=%s, superseded=%s "
            "WHERE thread_id=%s AND status=%s",
            (
                ApprovalStatus.CANCELLED.value,
                now,
                opening.cancel_pending,
                opening.cancel_pending,
                thread_id,
                ApprovalStatus.PENDING.value,
            ),
        )
        if opening.supersede:
            # A person's decision stays as they gave it (its time is the wait stats
            # count); only that it never ran is new.
            conn.execute(
                "UPDATE approvals SET status=%s, superseded=%s "
                "WHERE id = ANY(%s) AND thread_id=%s AND status = ANY(%s)",
                (
                    ApprovalStatus.CANCELLED.value,
                    opening.cancel_pending,
                    list(opening.supersede),
                    thread_id,
                    [ApprovalStatus.APPROVED.value, ApprovalStatus.EDITED.value],
                ),
            )
    return record_of(RunRecord, moved, status=RunStatus, tools=tuple)


def _next_index(conn: Conn, thread_id: str) -> int | None:
    row = conn.execute(_NEXT, (thread_id,)).fetchone()
    return int(row["idx"]) if row is not None else None


def _idle(conn: Conn, thread_id: str) -> bool:
    """The thread's run has ended and no message is queued on it (its row locked by
    _next_index, so no other message is kept meanwhile)."""
    row = conn.execute(
        "SELECT 1 FROM runs r WHERE r.thread_id=%s AND r.status = ANY(%s) "
        "AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.thread_id = r.thread_id "
        "AND m.status=%s)",
        (thread_id, [status.value for status in TERMINAL], QUEUED),
    ).fetchone()
    return row is not None


def _insert(conn: Conn, message: NewMessage, index: int, status: str, now: float) -> None:
    conn.execute(
        _INSERT,
        (
            message.thread_id,
            index,
            message.text,
            doc(message.principal),
            status,
            doc(message.budget),
            message.interrupt,
            now,
        ),
    )


def _message(row: DictRow) -> MessageRecord:
    values: dict[str, Any] = dict(row)
    values["index"] = values.pop("idx")
    found: MessageRecord = record_of(MessageRecord, values)
    return found
