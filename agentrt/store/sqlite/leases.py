"""Run leases in SQLite: columns of the runs row, swapped only from the owner one read.

Claiming runs for a worker is a read, then (only if it found any) the same read again and
the lease written inside one write transaction: SQLite has one writer at a time, so two
workers on the file never take the same run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from agentrt.approvals.model import ApprovalStatus
from agentrt.records import AppIdentity
from agentrt.state import RunStatus
from agentrt.store.protocols import Claim, LeaseRecord, LeaseRenewal, RunRecord
from agentrt.store.sqlite.database import Database
from agentrt.store.sqlite.runs import run_record

__all__ = ["LeasesTable"]

_LIVE = (
    RunStatus.PENDING.value,
    RunStatus.RUNNING.value,
    RunStatus.AWAITING_APPROVAL.value,
    RunStatus.WAITING_RETRY.value,
)

# The runs that need a driver and have none (see LeaseStore.claim_runs), oldest first:
# live runs that can move, and threads with a message waiting for them (a finished thread
# with one queued, a live one with one sent to interrupt it, unless a reconcile gate holds
# it: an effect in doubt is settled first, and the message taken after). {mine} keeps a
# claim for one app to the runs it may drive (runs.apps.may_drive): of its name, of an
# unnamed app none of whose tools it lacks, or from before (neither recorded). The app's
# runs are told apart as the runs are read in creation order (no index: tools are a list).
# (``+a.status`` keeps SQLite from reading the approvals by status, all the pending ones,
# rather than by run.)
_CLAIMABLE = f"""
SELECT thread_id FROM (
    SELECT thread_id, created_at FROM runs r
    WHERE status IN {_LIVE}
      AND (lease_owner IS NULL OR lease_expires_at <= :now){{mine}}
      AND (status IN ('{RunStatus.PENDING.value}', '{RunStatus.RUNNING.value}')
           OR (status = '{RunStatus.WAITING_RETRY.value}' AND retry_at <= :now)
           OR (status = '{RunStatus.AWAITING_APPROVAL.value}' AND (cancel_requested IS NOT NULL
               OR NOT EXISTS (SELECT 1 FROM approvals a WHERE a.thread_id = r.thread_id
                              AND +a.status = '{ApprovalStatus.PENDING.value}'))))
    UNION
    SELECT r.thread_id, r.created_at FROM messages m JOIN runs r ON r.thread_id = m.thread_id
    WHERE m.status = 'queued' AND (r.lease_owner IS NULL OR r.lease_expires_at <= :now){{mine}}
      AND (r.status NOT IN {_LIVE}
           OR (m.interrupt AND NOT EXISTS (SELECT 1 FROM approvals a
               WHERE a.thread_id = r.thread_id AND +a.status = '{ApprovalStatus.PENDING.value}'
                 AND a.kind = 'reconcile')))
)
ORDER BY created_at, thread_id
LIMIT :limit
"""
_CLAIMABLE_ANY = _CLAIMABLE.format(mine="")
_CLAIMABLE_MINE = _CLAIMABLE.format(
    mine="""
      AND (r.app = :app OR (r.app IS NULL AND (r.tools IS NULL OR NOT EXISTS (
          SELECT 1 FROM json_each(r.tools) t
          WHERE t.value NOT IN (SELECT value FROM json_each(:tools))))))"""
)

# When a look may next find something: a wait to retry ending, or a lease left to expire
# (a finished run's leftover lease, from a process that died just after the end, costs
# one needless look at most).
_NEXT = f"""
SELECT min(at) AS at FROM (
    SELECT min(retry_at) AS at FROM runs
    WHERE status = '{RunStatus.WAITING_RETRY.value}' AND retry_at > ?
    UNION ALL
    SELECT min(lease_expires_at) FROM runs WHERE lease_owner IS NOT NULL AND lease_expires_at > ?
)
"""


class LeasesTable:
    """LeaseStore on SQLite."""

    db: Database

    one_host = True
    """A SQLite file is shared only by processes on one machine (WAL needs shared memory)."""

    def claim_runs(
        self, lease: LeaseRecord, *, now: float, limit: int, app: AppIdentity | None = None
    ) -> Claim:
        params: dict[str, Any] = {"now": now, "limit": max(0, limit)}
        sql = _CLAIMABLE_ANY
        if app is not None:
            sql = _CLAIMABLE_MINE
            params.update(app=app.name, tools=json.dumps(sorted(app.tools)))
        taken: tuple[str, ...] = ()
        # Most looks find nothing: a read first, which never waits for the write lock.
        if self.db.all(sql, params, _thread_id):
            with self.db.tx() as db:
                taken = tuple(r["thread_id"] for r in db.execute(sql, params))
                db.executemany(
                    "UPDATE runs SET lease_owner=?, lease_host=?, lease_pid=?, "
                    "lease_expires_at=? WHERE thread_id=?",
                    [(lease.owner, lease.host, lease.pid, lease.expires_at, t) for t in taken],
                )
        next_at = self.db.one(_NEXT, (now, now), lambda row: row["at"])
        return Claim(thread_ids=taken, next_at=next_at)

    def listen(self, wake: Callable[[], None]) -> None:
        """SQLite tells no one of a commit: workers on a file poll."""
        return None

    def lease_of(self, thread_id: str) -> LeaseRecord | None:
        with self.db.read() as db:
            row = db.execute(
                "SELECT lease_owner, lease_host, lease_pid, lease_expires_at FROM runs "
                "WHERE thread_id=?",
                (thread_id,),
            ).fetchone()
        if row is None:
            raise KeyError(thread_id)
        return None if row["lease_owner"] is None else _lease(row)

    def leased_on(self, host: str, *, now: float) -> list[tuple[RunRecord, LeaseRecord]]:
        return self.db.all(
            "SELECT * FROM runs WHERE status IN (?, ?) AND lease_owner IS NOT NULL "
            "AND lease_host=? AND lease_expires_at > ? ORDER BY created_at, thread_id",
            (RunStatus.PENDING.value, RunStatus.RUNNING.value, host, now),
            lambda row: (run_record(row), _lease(row)),
        )

    def take_lease(self, thread_id: str, lease: LeaseRecord, *, expected: str | None) -> bool:
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE runs SET lease_owner=?, lease_host=?, lease_pid=?, lease_expires_at=? "
                "WHERE thread_id=? AND lease_owner IS ?",
                (lease.owner, lease.host, lease.pid, lease.expires_at, thread_id, expected),
            )
        return cur.rowcount == 1

    def renew_leases(self, leases: Sequence[LeaseRenewal]) -> dict[str, bool | None]:
        # One transaction for all: SQLite locks the file, not a row, so none is ever busy.
        if not leases:
            return {}
        with self.db.tx() as db:
            return {
                lease.thread_id: db.execute(
                    "UPDATE runs SET lease_expires_at=?, "
                    "live_active_seconds=coalesce(?, live_active_seconds) "
                    "WHERE thread_id=? AND lease_owner=?",
                    (lease.expires_at, lease.active_seconds, lease.thread_id, lease.owner),
                ).rowcount
                == 1
                for lease in leases
            }

    def hold_lease(self, thread_id: str, owner: str, expires_at: float) -> RunRecord | None:
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE runs SET lease_expires_at=? WHERE thread_id=? AND lease_owner=?",
                (expires_at, thread_id, owner),
            )
            if cur.rowcount != 1:
                return None
            row = db.execute("SELECT * FROM runs WHERE thread_id=?", (thread_id,)).fetchone()
        return run_record(row)

    def release_lease(
        self, thread_id: str, owner: str, *, trace: tuple[str, str | None] | None = None
    ) -> None:
        with self.db.tx() as db:
            if trace is not None:  # in the same write transaction: one commit
                # Only by the lease's owner: one that lost it must not point the run's
                # trace at its segment while another drives the run.
                db.execute(
                    "UPDATE runs SET trace_id=?, trace_span_id=? WHERE thread_id=? "
                    "AND lease_owner=?",
                    (*trace, thread_id, owner),
                )
            db.execute(
                "UPDATE runs SET lease_owner=NULL, lease_host=NULL, lease_pid=NULL, "
                "lease_expires_at=NULL WHERE thread_id=? AND lease_owner=?",
                (thread_id, owner),
            )


def _thread_id(row: Any) -> str:
    return str(row["thread_id"])


def _lease(row: Any) -> LeaseRecord:
    return LeaseRecord(
        owner=row["lease_owner"],
        host=row["lease_host"],
        pid=row["lease_pid"],
        expires_at=row["lease_expires_at"],
    )
