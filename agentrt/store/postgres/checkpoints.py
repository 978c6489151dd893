"""LangGraph's checkpoints in the same PostgreSQL database, for sync and async runs alike.

LangGraph's PostgresSaver on the store's pool, with these changes. Its async methods are
the sync ones run on worker threads of the saver's own (agentrt.store.held's, as the SQLite
saver's are), so one
saver serves the sync graph and the async one and no connection is bound to an event loop.
Every call is tried again while the server is out of reach: a checkpoint write is an upsert
(what it writes is keyed by thread, namespace, checkpoint and channel version), so writing
it twice is writing it once. The lock PostgresSaver holds around every call, which a
single shared connection needs, is dropped: each call has a pooled connection to itself.
A checkpoint, and a task's writes, go in one statement each, with short channel versions
(agentrt.store.postgres.checkpoint_rows). While a driver holds a thread, what its nodes
write waits for the checkpoint after it, or after a pure node for the thread's next write
(agentrt.store.held), and goes in the same statement.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)

from agentrt.logs import get_logger
from agentrt.store.held import Fence, Holding, HoldingSaver
from agentrt.store.postgres.checkpoint_rows import Rows, RowsSaver
from agentrt.store.postgres.database import Database, doc

__all__ = ["Checkpoints"]


logger = get_logger()


class Checkpoints(HoldingSaver, RowsSaver):
    """PostgresSaver on the store's pool: async methods on worker threads, every call
    patient with a server that restarts."""

    def __init__(self, db: Database) -> None:
        super().__init__(db.pool)
        self.db = db
        # PostgresSaver's lock guards one shared connection; on a pool it only serialises.
        self.lock = contextlib.nullcontext()  # type: ignore[assignment]
        self._worker = ThreadPoolExecutor(
            max_workers=db.settings.max_size, thread_name_prefix="agentrt-checkpoints"
        )
        self.holding = Holding()

    def setup(self) -> None:
        """Nothing to do: opening the store migrated LangGraph's tables with agentrt's."""

    # sync: PostgresSaver's own, tried again while the server is out of reach ----------------
    # Reads store what the thread holds first (HoldingSaver, next in line after this class).

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.db.patiently(lambda: super(Checkpoints, self).get_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        # Read in one go, so a failed try has handed out nothing yet.
        found = self.db.patiently(
            lambda: [
                *super(Checkpoints, self).list(config, filter=filter, before=before, limit=limit)
            ]
        )
        return iter(found)

    # Writes: what a call writes, as rows, so that held calls go in one statement with the
    # next (agentrt.store.postgres.checkpoint_rows). Each is an upsert: made twice, it is
    # made once, so a lost connection is simply tried again. A call is made rows when it is
    # written, in the thread that writes it: an async call is held or not on the event
    # loop, which serialising the state would hold.

    def _put_call(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Callable[[], Rows]:
        return partial(self.checkpoint_rows, config, checkpoint, metadata, new_versions)

    def _writes_call(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> Callable[[], Rows]:
        return partial(self.writes_rows, config, writes, task_id, task_path)

    def _usage_call(self, thread_id: str, usage: Mapping[str, Any]) -> Callable[[], Rows]:
        return partial(Rows, usage=[(thread_id, doc(dict(usage)))])

    def _write_one(self, call: Callable[[], Rows], fence: Fence | None = None) -> None:
        self._write_all([call], fence)

    def _write_all(self, calls: Sequence[Callable[[], Rows]], fence: Fence | None = None) -> None:
        rows = [call() for call in calls]
        self.db.patiently(lambda: self.write_rows(rows, fence))

    def delete_thread(self, thread_id: str) -> None:
        self.holding.forget(thread_id)  # what the thread held goes with it
        self.db.patiently(lambda: super(Checkpoints, self).delete_thread(thread_id))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self.db.patiently(
            lambda: super(Checkpoints, self).get_delta_channel_history(
                config=config, channels=channels
            )
        )

    def close(self) -> None:
        """Finish the calls already asked for and write those held; the store closes the
        pool."""
        self._worker.shutdown(wait=True)
        self.flush_for_read()
