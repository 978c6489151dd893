"""A thread's messages in SQLite: queued, taken (one write with the run's move), closed."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from agentrt.approvals.model import ApprovalStatus
from agentrt.records import MessageOpening, MessageRecord, NewMessage, RunRecord
from agentrt.state import TERMINAL, RunStatus
from agentrt.store.sqlite.database import Database
from agentrt.store.sqlite.stop_mark import StopMark

__all__ = ["MessagesTable"]

QUEUED = "queued"
CURRENT = "current"


class MessagesTable:
    """MessageStore on SQLite."""

    db: Database
    _stop_mark: StopMark

    def add_message(
        self, message: NewMessage, *, only_if_idle: bool = False
    ) -> MessageRecord | None:
        now = self.db.clock()
        with self.db.tx() as db:
            index = _next_index(db, message.thread_id)
            if index is None or (only_if_idle and not _idle(db, message.thread_id)):
                return None
            _insert(db, message, index, QUEUED, now)
        if message.interrupt:  # after the commit, as a cancel's (stop_mark)
            self._stop_mark.change()
        return self._message(message.thread_id, index)

    def thread_messages(self, thread_id: str) -> list[MessageRecord]:
        return self.db.all(
            "SELECT * FROM messages WHERE thread_id=? ORDER BY idx", (thread_id,), _message
        )

    def queued_message(self, thread_id: str) -> MessageRecord | None:
        return self.db.one(
            "SELECT * FROM messages WHERE thread_id=? AND status=? "
            "ORDER BY interrupt DESC, idx LIMIT 1",
            (thread_id, QUEUED),
            _message,
        )

    def open_message(self, thread_id: str, opening: MessageOpening) -> RunRecord | None:
        now = self.db.clock()
        lease = opening.lease
        with self.db.tx() as db:
            index = opening.index
            queued = db.execute(
                "SELECT 1 FROM messages WHERE thread_id=? AND idx=? AND status=?",
                (thread_id, index, QUEUED),
            ).fetchone()
            if queued is None:  # taken meanwhile
                return None
            report = _budget_report(db, thread_id, opening)  # before the run's row drops it
            cur = db.execute(
                "UPDATE runs SET status=?, message=?, output=NULL, error=NULL, "
                "budget_report=NULL, cancel_requested=NULL, retry_at=NULL, transient_failures=0, "
                "waited_seconds=waited_seconds+?, updated_at=?, lease_owner=?, lease_host=?, "
                "lease_pid=?, lease_expires_at=? WHERE thread_id=? AND status=? AND message=?",
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
            )
            if cur.rowcount != 1:  # the run moved meanwhile: nothing written
                return None
            if opening.first is not None:
                _insert_first(db, opening.first)
            db.execute(
                "UPDATE messages SET status=?, output=?, error=?, usage=?, ended_at=?, "
                "budget_report=? WHERE thread_id=? AND idx=? AND status=?",
                (
                    opening.closing,
                    opening.output,
                    opening.error,
                    json.dumps(opening.spent),
                    now if opening.ended_at is None else opening.ended_at,
                    report,
                    thread_id,
                    opening.from_message,
                    CURRENT,
                ),
            )
            db.execute(
                "UPDATE messages SET status=?, usage_before=?, started_at=? "
                "WHERE thread_id=? AND idx=?",
                (CURRENT, json.dumps(opening.usage_before), now, thread_id, index),
            )
            if opening.cancel_pending is not None:
                db.execute(
                    "UPDATE approvals SET status=?, decided_at=?, comment=?, superseded=? "
                    "WHERE thread_id=? AND status=?",
                    (
                        ApprovalStatus.CANCELLED.value,
                        now,
                        opening.cancel_pending,
                        opening.cancel_pending,
                        thread_id,
                        ApprovalStatus.PENDING.value,
                    ),
                )
                # A person's decision stays as they gave it (its time is the wait stats
                # count); only that it never ran is new.
                db.executemany(
                    "UPDATE approvals SET status=?, superseded=? "
                    "WHERE id=? AND thread_id=? AND status IN (?, ?)",
                    [
                        (
                            ApprovalStatus.CANCELLED.value,
                            opening.cancel_pending,
                            approval_id,
                            thread_id,
                            ApprovalStatus.APPROVED.value,
                            ApprovalStatus.EDITED.value,
                        )
                        for approval_id in opening.supersede
                    ],
                )
        return self.get_run(thread_id)  # type: ignore[attr-defined,no-any-return]

    def stop_mark(self) -> bytes | None:
        return self._stop_mark.read()

    def stop_requests(self, thread_id: str) -> tuple[str | None, bool]:
        found = self.db.one(
            "SELECT cancel_requested, EXISTS (SELECT 1 FROM messages m WHERE "
            "m.thread_id = r.thread_id AND m.status = ? AND m.interrupt) AS interrupt "
            "FROM runs r WHERE r.thread_id = ?",
            (QUEUED, thread_id),
            lambda row: (row["cancel_requested"], bool(row["interrupt"])),
        )
        return found or (None, False)

    def _message(self, thread_id: str, index: int) -> MessageRecord | None:
        return self.db.one(
            "SELECT * FROM messages WHERE thread_id=? AND idx=?", (thread_id, index), _message
        )


def _next_index(db: sqlite3.Connection, thread_id: str) -> int | None:
    """The index the thread's next message gets; None if there is no such run."""
    row = db.execute(
        "SELECT max(r.message, COALESCE((SELECT max(idx) FROM messages m "
        "WHERE m.thread_id = r.thread_id), 0)) + 1 AS idx FROM runs r WHERE r.thread_id=?",
        (thread_id,),
    ).fetchone()
    return int(row["idx"]) if row is not None else None


def _budget_report(db: sqlite3.Connection, thread_id: str, opening: MessageOpening) -> str | None:
    """The run's budget report (JSON text) if the message the opening closes ended
    budget_exceeded: the message keeps it, for the stops run analytics count."""
    if opening.closing != RunStatus.BUDGET_EXCEEDED.value:
        return None
    row = db.execute("SELECT budget_report FROM runs WHERE thread_id=?", (thread_id,)).fetchone()
    return row["budget_report"] if row is not None else None


def _idle(db: sqlite3.Connection, thread_id: str) -> bool:
    """The thread's run has ended and no message is queued on it."""
    ended = tuple(status.value for status in TERMINAL)
    row = db.execute(
        f"SELECT 1 FROM runs r WHERE r.thread_id=? AND r.status IN ({','.join('?' * len(ended))}) "
        "AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.thread_id = r.thread_id "
        "AND m.status=?)",
        (thread_id, *ended, QUEUED),
    ).fetchone()
    return row is not None


def _insert(
    db: sqlite3.Connection, message: NewMessage, index: int, status: str, now: float
) -> None:
    db.execute(
        "INSERT INTO messages (thread_id, idx, text, principal, status, budget, interrupt, "
        "created_at) VALUES (?,?,?,?,?,?,?,?)",
        (
            message.thread_id,
            index,
            message.text,
            json.dumps(message.principal),
            status,
            json.dumps(message.budget) if message.budget is not None else None,
            message.interrupt,
            now,
        ),
    )


def _insert_first(db: sqlite3.Connection, first: MessageRecord) -> None:
    db.execute(
        "INSERT OR IGNORE INTO messages (thread_id, idx, text, principal, status, usage_before, "
        "created_at, started_at) VALUES (?,?,?,?,?,?,?,?)",
        (
            first.thread_id,
            first.index,
            first.text,
            json.dumps(first.principal),
            CURRENT,  # closed as the opening says, with every later message
            json.dumps(first.usage_before),
            first.created_at,
            first.started_at,
        ),
    )


def _json(raw: Any) -> Any:
    return json.loads(raw) if raw is not None else None


def _message(row: sqlite3.Row) -> MessageRecord:
    return MessageRecord(
        thread_id=row["thread_id"],
        index=row["idx"],
        text=row["text"],
        principal=json.loads(row["principal"]),
        status=row["status"],
        created_at=row["created_at"],
        budget=_json(row["budget"]),
        interrupt=bool(row["interrupt"]),
        usage_before=_json(row["usage_before"]),
        usage=_json(row["usage"]),
        output=row["output"],
        error=row["error"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        budget_report=_json(row["budget_report"]),
    )
