"""Run leases in SQLite: columns of the runs row, swapped only from the owner one read."""

from __future__ import annotations

from agentrt.store.protocols import LeaseRecord
from agentrt.store.sqlite.database import Database

__all__ = ["LeasesTable"]


class LeasesTable:
    """LeaseStore on SQLite."""

    db: Database

    def lease_of(self, thread_id: str) -> LeaseRecord | None:
        with self.db.read() as db:
            row = db.execute(
                "SELECT lease_owner, lease_host, lease_pid, lease_expires_at FROM runs "
                "WHERE thread_id=?",
                (thread_id,),
            ).fetchone()
        if row is None:
            raise KeyError(thread_id)
        if row["lease_owner"] is None:
            return None
        return LeaseRecord(
            owner=row["lease_owner"],
            host=row["lease_host"],
            pid=row["lease_pid"],
            expires_at=row["lease_expires_at"],
        )

    def take_lease(self, thread_id: str, lease: LeaseRecord, *, expected: str | None) -> bool:
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE runs SET lease_owner=?, lease_host=?, lease_pid=?, lease_expires_at=? "
                "WHERE thread_id=? AND lease_owner IS ?",
                (lease.owner, lease.host, lease.pid, lease.expires_at, thread_id, expected),
            )
        return cur.rowcount == 1

    def renew_lease(self, thread_id: str, owner: str, expires_at: float) -> bool:
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE runs SET lease_expires_at=? WHERE thread_id=? AND lease_owner=?",
                (expires_at, thread_id, owner),
            )
        return cur.rowcount == 1

    def release_lease(self, thread_id: str, owner: str) -> None:
        with self.db.tx() as db:
            db.execute(
                "UPDATE runs SET lease_owner=NULL, lease_host=NULL, lease_pid=NULL, "
                "lease_expires_at=NULL WHERE thread_id=? AND lease_owner=?",
                (thread_id, owner),
            )
