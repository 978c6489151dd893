"""Who drives a run: a lease on its row, renewed while a process drives it
(agentrt.runs.lease_keeper).

A second process that tries to drive the same run gets RunBusy. A lease whose owner is gone
is not a wall: on a store only this machine uses (a SQLite file) a dead owner's pid is
seen at once and its lease taken over; on a database shared across hosts (PostgreSQL),
where the same host name and pid may stand for another process in another container, the
lease must expire first (its owner stopped renewing it). Lease times are the store's clock
(``Store.clock``: on PostgreSQL, the server's), so hosts' clocks do not matter.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from agentrt.errors import RunBusy
from agentrt.logs import get_logger
from agentrt.processes import pid_alive
from agentrt.records import LeaseRecord, RunRecord
from agentrt.store.protocols import LeaseStore

__all__ = [
    "GRAPH_HOST",
    "LeaseOwner",
    "acquire",
    "graph_lease",
    "graph_name",
    "is_own_graph",
    "owner_dead",
]

logger = get_logger()


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


def acquire(
    store: LeaseStore, thread_id: str, owner: LeaseOwner, ttl: float, *, now: float
) -> LeaseRecord | None:
    """Take the run's lease for ``ttl`` seconds, or raise RunBusy if a live process holds it.
    Returns the lease it took over from another owner (expired, or its process gone), if
    it did.

    KeyError for an unknown run. The write is conditional on the owner read just before,
    so of two processes taking an expired lease at once exactly one wins.
    """
    while True:
        held = store.lease_of(thread_id)
        if (
            held is not None
            and held.owner != owner.label
            and held.expires_at > now
            and not (store.one_host and owner_dead(held, owner.host))
        ):
            raise RunBusy(thread_id, held.owner, held.expires_at, now=now)
        lease = LeaseRecord(owner=owner.label, host=owner.host, pid=owner.pid, expires_at=now + ttl)
        if store.take_lease(thread_id, lease, expected=None if held is None else held.owner):
            return held if held is not None and held.owner != owner.label else None


def owner_dead(held: LeaseRecord, host: str) -> bool:
    """True if the lease's owner ran on ``host`` (this one) and its process is gone; for a
    store that only this machine uses (``one_host``), where a pid names a process here."""
    return held.host == host and not pid_alive(held.pid)


# An app's own graph holds its threads' leases for good (agentrt.governed.threads).

GRAPH_HOST = "graph"
"""The lease host of a thread that an app's own graph drives (no process of agentrt's)."""

_NEVER = 253_402_300_799.0
"""9999-12-31: a lease the app's graph holds for good (nobody renews it; nobody takes it)."""


def graph_lease(name: str) -> LeaseRecord:
    """The lease a thread of the app's graph ``name`` is born with and keeps."""
    return LeaseRecord(owner=f"graph:{name}", host=GRAPH_HOST, pid=0, expires_at=_NEVER)


def is_own_graph(record: RunRecord) -> bool:
    """True if an app's own graph drives this run (not agentrt's run graph)."""
    return record.lease_owner is not None and record.lease_owner.startswith("graph:")


def graph_name(record: RunRecord) -> str:
    """The name of the graph that drives an own-graph run."""
    assert record.lease_owner is not None
    return record.lease_owner.removeprefix("graph:")
