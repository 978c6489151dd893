"""The runs table in SQLite: one row a run, changed only by conditional writes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from agentrt.approvals.model import ApprovalStatus
from agentrt.state import TERMINAL, RunStatus, Usage
from agentrt.store.outbox import TOLD_STATUSES, run_event
from agentrt.store.protocols import NewRun, RunChange, RunRecord
from agentrt.store.sqlite.database import Database, record_of
from agentrt.store.sqlite.outbox import insert_event
from agentrt.store.sqlite.stop_mark import StopMark

__all__ = ["RunsTable", "run_record", "write_usage"]

_TERMINAL = tuple(sorted(s.value for s in TERMINAL))

# A run prune may take: finished, last updated before the cutoff, no message queued for it
# (the thread goes on) and no lease held on it (someone is at work on it).
# Parameters: the terminal statuses, the cutoff, now.
_IDLE = (
    f"status IN ({','.join('?' * len(_TERMINAL))}) AND updated_at < ? "
    "AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.thread_id = runs.thread_id "
    "AND m.status = 'queued') AND (lease_owner IS NULL OR lease_expires_at <= ?)"
)

_CHECKPOINT_TABLES = frozenset({"checkpoints", "writes"})
"""LangGraph's SqliteSaver's tables of a thread, in the same file
(agentrt.store.sqlite.checkpoints); made when the saver is first set up."""


class RunsTable:
    """RunStore on SQLite."""

    db: Database
    _stop_mark: StopMark

    def create_run(self, run: NewRun) -> RunRecord | None:
        now = self.db.clock()
        try:
            with self.db.tx() as db:
                lease = run.lease
                db.execute(
                    "INSERT INTO runs (thread_id, status, goal, principal, tenant, budget, usage, "
                    "trace_id, created_at, updated_at, lease_owner, lease_host, lease_pid, "
                    "lease_expires_at, app, tools) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        run.thread_id,
                        RunStatus.PENDING.value,
                        run.goal,
                        json.dumps(run.principal),
                        run.principal.get("tenant"),
                        json.dumps(run.budget),
                        json.dumps(run.usage),
                        run.trace_id,
                        now,
                        now,
                        *(
                            (None, None, None, None)
                            if lease is None
                            else (lease.owner, lease.host, lease.pid, lease.expires_at)
                        ),
                        run.app,
                        None if run.tools is None else json.dumps(list(run.tools)),
                    ),
                )
        except sqlite3.IntegrityError:
            return None
        return self.get_run(run.thread_id)

    def get_run(self, thread_id: str) -> RunRecord | None:
        return self.db.one("SELECT * FROM runs WHERE thread_id=?", (thread_id,), run_record)

    def list_runs(
        self, *, status: str | None = None, tenant: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        sql, params = "SELECT * FROM runs WHERE 1=1", list[Any]()
        if status is not None:
            sql += " AND status=?"
            params.append(status)
        if tenant is not None:
            sql += " AND tenant=?"
            params.append(tenant)
        sql += " ORDER BY created_at DESC, thread_id LIMIT ?"
        return self.db.all(sql, (*params, limit), run_record)

    def change_run(self, thread_id: str, change: RunChange) -> RunRecord | None:
        now = self.db.clock()
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE runs SET status=?, output=COALESCE(?, output), "
                "error=CASE WHEN ? THEN ? ELSE COALESCE(?, error) END, "
                "usage=COALESCE(?, usage), budget_report=COALESCE(?, budget_report), "
                "updated_at=?, waited_seconds=waited_seconds+?, "
                "retry_waited_seconds=retry_waited_seconds+?, retry_at=?, transient_failures=?, "
                "denials=COALESCE(?, denials) "
                "WHERE thread_id=? AND status=?",
                (
                    change.status.value,
                    change.output,
                    change.clear_error,
                    change.error,
                    change.error,
                    json.dumps(change.usage) if change.usage is not None else None,
                    json.dumps(dict(change.budget_report))
                    if change.budget_report is not None
                    else None,
                    now,
                    change.add_waited,
                    change.add_retry_waited,
                    change.retry_at,
                    change.transient_failures,
                    json.dumps(dict(change.denials)) if change.denials is not None else None,
                    thread_id,
                    change.from_status.value,
                ),
            )
            if cur.rowcount != 1:
                return None
            if change.status is not change.from_status and change.status in TOLD_STATUSES:
                # Told in the same transaction: no event for a move that rolled back.
                row = db.execute("SELECT * FROM runs WHERE thread_id=?", (thread_id,)).fetchone()
                moved = run_record(row)
                insert_event(db, run_event(moved, from_status=change.from_status, now=now))
            if change.cancel_pending is not None:
                db.execute(
                    "UPDATE approvals SET status=?, decided_at=?, comment=? "
                    "WHERE thread_id=? AND status=?",
                    (
                        ApprovalStatus.CANCELLED.value,
                        now,
                        change.cancel_pending,
                        thread_id,
                        ApprovalStatus.PENDING.value,
                    ),
                )
        return self.get_run(thread_id)

    def unfinished_runs(self) -> list[str]:
        with self.db.read() as db:
            rows = db.execute(
                "SELECT thread_id FROM runs r WHERE status IN (?, ?) OR (status = ? AND "
                "(cancel_requested IS NOT NULL OR NOT EXISTS (SELECT 1 FROM approvals a "
                "WHERE a.thread_id = r.thread_id AND a.status = ?))) "
                "ORDER BY created_at, thread_id",
                (
                    RunStatus.RUNNING.value,
                    RunStatus.PENDING.value,
                    RunStatus.AWAITING_APPROVAL.value,
                    ApprovalStatus.PENDING.value,
                ),
            ).fetchall()
        return [r["thread_id"] for r in rows]

    def due_retries(self, now: float) -> list[str]:
        with self.db.read() as db:
            rows = db.execute(
                "SELECT thread_id FROM runs WHERE status=? AND retry_at<=? "
                "ORDER BY retry_at, thread_id",
                (RunStatus.WAITING_RETRY.value, now),
            ).fetchall()
        return [r["thread_id"] for r in rows]

    def set_usage(self, thread_id: str, usage: Usage) -> None:
        with self.db.tx() as db:
            write_usage(db, thread_id, usage)

    def swap_usage(self, thread_id: str, expected: Usage, usage: Usage) -> bool:
        with self.db.tx() as db:  # the look and the write in one write transaction
            row = db.execute("SELECT usage FROM runs WHERE thread_id=?", (thread_id,)).fetchone()
            if row is None or json.loads(row["usage"]) != expected:
                return False
            write_usage(db, thread_id, usage)
        return True

    def set_budget(self, thread_id: str, budget: Mapping[str, Any]) -> None:
        with self.db.tx() as db:
            db.execute(
                "UPDATE runs SET budget=?, updated_at=? WHERE thread_id=?",
                (json.dumps(dict(budget)), self.db.clock(), thread_id),
            )

    def request_cancel(self, thread_id: str, reason: str) -> None:
        with self.db.tx() as db:
            db.execute(
                "UPDATE runs SET cancel_requested=? WHERE thread_id=? AND cancel_requested IS NULL",
                (reason, thread_id),
            )
        self._stop_mark.change()  # after the commit: a run that sees the mark finds the request

    def cancel_requested(self, thread_id: str) -> str | None:
        with self.db.read() as db:
            row = db.execute(
                "SELECT cancel_requested FROM runs WHERE thread_id=?", (thread_id,)
            ).fetchone()
        return row["cancel_requested"] if row else None

    def run_trace(self, thread_id: str) -> tuple[str | None, str | None]:
        with self.db.read() as db:
            row = db.execute(
                "SELECT trace_id, trace_span_id FROM runs WHERE thread_id=?", (thread_id,)
            ).fetchone()
        return (row["trace_id"], row["trace_span_id"]) if row else (None, None)

    def set_trace(self, thread_id: str, trace_id: str, span_id: str | None) -> None:
        with self.db.tx() as db:
            db.execute(
                "UPDATE runs SET trace_id=?, trace_span_id=? WHERE thread_id=?",
                (trace_id, span_id, thread_id),
            )

    def prunable_runs(self, *, before: float, keep_latest: int = 0) -> list[str]:
        with self.db.read() as db:
            newest = {
                r["thread_id"]
                for r in db.execute(
                    "SELECT thread_id FROM runs ORDER BY created_at DESC, thread_id LIMIT ?",
                    (max(0, keep_latest),),
                )
            }
            rows = db.execute(
                f"SELECT thread_id FROM runs WHERE {_IDLE} ORDER BY created_at, thread_id",
                (*_TERMINAL, before, self.db.clock()),
            ).fetchall()
        return [r["thread_id"] for r in rows if r["thread_id"] not in newest]

    def delete_run(self, thread_id: str, *, idle_before: float | None = None) -> bool:
        # The look and the delete in one write transaction: a message sent, a lease taken
        # or a move made after prune chose the run finds it still there, or none at all.
        with self.db.tx() as db:
            if idle_before is None:
                found = "SELECT trace_id FROM runs WHERE thread_id=?"
                params: tuple[Any, ...] = (thread_id,)
            else:
                found = f"SELECT trace_id FROM runs WHERE thread_id=? AND {_IDLE}"
                params = (thread_id, *_TERMINAL, idle_before, self.db.clock())
            trace = db.execute(found, params).fetchone()
            if trace is None:
                return False
            # Approvals, effects, model calls, messages, artifacts and events go with the
            # row (ON DELETE CASCADE); spans are kept by trace.
            db.execute("DELETE FROM spans WHERE thread_id=?", (thread_id,))
            if trace["trace_id"]:
                db.execute("DELETE FROM spans WHERE trace_id=?", (trace["trace_id"],))
            db.execute("DELETE FROM runs WHERE thread_id=?", (thread_id,))
            # The graph's state in the same transaction: a process dying midway leaves the
            # run whole, never its checkpoints under an id that names no run any more.
            for table in sorted(_CHECKPOINT_TABLES & _tables(db)):
                db.execute(f"DELETE FROM {table} WHERE thread_id=?", (thread_id,))
        return True


def _tables(db: sqlite3.Connection) -> set[str]:
    """The file's tables: a store opened without its checkpointer may have none of the
    saver's yet."""
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def run_record(row: sqlite3.Row) -> RunRecord:
    """The record a runs row makes."""
    return record_of(
        RunRecord,
        row,
        status=RunStatus,
        principal=json.loads,
        budget=json.loads,
        usage=json.loads,
        budget_report=json.loads,
        tools=lambda text: tuple(json.loads(text)),
    )


def write_usage(db: sqlite3.Connection | sqlite3.Cursor, thread_id: str, usage: Usage) -> None:
    """The run's usage onto its row, in the caller's transaction: ``set_usage``'s, or a
    checkpoint's that carries it (agentrt.store.sqlite.checkpoints)."""
    db.execute("UPDATE runs SET usage=? WHERE thread_id=?", (json.dumps(usage), thread_id))
