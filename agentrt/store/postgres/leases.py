"""Run leases in PostgreSQL: columns of the runs row, swapped only from the owner one read.

Each is one UPDATE whose WHERE names the owner: under READ COMMITTED a racing writer waits
for the row, then finds the owner changed and touches nothing.
"""

from __future__ import annotations

from agentrt.store.postgres.database import Database, one_row
from agentrt.store.protocols import LeaseRecord

__all__ = ["LeasesTable"]


class LeasesTable:
    """LeaseStore on PostgreSQL."""

    db: Database

    def lease_of(self, thread_id: str) -> LeaseRecord | None:
        found = self.db.one(
            "SELECT lease_owner, lease_host, lease_pid, lease_expires_at FROM runs "
            "WHERE thread_id=%s",
            (thread_id,),
            lambda row: (
                None
                if row["lease_owner"] is None
                else LeaseRecord(
                    owner=row["lease_owner"],
                    host=row["lease_host"],
                    pid=row["lease_pid"],
                    expires_at=row["lease_expires_at"],
                ),
            ),
        )
        if found is None:
            raise KeyError(thread_id)
        return found[0]

    def take_lease(self, thread_id: str, lease: LeaseRecord, *, expected: str | None) -> bool:
        return self.db.apply(
            "UPDATE runs SET lease_owner=%s, lease_host=%s, lease_pid=%s, lease_expires_at=%s "
            "WHERE thread_id=%s AND lease_owner IS NOT DISTINCT FROM %s::text",
            (lease.owner, lease.host, lease.pid, lease.expires_at, thread_id, expected),
            one_row,
        )

    def renew_lease(self, thread_id: str, owner: str, expires_at: float) -> bool:
        # Run twice, the second finds the same owner and sets the same time: same answer.
        return (
            self.db.execute(
                "UPDATE runs SET lease_expires_at=%s WHERE thread_id=%s AND lease_owner=%s",
                (expires_at, thread_id, owner),
            )
            == 1
        )

    def release_lease(self, thread_id: str, owner: str) -> None:
        self.db.execute(
            "UPDATE runs SET lease_owner=NULL, lease_host=NULL, lease_pid=NULL, "
            "lease_expires_at=NULL WHERE thread_id=%s AND lease_owner=%s",
            (thread_id, owner),
        )
