"""The SQLite store: one file holding LangGraph's checkpoints and agentrt's own tables.

``SqliteStore`` is every table family of the file (one module each) over one
``Database``: one connection shared across threads under a lock, every write its own short
transaction, so a process killed at any instant leaves the file consistent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from agentrt.store.sqlite.approvals import ApprovalsTable
from agentrt.store.sqlite.artifacts import ArtifactsTable
from agentrt.store.sqlite.database import (
    BUSY_TIMEOUT_MS,
    LOCK_PATIENCE,
    Database,
    begin_waiting,
    connect,
    locked,
    retry_locked,
)
from agentrt.store.sqlite.effects import EffectsTable
from agentrt.store.sqlite.keys import KeysTable
from agentrt.store.sqlite.leases import LeasesTable
from agentrt.store.sqlite.messages import MessagesTable
from agentrt.store.sqlite.outbox import OutboxTable
from agentrt.store.sqlite.recordings import RecordingsTable
from agentrt.store.sqlite.runs import RunsTable
from agentrt.store.sqlite.spans import SpansTable
from agentrt.store.sqlite.stats import StatsTable
from agentrt.store.sqlite.stop_mark import StopMark

__all__ = [
    "BUSY_TIMEOUT_MS",
    "LOCK_PATIENCE",
    "Database",
    "SqliteStore",
    "begin_waiting",
    "connect",
    "locked",
    "retry_locked",
]


class SqliteStore(
    RunsTable,
    LeasesTable,
    ApprovalsTable,
    EffectsTable,
    RecordingsTable,
    KeysTable,
    SpansTable,
    StatsTable,
    OutboxTable,
    ArtifactsTable,
    MessagesTable,
):
    """agentrt's tables in one SQLite file (agentrt.store.protocols.Store)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.db = Database(path, clock=clock)
        self._stop_mark = StopMark(path)
        self._span_conn = None
        self._span_lock = threading.Lock()

    @property
    def location(self) -> str:
        """The file's path, as given."""
        return self.db.path

    @property
    def path(self) -> str:
        return self.db.path

    @property
    def clock(self) -> Callable[[], float]:
        return self.db.clock

    @property
    def schema_version(self) -> int:
        return self.db.schema_version

    def redaction_salt(self) -> str:
        return self.db.redaction_salt()

    def close(self) -> None:
        self.close_spans()
        self.db.close()
        self._stop_mark.close()  # last: a cancel committed just before can still move it
