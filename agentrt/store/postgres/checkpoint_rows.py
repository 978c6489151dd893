"""A checkpoint, or a task's writes, stored in one statement each, in PostgresSaver's tables.

PostgresSaver stores a task's writes one row a statement (a pipelined executemany), and a
checkpoint as one statement for each channel blob and one for the checkpoint. A run of ten
supersteps made about 120 such statements, two thirds of all it sent, and each costs the
worker's Python (psycopg, the pool) far more than the row costs the server. Here the rows
go as arrays through ``unnest``: one statement for a task's writes, one for a checkpoint
with its blobs (the blobs in a data-modifying CTE). The tables, the rows and what the
upserts do on a conflict are PostgresSaver's, so its reads are unchanged.

Channel versions are agentrt's short ones (agentrt.store.versions): they halve a
checkpoint row's JSON, which then stays under the size at which PostgreSQL compresses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg.types.json import Jsonb

from agentrt.store.held import saved_config
from agentrt.store.versions import next_version

__all__ = ["RowsSaver"]

_WRITES = """
    INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id,
        task_path, idx, channel, type, blob)
    SELECT %s, %s, %s, %s, %s, w.idx, w.channel, w.type, w.blob
    FROM unnest(%s::int[], %s::text[], %s::text[], %s::bytea[]) AS w(idx, channel, type, blob)
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO
"""
_WRITES_UPSERT = _WRITES + (
    "UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob"
)
"""Only special writes (an error, an interrupt): written again, the newer one counts."""
_WRITES_INSERT = _WRITES + "NOTHING"

_CHECKPOINT = """
    WITH blobs AS (
        INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
        SELECT %s, %s, b.channel, b.version, b.type, b.blob
        FROM unnest(%s::text[], %s::text[], %s::text[], %s::bytea[])
            AS b(channel, version, type, blob)
        ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
    )
    INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
        checkpoint, metadata)
    VALUES (%s, %s, %s, %s, %s, %s)
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)
    DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata
"""


class RowsSaver(PostgresSaver):
    """PostgresSaver writing a checkpoint, and a task's writes, in one statement each, with
    short channel versions."""

    def get_next_version(self, current: str | None, channel: None) -> str:
        return next_version(current)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        thread_id = configurable["thread_id"]
        checkpoint_ns = configurable["checkpoint_ns"]
        copy, blob_values = self._split_values(checkpoint)
        blob_versions = {k: v for k, v in new_versions.items() if k in blob_values}
        blobs = self._dump_blobs(thread_id, checkpoint_ns, blob_values, blob_versions)
        with self._cursor() as cur:
            cur.execute(
                _CHECKPOINT,
                (
                    thread_id,
                    checkpoint_ns,
                    *_columns(blobs, 2, 6),
                    thread_id,
                    checkpoint_ns,
                    checkpoint["id"],
                    configurable.get("checkpoint_id"),
                    Jsonb(copy),
                    Jsonb(get_serializable_checkpoint_metadata(config, metadata)),
                ),
            )
        return saved_config(config, checkpoint)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if not writes:
            return
        configurable = config["configurable"]
        rows = self._dump_writes(
            configurable["thread_id"],
            configurable["checkpoint_ns"],
            configurable["checkpoint_id"],
            task_id,
            task_path,
            writes,
        )
        if len({row[5] for row in rows}) < len(rows):  # one statement cannot upsert a key twice
            super().put_writes(config, writes, task_id, task_path)
            return
        special = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        with self._cursor() as cur:
            cur.execute(
                _WRITES_UPSERT if special else _WRITES_INSERT,
                (*rows[0][:5], *_columns(rows, 5, 9)),
            )

    def _split_values(self, checkpoint: Checkpoint) -> tuple[dict[str, Any], dict[str, Any]]:
        """The checkpoint as its row holds it (plain values inline), and the values stored as
        blobs: the split PostgresSaver's put makes."""
        copy: dict[str, Any] = {**checkpoint, "channel_values": {}}
        inline = copy["channel_values"]
        blobs: dict[str, Any] = {}
        for key, value in checkpoint["channel_values"].items():
            if value is None or isinstance(value, str | int | float | bool):
                inline[key] = value
            elif isinstance(value, _DeltaSnapshot):
                blobs[key] = value
                inline[key] = True  # the row marks where a snapshot's blob is
            else:
                blobs[key] = value
        return copy, blobs


def _columns(rows: Sequence[tuple[Any, ...]], start: int, stop: int) -> list[list[Any]]:
    """Columns ``start`` to ``stop`` of ``rows``, each a list: the arrays unnest takes."""
    return [[row[i] for row in rows] for i in range(start, stop)]
