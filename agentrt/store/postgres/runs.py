"""The runs table in PostgreSQL: one row a run, changed only by conditional writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg.rows import DictRow

from agentrt.approvals.model import ApprovalStatus
from agentrt.state import TERMINAL, RunStatus, Usage
from agentrt.store.outbox import TOLD_STATUSES, run_event
from agentrt.store.postgres.database import Conn, Cursor, Database, columns_of, doc, record_of
from agentrt.store.postgres.outbox import insert_event
from agentrt.store.protocols import NewRun, RunChange, RunRecord

__all__ = ["RunsTable", "run_record"]

RUN = columns_of(RunRecord)

_TERMINAL = sorted(s.value for s in TERMINAL)

# A run prune may take: finished, last updated before the cutoff, no message queued for it
# (the thread goes on) and no lease held on it (someone is at work on it).
# Parameters: the terminal statuses, the cutoff, now.
_IDLE = (
    "status = ANY(%s) AND updated_at < %s "
    "AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.thread_id = runs.thread_id "
    "AND m.status = 'queued') AND (lease_owner IS NULL OR lease_expires_at <= %s)"
)

# The run's row if {idle} holds, and its spans with it: approvals, effects, model calls,
# messages, artifacts and events go with the row (ON DELETE CASCADE); spans are kept by
# trace, and a run's trace may hold spans written before its thread was. One row read back
# a row deleted. Parameters: the thread id, then {idle}'s.
_DELETE = """
WITH gone AS (DELETE FROM runs WHERE thread_id = %s AND {idle} RETURNING thread_id, trace_id),
spans_gone AS (
    DELETE FROM spans WHERE thread_id IN (SELECT thread_id FROM gone)
    OR trace_id IN (SELECT trace_id FROM gone WHERE trace_id IS NOT NULL)
)
SELECT thread_id FROM gone
"""

_CHECKPOINT_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
"""LangGraph's PostgresSaver's tables of a thread, which opening the store made
(agentrt.store.postgres.migrating)."""

# The move and the cancelling of the run's pending requests are one statement: both happen,
# or (the run moved meanwhile) neither.
_CHANGE = f"""
WITH moved AS (
    UPDATE runs SET
        status = %(status)s,
        output = COALESCE(%(output)s::text, output),
        error = CASE WHEN %(clear_error)s THEN %(error)s::text
                     ELSE COALESCE(%(error)s::text, error) END,
        usage = COALESCE(%(usage)s::json, usage),
        budget_report = COALESCE(%(budget_report)s::json, budget_report),
        updated_at = %(now)s,
        waited_seconds = waited_seconds + %(add_waited)s,
        retry_waited_seconds = retry_waited_seconds + %(add_retry_waited)s,
        retry_at = %(retry_at)s::double precision,
        transient_failures = %(transient_failures)s,
        denials = COALESCE(%(denials)s::json, denials)
    WHERE thread_id = %(thread_id)s AND status = %(from_status)s
    RETURNING {RUN}
), cancelled AS (
    UPDATE approvals SET status = %(cancelled)s, decided_at = %(now)s,
        comment = %(cancel_pending)s::text
    WHERE %(cancel_pending)s::text IS NOT NULL AND EXISTS (SELECT 1 FROM moved)
        AND thread_id = %(thread_id)s AND status = %(pending)s
)
SELECT * FROM moved
"""


class RunsTable:
    """RunStore on PostgreSQL."""

    db: Database

    def create_run(self, run: NewRun) -> RunRecord | None:
        now = self.db.clock()
        lease = run.lease
        params = (
            run.thread_id,
            RunStatus.PENDING.value,
            run.goal,
            doc(run.principal),
            run.principal.get("tenant"),
            doc(run.budget),
            doc(run.usage),
            run.trace_id,
            now,
            now,
            *(
                (None, None, None, None)
                if lease is None
                else (lease.owner, lease.host, lease.pid, lease.expires_at)
            ),
            run.app,
            None if run.tools is None else list(run.tools),
        )
        return self.db.apply(
            "INSERT INTO runs (thread_id, status, goal, principal, tenant, budget, usage, "
            "trace_id, created_at, updated_at, lease_owner, lease_host, lease_pid, "
            "lease_expires_at, app, tools) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::text[]) "
            f"ON CONFLICT (thread_id) DO NOTHING RETURNING {RUN}",
            params,
            _returned,
        )

    def get_run(self, thread_id: str) -> RunRecord | None:
        return self.db.one(f"SELECT {RUN} FROM runs WHERE thread_id=%s", (thread_id,), run_record)

    def list_runs(
        self, *, status: str | None = None, tenant: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        sql, params = f"SELECT {RUN} FROM runs WHERE TRUE", list[Any]()
        if status is not None:
            sql += " AND status=%s"
            params.append(status)
        if tenant is not None:
            sql += " AND tenant=%s"
            params.append(tenant)
        sql += " ORDER BY created_at DESC, thread_id LIMIT %s"
        return self.db.all(sql, (*params, max(0, limit)), run_record)

    def change_run(self, thread_id: str, change: RunChange) -> RunRecord | None:
        now = self.db.clock()
        params = {
            "thread_id": thread_id,
            "from_status": change.from_status.value,
            "status": change.status.value,
            "output": change.output,
            "clear_error": change.clear_error,
            "error": change.error,
            "usage": doc(change.usage),
            "budget_report": doc(
                dict(change.budget_report) if change.budget_report is not None else None
            ),
            "now": now,
            "add_waited": change.add_waited,
            "add_retry_waited": change.add_retry_waited,
            "retry_at": change.retry_at,
            "transient_failures": change.transient_failures,
            "cancel_pending": change.cancel_pending,
            "denials": doc(dict(change.denials) if change.denials is not None else None),
            "cancelled": ApprovalStatus.CANCELLED.value,
            "pending": ApprovalStatus.PENDING.value,
        }
        if change.status is change.from_status or change.status not in TOLD_STATUSES:
            return self.db.apply(_CHANGE, params, _returned)

        def move(conn: Conn) -> RunRecord | None:
            # Told in the same transaction: no event for a move that rolled back.
            moved = _returned(conn.execute(_CHANGE, params))
            if moved is not None:
                insert_event(conn, run_event(moved, from_status=change.from_status, now=now))
            return moved

        return self.db.write(move)

    def unfinished_runs(self) -> list[str]:
        return self.db.all(
            "SELECT thread_id FROM runs r WHERE status IN (%s, %s) OR (status = %s AND "
            "(cancel_requested IS NOT NULL OR NOT EXISTS (SELECT 1 FROM approvals a "
            "WHERE a.thread_id = r.thread_id AND a.status = %s))) "
            "ORDER BY created_at, thread_id",
            (
                RunStatus.RUNNING.value,
                RunStatus.PENDING.value,
                RunStatus.AWAITING_APPROVAL.value,
                ApprovalStatus.PENDING.value,
            ),
            _thread_id,
        )

    def due_retries(self, now: float) -> list[str]:
        return self.db.all(
            "SELECT thread_id FROM runs WHERE status=%s AND retry_at<=%s "
            "ORDER BY retry_at, thread_id",
            (RunStatus.WAITING_RETRY.value, now),
            _thread_id,
        )

    def set_usage(self, thread_id: str, usage: Usage) -> None:
        self.db.execute("UPDATE runs SET usage=%s WHERE thread_id=%s", (doc(usage), thread_id))

    def swap_usage(self, thread_id: str, expected: Usage, usage: Usage) -> bool:
        # json has no equality; jsonb's is by value (key order and 1 against 1.0 aside).
        # Committed once (apply): run again, it would find its own write and say False.
        return self.db.apply(
            "UPDATE runs SET usage=%s WHERE thread_id=%s AND usage::jsonb = %s::jsonb",
            (doc(usage), thread_id, doc(expected)),
            lambda cur: cur.rowcount == 1,
        )

    def set_budget(self, thread_id: str, budget: Mapping[str, Any]) -> None:
        self.db.execute(
            "UPDATE runs SET budget=%s, updated_at=%s WHERE thread_id=%s",
            (doc(dict(budget)), self.db.clock(), thread_id),
        )

    def request_cancel(self, thread_id: str, reason: str) -> None:
        self.db.execute(
            "UPDATE runs SET cancel_requested=%s WHERE thread_id=%s AND cancel_requested IS NULL",
            (reason, thread_id),
        )

    def cancel_requested(self, thread_id: str) -> str | None:
        return self.db.one(
            "SELECT cancel_requested FROM runs WHERE thread_id=%s",
            (thread_id,),
            lambda row: row["cancel_requested"],
        )

    def run_trace(self, thread_id: str) -> tuple[str | None, str | None]:
        found = self.db.one(
            "SELECT trace_id, trace_span_id FROM runs WHERE thread_id=%s",
            (thread_id,),
            lambda row: (row["trace_id"], row["trace_span_id"]),
        )
        return found or (None, None)

    def set_trace(self, thread_id: str, trace_id: str, span_id: str | None) -> None:
        self.db.execute(
            "UPDATE runs SET trace_id=%s, trace_span_id=%s WHERE thread_id=%s",
            (trace_id, span_id, thread_id),
        )

    def prunable_runs(self, *, before: float, keep_latest: int = 0) -> list[str]:
        return self.db.all(
            f"SELECT thread_id FROM runs WHERE {_IDLE} "
            "AND thread_id NOT IN (SELECT thread_id FROM runs "
            "ORDER BY created_at DESC, thread_id LIMIT %s) "
            "ORDER BY created_at, thread_id",
            (_TERMINAL, before, self.db.clock(), max(0, keep_latest)),
            _thread_id,
        )

    def delete_run(self, thread_id: str, *, idle_before: float | None = None) -> bool:
        def delete(conn: Conn) -> bool:
            # The row locked first: a message being added holds it until its commit, and
            # the look below, a statement of its own, then sees that message.
            locked = conn.execute("SELECT 1 FROM runs WHERE thread_id=%s FOR UPDATE", (thread_id,))
            if locked.fetchone() is None:
                return False
            if idle_before is None:
                gone = conn.execute(_DELETE.format(idle="TRUE"), (thread_id,))
            else:
                idle = (_TERMINAL, idle_before, self.db.clock())
                gone = conn.execute(_DELETE.format(idle=_IDLE), (thread_id, *idle))
            if gone.fetchone() is None:
                return False
            # The graph's state in the same transaction: a process dying midway leaves the
            # run whole, never its checkpoints under an id that names no run any more.
            for table in _CHECKPOINT_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE thread_id = %s", (thread_id,))
            return True

        return self.db.write(delete)


def _returned(cur: Cursor) -> RunRecord | None:
    row = cur.fetchone()
    return run_record(row) if row is not None else None


def _thread_id(row: DictRow) -> str:
    return str(row["thread_id"])


def run_record(row: DictRow) -> RunRecord:
    """The record a runs row (its RUN columns) makes."""
    return record_of(RunRecord, row, status=RunStatus, tools=tuple)
