"""Run leases in PostgreSQL: columns of the runs row, swapped only from the owner one read.

Each is one UPDATE whose WHERE names the owner: under READ COMMITTED a racing writer waits
for the row, then finds the owner changed and touches nothing. Workers claim runs with
one UPDATE over the rows a ``FOR NO KEY UPDATE SKIP LOCKED`` select picked: a row another
claimer has locked is skipped, not waited for, and a row it has just leased no longer
matches, so each run goes to one worker. NO KEY: the UPDATE's own lock, so a run that a
transaction is adding a row for (an approval, a model call: their foreign key's check
takes FOR KEY SHARE on the run) is not skipped for it; renewals pick their rows the same
way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agentrt.approvals.model import ApprovalStatus
from agentrt.records import AppIdentity
from agentrt.state import RunStatus
from agentrt.store.postgres.database import Cursor, Database, one_row
from agentrt.store.postgres.listen import Listener
from agentrt.store.postgres.runs import RUN, run_record
from agentrt.store.protocols import Claim, LeaseRecord, LeaseRenewal, RunRecord

__all__ = ["LeasesTable"]

_RENEW = """
WITH wanted AS (
    SELECT * FROM unnest(%s::text[], %s::text[], %s::double precision[],
                         %s::double precision[])
        AS w (thread_id, owner, expires_at, active_seconds)
), free AS (
    SELECT r.thread_id, w.expires_at, w.active_seconds FROM runs r JOIN wanted w
        ON r.thread_id = w.thread_id AND r.lease_owner = w.owner
    FOR NO KEY UPDATE OF r SKIP LOCKED
), renewed AS (
    UPDATE runs r SET lease_expires_at = f.expires_at,
        live_active_seconds = coalesce(f.active_seconds, r.live_active_seconds)
    FROM free f
    WHERE r.thread_id = f.thread_id
    RETURNING r.thread_id
)
SELECT w.thread_id,
       w.thread_id IN (SELECT thread_id FROM renewed) AS renewed,
       r.lease_owner IS NOT DISTINCT FROM w.owner AS held
FROM wanted w LEFT JOIN runs r ON r.thread_id = w.thread_id
"""
"""Each lease whose row is free renewed; for the others, whether the owner still held it
as last committed (the final SELECT reads the statement's snapshot, from before any
renewal): held is busy, not held is lost. The rows are locked as the claim's are (FOR NO
KEY UPDATE, see the module's doc)."""

_LIVE = (
    RunStatus.PENDING.value,
    RunStatus.RUNNING.value,
    RunStatus.AWAITING_APPROVAL.value,
    RunStatus.WAITING_RETRY.value,
)

# Where a claim is for one app: the runs it may drive (runs.apps.may_drive): of its name,
# of an unnamed app whose tools it all has, or from before (neither recorded). Both are
# off runs_to_drive_by_app (app = its name, app IS NULL); tools sift the unnamed ones.
_MINE = """
      AND (r.app = %(app)s OR (r.app IS NULL AND (r.tools IS NULL
           OR r.tools <@ %(tools)s::text[])))"""

# The runs that need a driver and have none (see LeaseStore.claim_runs), oldest first, off
# the partial index runs_to_drive (one app's, off runs_to_drive_by_app);
# leased in the same statement. The last row carries when a look may next find something
# (the rows taken are not in it: the select reads the table as it was before the update).
_CLAIM = f"""
WITH picked AS (
    SELECT thread_id FROM runs r
    WHERE status IN {_LIVE}
      AND (lease_owner IS NULL OR lease_expires_at <= %(now)s){{mine}}
      AND (status IN ('{RunStatus.PENDING.value}', '{RunStatus.RUNNING.value}')
           OR (status = '{RunStatus.WAITING_RETRY.value}' AND retry_at <= %(now)s)
           OR (status = '{RunStatus.AWAITING_APPROVAL.value}' AND (cancel_requested IS NOT NULL
               OR NOT EXISTS (SELECT 1 FROM approvals a WHERE a.thread_id = r.thread_id
                              AND a.status = '{ApprovalStatus.PENDING.value}'))))
    ORDER BY created_at, thread_id
    LIMIT %(limit)s
    FOR NO KEY UPDATE OF r SKIP LOCKED
), taken AS (
    UPDATE runs SET lease_owner = %(owner)s, lease_host = %(host)s, lease_pid = %(pid)s,
        lease_expires_at = %(expires_at)s
    FROM picked WHERE runs.thread_id = picked.thread_id
    RETURNING runs.thread_id, runs.created_at
)
SELECT thread_id, created_at, NULL::double precision AS next_at FROM taken
UNION ALL
SELECT NULL, NULL, least(
    (SELECT min(retry_at) FROM runs
     WHERE status = '{RunStatus.WAITING_RETRY.value}' AND retry_at > %(now)s),
    (SELECT min(lease_expires_at) FROM runs
     WHERE lease_owner IS NOT NULL AND lease_expires_at > %(now)s))
"""
_CLAIM_ANY, _CLAIM_MINE = _CLAIM.format(mine=""), _CLAIM.format(mine=_MINE)


# Threads a message waits for (a finished one with one queued, a live one with one sent to
# interrupt it, unless a reconcile gate holds it: an effect in doubt is settled first) that
# no one drives, off messages_queued; leased in the same statement.
_CLAIM_WAITING = f"""
WITH picked AS (
    SELECT r.thread_id FROM runs r
    WHERE r.thread_id IN (SELECT m.thread_id FROM messages m WHERE m.status = 'queued'
                          AND (r.status NOT IN {_LIVE}
                               OR (m.interrupt AND NOT EXISTS (
                                   SELECT 1 FROM approvals a WHERE a.thread_id = r.thread_id
                                   AND a.status = '{ApprovalStatus.PENDING.value}'
                                   AND a.kind = 'reconcile'))))
      AND (lease_owner IS NULL OR lease_expires_at <= %(now)s){{mine}}
    ORDER BY created_at, thread_id
    LIMIT %(limit)s
    FOR NO KEY UPDATE OF r SKIP LOCKED
)
UPDATE runs SET lease_owner = %(owner)s, lease_host = %(host)s, lease_pid = %(pid)s,
    lease_expires_at = %(expires_at)s
FROM picked WHERE runs.thread_id = picked.thread_id
RETURNING runs.thread_id, runs.created_at, NULL::double precision AS next_at
"""
_WAITING_ANY, _WAITING_MINE = _CLAIM_WAITING.format(mine=""), _CLAIM_WAITING.format(mine=_MINE)

# Both only by the lease's owner: one that lost it must not point the run's trace at its
# segment while another drives the run.
_RELEASE_WITH_TRACE = """
UPDATE runs SET trace_id = %(trace_id)s, trace_span_id = %(span_id)s,
    lease_owner = NULL, lease_host = NULL, lease_pid = NULL, lease_expires_at = NULL
WHERE thread_id = %(thread_id)s AND lease_owner = %(owner)s
"""


class LeasesTable:
    """LeaseStore on PostgreSQL."""

    db: Database

    one_host = False
    """A server is shared by processes on any number of machines: a pid says nothing."""

    def claim_runs(
        self, lease: LeaseRecord, *, now: float, limit: int, app: AppIdentity | None = None
    ) -> Claim:
        params = {
            "now": now,
            "limit": max(0, limit),
            "owner": lease.owner,
            "host": lease.host,
            "pid": lease.pid,
            "expires_at": lease.expires_at,
            "app": None if app is None else app.name,
            "tools": None if app is None else sorted(app.tools),
        }
        claim = self.db.apply(_CLAIM_ANY if app is None else _CLAIM_MINE, params, _claim)
        if len(claim.thread_ids) >= limit:
            return claim
        params["limit"] = limit - len(claim.thread_ids)
        waiting = self.db.apply(_WAITING_ANY if app is None else _WAITING_MINE, params, _claim)
        return Claim(thread_ids=claim.thread_ids + waiting.thread_ids, next_at=claim.next_at)

    def listen(self, wake: Callable[[], None]) -> Listener:
        return Listener(self.db.conninfo, self.db.location, wake)

    def lease_of(self, thread_id: str) -> LeaseRecord | None:
        found = self.db.one(
            "SELECT lease_owner, lease_host, lease_pid, lease_expires_at FROM runs "
            "WHERE thread_id=%s",
            (thread_id,),
            lambda row: (None if row["lease_owner"] is None else _lease(row),),
        )
        if found is None:
            raise KeyError(thread_id)
        return found[0]

    def leased_on(self, host: str, *, now: float) -> list[tuple[RunRecord, LeaseRecord]]:
        return self.db.all(
            f"SELECT {RUN}, lease_host, lease_pid, lease_expires_at FROM runs "
            "WHERE status IN (%s, %s) "
            "AND lease_owner IS NOT NULL AND lease_host=%s AND lease_expires_at > %s "
            "ORDER BY created_at, thread_id",
            (RunStatus.PENDING.value, RunStatus.RUNNING.value, host, now),
            lambda row: (run_record(row), _lease(row)),
        )

    def take_lease(self, thread_id: str, lease: LeaseRecord, *, expected: str | None) -> bool:
        return self.db.apply(
            "UPDATE runs SET lease_owner=%s, lease_host=%s, lease_pid=%s, lease_expires_at=%s "
            "WHERE thread_id=%s AND lease_owner IS NOT DISTINCT FROM %s::text",
            (lease.owner, lease.host, lease.pid, lease.expires_at, thread_id, expected),
            one_row,
        )

    def renew_leases(self, leases: Sequence[LeaseRenewal]) -> dict[str, bool | None]:
        # One statement, autocommitted, run again after a lost connection: the second finds
        # the same owners and sets the same times. A row another transaction holds is
        # skipped, not waited for, and answered None: its run's lease is still this owner's
        # as last committed, but renewing it now would wait, and every other lease with it.
        if not leases:
            return {}
        rows = self.db.all(
            _RENEW,
            (
                [lease.thread_id for lease in leases],
                [lease.owner for lease in leases],
                [lease.expires_at for lease in leases],
                [lease.active_seconds for lease in leases],
            ),
            lambda row: (row["thread_id"], row["renewed"], row["held"]),
        )
        return {
            thread_id: True if renewed else None if held else False
            for thread_id, renewed, held in rows
        }

    def hold_lease(self, thread_id: str, owner: str, expires_at: float) -> RunRecord | None:
        # Autocommitted, and run again after a lost connection as renew_leases is: the second
        # finds the same owner, sets the same time, and reads the same row.
        return self.db.one(
            f"UPDATE runs SET lease_expires_at=%s WHERE thread_id=%s AND lease_owner=%s "
            f"RETURNING {RUN}",
            (expires_at, thread_id, owner),
            run_record,
        )

    def release_lease(
        self, thread_id: str, owner: str, *, trace: tuple[str, str | None] | None = None
    ) -> None:
        if trace is None:
            self.db.execute(
                "UPDATE runs SET lease_owner=NULL, lease_host=NULL, lease_pid=NULL, "
                "lease_expires_at=NULL WHERE thread_id=%s AND lease_owner=%s",
                (thread_id, owner),
            )
            return
        trace_id, span_id = trace
        self.db.execute(
            _RELEASE_WITH_TRACE,
            {"trace_id": trace_id, "span_id": span_id, "owner": owner, "thread_id": thread_id},
        )


def _claim(cur: Cursor) -> Claim:
    rows: list[Any] = cur.fetchall()
    taken = sorted((r["created_at"], r["thread_id"]) for r in rows if r["thread_id"] is not None)
    next_at = next((r["next_at"] for r in rows if r["thread_id"] is None), None)
    return Claim(thread_ids=tuple(t for _, t in taken), next_at=next_at)


def _lease(row: Any) -> LeaseRecord:
    return LeaseRecord(
        owner=row["lease_owner"],
        host=row["lease_host"],
        pid=row["lease_pid"],
        expires_at=row["lease_expires_at"],
    )
