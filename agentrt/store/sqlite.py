"""The SQLite store: one file holding LangGraph's checkpoints and agentrt's own tables.

One connection per Store, shared across threads under a lock; every write is its own
short transaction, so a process killed at any instant leaves the file consistent.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agentrt.approvals import ApprovalRequest, ApprovalStatus
from agentrt.errors import ConfigError, RunBusy
from agentrt.state import TERMINAL, RunStatus, Usage, check_transition
from agentrt.store.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "LOCK_PATIENCE",
    "EffectRecord",
    "LeaseOwner",
    "RunRecord",
    "Store",
    "begin_waiting",
    "connect",
    "locked",
    "retry_locked",
]

BUSY_TIMEOUT_MS = 10_000
_T = TypeVar("_T")
_sleep = time.sleep  # between tries of a locked write; tests count the tries through it


def connect(path: str | Path, *, autocommit: bool = True) -> sqlite3.Connection:
    """Open the file with the pragmas every agentrt connection uses.

    autocommit=False gives Python's implicit transactions, which LangGraph's SqliteSaver
    expects (it commits after each checkpoint's statements).
    """
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    if autocommit:
        conn.isolation_level = None
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")
    # NORMAL is durable across process crashes in WAL mode; only power loss can drop the
    # last commits, and that is the trade SQLite documents for WAL.
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


LOCK_PATIENCE = 120.0
"""Seconds a write keeps trying past busy_timeout while another process holds SQLite's
write lock (a backup, a long migration, a stuck process), before it gives up."""


def locked(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" / "busy": another writer, not a fault."""
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def retry_locked(attempt: Callable[[], _T], *, undo: Callable[[], None] | None = None) -> _T:
    """``attempt()``, tried again with backoff while SQLite says the database is locked.

    Each try already waited busy_timeout; between tries ``undo`` rolls back what a failed
    one left open. Past LOCK_PATIENCE the error goes up: the run that wrote it then waits
    to be retried (status waiting_retry), it does not fail.
    """
    waited, pause = 0.0, 0.05
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            if not locked(exc) or waited >= LOCK_PATIENCE:
                raise
            if undo is not None:
                undo()
            _sleep(pause)
            waited += pause + BUSY_TIMEOUT_MS / 1000
            pause = min(pause * 2, 2.0)


def begin_waiting(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, retried while another process holds the write lock."""
    retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))


@dataclass(frozen=True, slots=True)
class LeaseOwner:
    """Identity of the process driving a run: host and pid let a dead owner be spotted."""

    token: str
    host: str
    pid: int

    @classmethod
    def this_process(cls, token: str) -> LeaseOwner:
        return cls(token=token, host=socket.gethostname(), pid=os.getpid())

    @property
    def label(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of the runs table."""

    thread_id: str
    status: RunStatus
    goal: str
    principal: dict[str, Any]
    tenant: str | None
    budget: dict[str, Any]
    usage: Usage
    output: str | None
    error: str | None
    trace_id: str | None
    created_at: float
    updated_at: float
    lease_owner: str | None
    budget_report: dict[str, Any] | None = None
    waited_seconds: float = 0.0
    """Time spent in awaiting_approval, summed over every gate."""
    cancel_requested: str | None = None
    """Why someone asked to cancel the run while another process drove it; the driver
    stops at its next step."""
    retry_at: float | None = None
    """For status waiting_retry: when the run may be carried on again."""
    transient_failures: int = 0
    """Failures that may pass, in a row (the wait before the next try grows with them)."""
    retry_waited_seconds: float = 0.0
    """Time spent in waiting_retry, summed."""


@dataclass(frozen=True, slots=True)
class EffectRecord:
    """One row of the effects ledger."""

    key: str
    thread_id: str
    step_id: str
    tool: str
    status: str
    """started, done, failed, or retry (a person said the in-doubt attempt did not act)."""
    result: Any
    error: str | None
    error_kind: str | None = None
    """The error contract kind of a failure: transient, permanent or timeout."""
    attempts: int = 1
    """How many times the key was reserved (each resume or retry decision adds one)."""
    retries: int = 0
    """Transient retries within the last attempt."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed child that its parent has not reaped yet still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class Store:
    """agentrt's tables in one SQLite file: runs, approvals, effects."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self.clock = clock
        self._lock = threading.RLock()
        self._conn = connect(self.path)
        self._conn.row_factory = sqlite3.Row
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction. IMMEDIATE takes the write lock up front: no upgrade deadlocks."""
        with self._lock:
            begin_waiting(self._conn)
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS agentrt_meta (key TEXT PRIMARY KEY, value TEXT)")
            row = db.execute("SELECT value FROM agentrt_meta WHERE key='schema_version'").fetchone()
            version = int(row["value"]) if row else 0
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path!r} has agentrt schema version {version}, newer than this "
                    f"agentrt understands ({SCHEMA_VERSION}); upgrade agentrt"
                )
            for step in MIGRATIONS[version:]:
                for statement in step.split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(
                "INSERT OR REPLACE INTO agentrt_meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    def redaction_salt(self) -> str:
        """This file's own key for the Redactor's hash mode, made once at random.

        A salt everyone knows would let anyone hash guesses (a card number, an email) and
        match them against hashed content; one per store keeps digests comparable within
        the store and useless outside it.
        """
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO agentrt_meta (key, value) VALUES ('redaction_salt', ?)",
                (secrets.token_hex(16),),
            )
            row = db.execute("SELECT value FROM agentrt_meta WHERE key='redaction_salt'").fetchone()
        return str(row["value"])

    @property
    def schema_version(self) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM agentrt_meta WHERE key='schema_version'"
            ).fetchone()
        return int(row["value"])

    # runs ---------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        thread_id: str,
        goal: str,
        principal: dict[str, Any],
        budget: dict[str, Any],
        usage: Usage,
        trace_id: str | None = None,
    ) -> RunRecord:
        now = self.clock()
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO runs (thread_id, status, goal, principal, tenant, budget, usage, "
                    "trace_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        thread_id,
                        RunStatus.PENDING.value,
                        goal,
                        json.dumps(principal),
                        principal.get("tenant"),
                        json.dumps(budget),
                        json.dumps(usage),
                        trace_id,
                        now,
                        now,
                    ),
                )
        except sqlite3.IntegrityError:
            raise ConfigError(
                f"thread id {thread_id!r} already names a run in {self.path!r}; pass a new id "
                f"(or None for a fresh one), or continue that run with rt.resume({thread_id!r})"
            ) from None
        record = self.get_run(thread_id)
        assert record is not None
        return record

    def get_run(self, thread_id: str) -> RunRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM runs WHERE thread_id=?", (thread_id,)
            ).fetchone()
        return _run_record(row) if row else None

    def list_runs(
        self, *, status: str | None = None, tenant: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        sql, params = "SELECT * FROM runs WHERE 1=1", []
        if status is not None:
            sql += " AND status=?"
            params.append(status)
        if tenant is not None:
            sql += " AND tenant=?"
            params.append(tenant)
        sql += " ORDER BY created_at DESC, thread_id LIMIT ?"
        with self._lock:
            rows = self._conn.execute(sql, (*params, limit)).fetchall()
        return [_run_record(r) for r in rows]

    def unfinished_runs(self) -> list[str]:
        """Runs a process may have left mid-way, oldest first: running, pending, or stopped
        at a gate whose every request is decided (decided, but never carried on) or whose
        cancel was asked while another process drove it."""
        with self._lock:
            rows = self._conn.execute(
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

    def set_status(
        self,
        thread_id: str,
        status: RunStatus,
        *,
        output: str | None = None,
        error: str | None = None,
        usage: Usage | None = None,
        budget_report: Mapping[str, Any] | None = None,
        retry_at: float | None = None,
    ) -> RunRecord:
        """Move a run to ``status``, checked against the transition table in one transaction.

        ``retry_at``: for waiting_retry, when the run may go on.
        """
        with self._tx() as db:
            row = db.execute(
                "SELECT status, updated_at FROM runs WHERE thread_id=?", (thread_id,)
            ).fetchone()
            if row is None:
                raise KeyError(thread_id)
            # Staying put is fine for a live run (e.g. usage updates); a finished run is final.
            if row["status"] != status.value or status in TERMINAL:
                check_transition(row["status"], status, thread_id=thread_id)
            now = self.clock()
            # Leaving the gate: the time since the run stopped there was a person's, not the
            # run's; it is counted here, once, whichever process resumes the run.
            leaving = status.value != row["status"]
            stopped = max(0.0, now - row["updated_at"]) if leaving else 0.0
            waited = stopped if row["status"] == RunStatus.AWAITING_APPROVAL.value else 0.0
            retry_waited = stopped if row["status"] == RunStatus.WAITING_RETRY.value else 0.0
            # Failures that may pass are counted in a row: a segment that ends any other way
            # (a gate, an end) starts the count again.
            again = status is RunStatus.WAITING_RETRY
            db.execute(
                "UPDATE runs SET status=?, output=COALESCE(?, output), "
                "error=CASE WHEN ? THEN ? ELSE COALESCE(?, error) END, "
                "usage=COALESCE(?, usage), budget_report=COALESCE(?, budget_report), "
                "updated_at=?, waited_seconds=waited_seconds+?, "
                "retry_waited_seconds=retry_waited_seconds+?, retry_at=?, "
                "transient_failures=CASE WHEN ? THEN transient_failures+1 "
                "WHEN ? = 'running' THEN transient_failures ELSE 0 END "
                "WHERE thread_id=?",
                (
                    status.value,
                    output,
                    # Going on after waiting to retry: the failure that stopped it is past.
                    retry_waited > 0 or (leaving and row["status"] == "waiting_retry"),
                    error,
                    error,
                    json.dumps(usage) if usage is not None else None,
                    json.dumps(budget_report) if budget_report is not None else None,
                    now,
                    waited,
                    retry_waited,
                    retry_at if again else None,
                    again,
                    status.value,
                    thread_id,
                ),
            )
            if status in TERMINAL:
                # A person must not be left deciding for a run that can no longer act on it.
                db.execute(
                    "UPDATE approvals SET status=?, decided_at=?, comment=? "
                    "WHERE thread_id=? AND status=?",
                    (
                        ApprovalStatus.CANCELLED.value,
                        now,
                        f"run ended {status.value}",
                        thread_id,
                        ApprovalStatus.PENDING.value,
                    ),
                )
        record = self.get_run(thread_id)
        assert record is not None
        return record

    def due_retries(self, now: float) -> list[str]:
        """Runs in waiting_retry whose time to go on has come, soonest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT thread_id FROM runs WHERE status=? AND retry_at<=? "
                "ORDER BY retry_at, thread_id",
                (RunStatus.WAITING_RETRY.value, now),
            ).fetchall()
        return [r["thread_id"] for r in rows]

    def set_usage(self, thread_id: str, usage: Usage) -> None:
        """Record what a live run has spent so far, so the row shows it while the run goes."""
        with self._tx() as db:
            db.execute("UPDATE runs SET usage=? WHERE thread_id=?", (json.dumps(usage), thread_id))

    def set_budget(self, thread_id: str, budget: Mapping[str, Any]) -> None:
        """Record the limits now in force (a person raised one)."""
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET budget=?, updated_at=? WHERE thread_id=?",
                (json.dumps(dict(budget)), self.clock(), thread_id),
            )

    def request_cancel(self, thread_id: str, reason: str) -> None:
        """Ask whoever drives the run to cancel it at its next step (kept until it ends)."""
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET cancel_requested=? WHERE thread_id=? AND cancel_requested IS NULL",
                (reason, thread_id),
            )

    def cancel_requested(self, thread_id: str) -> str | None:
        """The reason a cancel was asked of this run, or None: read before each step."""
        with self._lock:
            row = self._conn.execute(
                "SELECT cancel_requested FROM runs WHERE thread_id=?", (thread_id,)
            ).fetchone()
        return row["cancel_requested"] if row else None

    # leases -------------------------------------------------------------------------------

    def acquire_lease(self, thread_id: str, owner: LeaseOwner, ttl: float) -> None:
        """Take the run's lease, or raise RunBusy if a live process holds it.

        A lease of a dead process on this host is taken over at once; one held elsewhere
        must expire first.
        """
        now = self.clock()
        with self._tx() as db:
            row = db.execute(
                "SELECT lease_owner, lease_host, lease_pid, lease_expires_at FROM runs "
                "WHERE thread_id=?",
                (thread_id,),
            ).fetchone()
            if row is None:
                raise KeyError(thread_id)
            held = row["lease_owner"] is not None and row["lease_owner"] != owner.label
            if held and row["lease_expires_at"] > now:
                same_host_dead = row["lease_host"] == owner.host and not _pid_alive(
                    row["lease_pid"]
                )
                if not same_host_dead:
                    raise RunBusy(thread_id, row["lease_owner"], row["lease_expires_at"])
            db.execute(
                "UPDATE runs SET lease_owner=?, lease_host=?, lease_pid=?, lease_expires_at=? "
                "WHERE thread_id=?",
                (owner.label, owner.host, owner.pid, now + ttl, thread_id),
            )

    def renew_lease(self, thread_id: str, owner: LeaseOwner, ttl: float) -> bool:
        """Extend our lease; False if we lost it (it expired and someone else took it)."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE runs SET lease_expires_at=? WHERE thread_id=? AND lease_owner=?",
                (self.clock() + ttl, thread_id, owner.label),
            )
        return cur.rowcount == 1

    def release_lease(self, thread_id: str, owner: LeaseOwner) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET lease_owner=NULL, lease_host=NULL, lease_pid=NULL, "
                "lease_expires_at=NULL WHERE thread_id=? AND lease_owner=?",
                (thread_id, owner.label),
            )

    # approvals ----------------------------------------------------------------------------

    def put_approval(self, req: ApprovalRequest) -> ApprovalRequest:
        """Insert the request unless it exists; return the stored one (re-runs are no-ops)."""
        with self._tx() as db:
            _insert_approval(db, req)
        stored = self.get_approval(req.id)
        assert stored is not None
        return stored

    def get_approval(self, approval_id: str) -> ApprovalRequest | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM approvals WHERE id=?", (approval_id,)
            ).fetchone()
        return _approval(row) if row else None

    def list_approvals(
        self,
        *,
        status: str | None = ApprovalStatus.PENDING.value,
        tenant: str | None = None,
        role: str | None = None,
        thread_id: str | None = None,
        after: tuple[float, str] | None = None,
        limit: int = 100,
    ) -> list[ApprovalRequest]:
        """Requests oldest first, by (requested_at, id); ``after`` starts past that key."""
        sql, params = "SELECT * FROM approvals WHERE 1=1", list[Any]()
        for column, value in (
            ("status", status),
            ("tenant", tenant),
            ("thread_id", thread_id),
        ):
            if value is not None:
                sql += f" AND {column}=?"
                params.append(value)
        if role is not None:
            # A combined requirement is listed under each role it needs.
            sql += (
                " AND (required_role=? OR (required_roles IS NOT NULL AND EXISTS "
                "(SELECT 1 FROM json_each(required_roles) WHERE value=?)))"
            )
            params += [role, role]
        if after is not None:
            sql += " AND (requested_at, id) > (?, ?)"
            params.extend(after)
        sql += " ORDER BY requested_at, id LIMIT ?"
        with self._lock:
            rows = self._conn.execute(sql, (*params, limit)).fetchall()
        return [_approval(r) for r in rows]

    def due_approvals(self, now: float, *, limit: int = 1000) -> list[ApprovalRequest]:
        """Pending requests whose expiry has passed, soonest-expired first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM approvals WHERE status=? AND expires_at<=? "
                "ORDER BY expires_at, id LIMIT ?",
                (ApprovalStatus.PENDING.value, now, limit),
            ).fetchall()
        return [_approval(r) for r in rows]

    def expire_approval(
        self, approval_id: str, *, now: float, escalation: ApprovalRequest | None = None
    ) -> bool:
        """Mark a pending request expired (and insert its escalation) in one transaction.

        Conditional on the request still being pending, like a decision: of a sweep and a
        decider racing, exactly one wins. False if the request was no longer pending.
        """
        with self._tx() as db:
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
            if cur.rowcount == 1 and escalation is not None:
                _insert_approval(db, escalation)
        return cur.rowcount == 1

    def decide_approval(
        self,
        approval_id: str,
        status: ApprovalStatus,
        *,
        by: str,
        comment: str | None,
        edited_args: dict[str, Any] | None = None,
        result: Any = None,
    ) -> bool:
        """Record a decision if the request is still pending; False if someone was first."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE approvals SET status=?, decided_by=?, decided_at=?, comment=?, "
                "edited_args=?, result=? WHERE id=? AND status=?",
                (
                    status.value,
                    by,
                    self.clock(),
                    comment,
                    json.dumps(edited_args) if edited_args is not None else None,
                    json.dumps(result) if status is ApprovalStatus.RESOLVED else None,
                    approval_id,
                    ApprovalStatus.PENDING.value,
                ),
            )
        return cur.rowcount == 1

    # effects ledger -----------------------------------------------------------------------

    def get_effect(self, key: str) -> EffectRecord | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM effects WHERE key=?", (key,)).fetchone()
        return _effect(row) if row else None

    def list_effects(self, thread_id: str) -> list[EffectRecord]:
        """A run's ledger rows, in the order they were first reserved."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM effects WHERE thread_id=? ORDER BY rowid", (thread_id,)
            ).fetchall()
        return [_effect(r) for r in rows]

    def start_effect(
        self, *, key: str, thread_id: str, step_id: str, tool: str, args_digest: str
    ) -> int:
        """Reserve the key (status started) and return which attempt this is, from 1."""
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO effects (key, thread_id, step_id, tool, args_digest, status, "
                "started_at) VALUES (?,?,?,?,?,'started',?) "
                "ON CONFLICT (key) DO UPDATE SET status='started', attempts=attempts+1, "
                "started_at=excluded.started_at, error=NULL, error_kind=NULL "
                "RETURNING attempts",
                (key, thread_id, step_id, tool, args_digest, self.clock()),
            ).fetchone()
        return int(row["attempts"])

    def finish_effect(
        self,
        key: str,
        *,
        result: Any = None,
        error: str | None = None,
        error_kind: str | None = None,
        retries: int = 0,
    ) -> None:
        """Record the outcome of the started attempt: done with its result, or failed."""
        with self._tx() as db:
            db.execute(
                "UPDATE effects SET status=?, result=?, error=?, error_kind=?, retries=?, "
                "finished_at=? WHERE key=?",
                (
                    "failed" if error is not None else "done",
                    json.dumps(result, default=str) if error is None else None,
                    error,
                    error_kind if error is not None else None,
                    retries,
                    self.clock(),
                    key,
                ),
            )

    def note_in_doubt(self, key: str, reason: str, *, retries: int = 0) -> None:
        """Say why a started effect is in doubt, leaving it started (a person settles it)."""
        with self._tx() as db:
            db.execute(
                "UPDATE effects SET error=?, error_kind='timeout', retries=? "
                "WHERE key=? AND status='started'",
                (reason, retries, key),
            )

    def settle_effect(self, key: str, attempt: int, *, happened: bool, result: Any = None) -> bool:
        """Apply a reconcile decision to the attempt it was about: done with ``result`` if the
        effect happened, else 'retry'. False if that attempt is no longer the one in doubt."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE effects SET status=?, result=?, finished_at=? "
                "WHERE key=? AND status='started' AND attempts=?",
                (
                    "done" if happened else "retry",
                    json.dumps(result, default=str) if happened else None,
                    self.clock(),
                    key,
                    attempt,
                ),
            )
        return cur.rowcount == 1


def _effect(row: sqlite3.Row) -> EffectRecord:
    return EffectRecord(
        key=row["key"],
        thread_id=row["thread_id"],
        step_id=row["step_id"],
        tool=row["tool"],
        status=row["status"],
        result=json.loads(row["result"]) if row["result"] is not None else None,
        error=row["error"],
        error_kind=row["error_kind"],
        attempts=row["attempts"],
        retries=row["retries"],
    )


def _run_record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        thread_id=row["thread_id"],
        status=RunStatus(row["status"]),
        goal=row["goal"],
        principal=json.loads(row["principal"]),
        tenant=row["tenant"],
        budget=json.loads(row["budget"]),
        usage=json.loads(row["usage"]),
        output=row["output"],
        error=row["error"],
        trace_id=row["trace_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        lease_owner=row["lease_owner"],
        budget_report=json.loads(row["budget_report"]) if row["budget_report"] else None,
        waited_seconds=row["waited_seconds"],
        cancel_requested=row["cancel_requested"],
        retry_at=row["retry_at"],
        transient_failures=row["transient_failures"],
        retry_waited_seconds=row["retry_waited_seconds"],
    )


_APPROVAL_COLUMNS = (
    "id, thread_id, step_id, kind, tool, args, args_digest, rule_id, reason, required_role, "
    "four_eyes, requested_by, tenant, requested_at, expires_at, status, on_expiry, "
    "escalate_to, escalated_from, required_roles, edited_by, edited_from"
)


def _insert_approval(db: sqlite3.Connection, req: ApprovalRequest) -> None:
    db.execute(
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


def _approval(row: sqlite3.Row) -> ApprovalRequest:
    return ApprovalRequest(
        id=row["id"],
        thread_id=row["thread_id"],
        step_id=row["step_id"],
        kind=row["kind"],
        tool=row["tool"],
        args=json.loads(row["args"]),
        args_digest=row["args_digest"],
        edited_args=json.loads(row["edited_args"]) if row["edited_args"] else None,
        result=json.loads(row["result"]) if row["result"] is not None else None,
        rule_id=row["rule_id"],
        reason=row["reason"],
        required_role=row["required_role"],
        four_eyes=bool(row["four_eyes"]),
        requested_by=row["requested_by"],
        tenant=row["tenant"],
        requested_at=row["requested_at"],
        expires_at=row["expires_at"],
        status=ApprovalStatus(row["status"]),
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        comment=row["comment"],
        on_expiry=row["on_expiry"],
        escalate_to=row["escalate_to"],
        escalated_from=row["escalated_from"],
        escalated_to=row["escalated_to"],
        required_roles=tuple(json.loads(row["required_roles"])) if row["required_roles"] else (),
        edited_by=row["edited_by"],
        edited_from=row["edited_from"],
    )
