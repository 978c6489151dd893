"""The PostgreSQL store: agentrt's tables and LangGraph's checkpoints in one database.

``PostgresStore`` is every table family (one module each) over one ``Database``: a pool of
connections, every write its own transaction, tried again while the server is out of reach
(see database.py), so a run outlives a restart or a failover of its server. Needs the
``postgres`` extra (psycopg 3, psycopg-pool, langgraph-checkpoint-postgres) and
PostgreSQL 13 or newer.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agentrt.store.postgres.approvals import ApprovalsTable
from agentrt.store.postgres.artifacts import ArtifactsTable
from agentrt.store.postgres.clock import ServerClock
from agentrt.store.postgres.database import (
    Database,
    DatabaseUnavailable,
    PoolSettings,
    hidden_password,
)
from agentrt.store.postgres.effects import EffectsTable
from agentrt.store.postgres.keys import KeysTable
from agentrt.store.postgres.leases import LeasesTable
from agentrt.store.postgres.messages import MessagesTable
from agentrt.store.postgres.outbox import OutboxTable
from agentrt.store.postgres.recordings import RecordingsTable
from agentrt.store.postgres.runs import RunsTable
from agentrt.store.postgres.spans import SpansTable
from agentrt.store.postgres.stats import StatsTable

__all__ = [
    "Database",
    "DatabaseUnavailable",
    "PoolSettings",
    "PostgresStore",
    "hidden_password",
]


class PostgresStore(
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
    """agentrt's tables in one PostgreSQL database (agentrt.store.protocols.Store)."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        pool: PoolSettings | None = None,
    ) -> None:
        self.db = Database(url, clock=clock, pool=pool)
        if clock is time.time:
            # Not told otherwise: the server's clock, one for every host (see clock.py).
            self.db.clock = ServerClock(self._server_time)

    def _server_time(self) -> float:
        with self.db.pool.connection(timeout=self.db.settings.timeout) as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM clock_timestamp())::float8 AS t"
            ).fetchone()
        assert row is not None
        return float(row["t"])

    @property
    def location(self) -> str:
        """The URL, its password hidden."""
        return self.db.location

    @property
    def clock(self) -> Callable[[], float]:
        return self.db.clock

    @property
    def schema_version(self) -> int:
        return self.db.schema_version

    def redaction_salt(self) -> str:
        return self.db.redaction_salt()

    def close(self) -> None:
        self.db.close()
