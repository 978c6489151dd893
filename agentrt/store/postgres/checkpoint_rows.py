"""Checkpoints and task writes stored in one statement, in PostgresSaver's tables.

PostgresSaver stores a task's writes one row a statement (a pipelined executemany), and a
checkpoint as one statement for each channel blob and one for the checkpoint. A run of ten
supersteps made about 120 such statements, two thirds of all it sent, and each costs the
worker's Python (psycopg, the pool) far more than the row costs the server. Here a saver
call is first made rows (``Rows``), and rows go as arrays through ``unnest``, in binary
(text arrays of JSON would be escaped character by character): one statement for a
checkpoint with its blobs, or a task's writes, or for several such calls a thread held
back (agentrt.store.held), the tables in data-modifying CTEs. Rows that one statement would
write twice are merged first (``merged``) into what the calls, made one after another,
leave. The tables, the rows and what the upserts do on a conflict are PostgresSaver's, so
its reads are unchanged.

Channel versions are agentrt's short ones (agentrt.store.versions): they halve a
checkpoint row's JSON, which then stays under the size at which PostgreSQL compresses it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
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

from agentrt.errors import LeaseLost
from agentrt.store.held import Fence, saved_config
from agentrt.store.versions import next_version

__all__ = ["Rows", "RowsSaver", "merged"]

_BLOBS = """
    INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
        %b::bytea[])
    ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
"""
_WRITES = """
    INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id,
        task_path, idx, channel, type, blob)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
        %b::int[], %b::text[], %b::text[], %b::bytea[])
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO
"""
_ADDED = _WRITES + "NOTHING"
_REPLACED = _WRITES + (
    "UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob"
)
"""Only special writes (an error, an interrupt): written again, the newer one counts."""
_CHECKPOINTS = """
    INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
        checkpoint, metadata)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::jsonb[],
        %b::jsonb[])
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)
    DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata
"""
_USAGE = """
    UPDATE runs SET usage = u.usage
    FROM unnest(%b::text[], %b::json[]) AS u(thread_id, usage)
    WHERE runs.thread_id = u.thread_id
"""
"""A run's usage onto its row, with the checkpoint that carries it (agentrt.store.held)."""
_PARTS = (_BLOBS, _ADDED, _REPLACED, _CHECKPOINTS, _USAGE)
_WIDTHS = (6, 9, 9, 6, 2)

Row = tuple[Any, ...]


@dataclass(slots=True)
class Rows:
    """What saver calls write, as rows of PostgresSaver's three tables, not yet written."""

    blobs: list[Row] = field(default_factory=list)
    writes: list[tuple[Row, bool]] = field(default_factory=list)
    """Each write's row, and whether it replaces one already stored (a special write)."""
    checkpoints: list[Row] = field(default_factory=list)
    usage: list[Row] = field(default_factory=list)
    """A run's usage for its row: (thread id, usage)."""


def merged(calls: Sequence[Rows]) -> tuple[list[Row], ...]:
    """The rows ``calls`` write, one a key, as making the calls one after another would
    leave them (one statement may not upsert a key twice): the blobs, the writes added, the
    writes replacing, the checkpoints, the runs' usage (the last given for each run).

    A blob, or an ordinary write, already stored stays (DO NOTHING): the first counts. A
    special write replaces the value (channel, type, blob) but keeps the row's task path,
    and a checkpoint its parent: what PostgresSaver's upserts leave of the first.
    """
    blobs: dict[Row, Row] = {}
    writes: dict[Row, tuple[Row, bool]] = {}
    checkpoints: dict[Row, Row] = {}
    usage: dict[Any, Row] = {}
    for call in calls:
        for row in call.usage:
            usage[row[0]] = row
        for row in call.blobs:
            blobs.setdefault(row[:4], row)
        for row, replaces in call.writes:
            key = (*row[:4], row[5])
            first = writes.get(key)
            if first is None:
                writes[key] = row, replaces
            elif replaces:
                writes[key] = (*first[0][:6], *row[6:]), True
        for row in call.checkpoints:
            key = row[:3]
            first_row = checkpoints.get(key)
            checkpoints[key] = row if first_row is None else (*first_row[:4], *row[4:])
    added = [row for row, replaces in writes.values() if not replaces]
    replaced = [row for row, replaces in writes.values() if replaces]
    return list(blobs.values()), added, replaced, list(checkpoints.values()), [*usage.values()]


_FENCE = "fence AS (SELECT 1 FROM runs WHERE thread_id = %s AND lease_owner = %s)"
"""Whether the run's lease is still the writer's (its two parameters come first)."""
_FENCED = "    WHERE EXISTS (SELECT 1 FROM fence)\n    ON CONFLICT"
_FENCED_UPDATE = "    AND EXISTS (SELECT 1 FROM fence)\n"


@functools.cache
def _statement(present: tuple[bool, ...], fenced: bool = False) -> str:
    """One statement writing the parts ``present`` says have rows: all but the last in
    data-modifying CTEs, each run once whether or not the statement reads it. ``fenced``:
    each part writes only while the run's lease is the writer's, and the statement says
    whether it was (every part a CTE then, read by a last SELECT)."""
    parts = [part for part, there in zip(_PARTS, present, strict=True) if there]
    if fenced:
        guarded = [
            part + _FENCED_UPDATE if part is _USAGE else part.replace("    ON CONFLICT", _FENCED, 1)
            for part in parts
        ]
        ctes = ", ".join([_FENCE, *(f"p{i} AS ({part})" for i, part in enumerate(guarded))])
        return f"WITH {ctes} SELECT EXISTS (SELECT 1 FROM fence) AS held"
    ctes = ", ".join(f"p{i} AS ({part})" for i, part in enumerate(parts[:-1]))
    return (f"WITH {ctes} " if ctes else "") + parts[-1]


class RowsSaver(PostgresSaver):
    """PostgresSaver writing a checkpoint, and a task's writes, in one statement each, or
    several such calls in one, with short channel versions."""

    def get_next_version(self, current: str | None, channel: None) -> str:
        return next_version(current)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        self.write_rows([self.checkpoint_rows(config, checkpoint, metadata, new_versions)])
        return saved_config(config, checkpoint)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if writes:
            self.write_rows([self.writes_rows(config, writes, task_id, task_path)])

    def checkpoint_rows(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Rows:
        """The rows ``put`` writes: the checkpoint's, and its values' blobs."""
        configurable = config["configurable"]
        thread_id = configurable["thread_id"]
        checkpoint_ns = configurable["checkpoint_ns"]
        copy, blob_values = self._split_values(checkpoint)
        blob_versions = {k: v for k, v in new_versions.items() if k in blob_values}
        row = (
            thread_id,
            checkpoint_ns,
            checkpoint["id"],
            configurable.get("checkpoint_id"),
            Jsonb(copy),
            Jsonb(get_serializable_checkpoint_metadata(config, metadata)),
        )
        blobs = self._dump_blobs(thread_id, checkpoint_ns, blob_values, blob_versions)
        return Rows(blobs=list(blobs), checkpoints=[row])

    def writes_rows(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> Rows:
        """The rows ``put_writes`` writes: all replacing or none, as PostgresSaver's."""
        configurable = config["configurable"]
        rows = self._dump_writes(
            configurable["thread_id"],
            configurable["checkpoint_ns"],
            configurable["checkpoint_id"],
            task_id,
            task_path,
            writes,
        )
        replaces = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        return Rows(writes=[(row, replaces) for row in rows])

    def write_rows(self, calls: Sequence[Rows], fence: Fence | None = None) -> None:
        """What ``calls`` write, in one statement; with a ``fence`` (thread id, owner), only
        while the run's lease is the owner's, looked at in the same statement (LeaseLost,
        nothing written, if it is not)."""
        parts = merged(calls)
        present = tuple(bool(rows) for rows in parts)
        if not any(present):
            return
        params = [
            column
            for rows, width in zip(parts, _WIDTHS, strict=True)
            if rows
            for column in _columns(rows, width)
        ]
        with self._cursor() as cur:
            if fence is None:
                cur.execute(_statement(present), params)
                return
            cur.execute(_statement(present, fenced=True), [*fence, *params])
            row = cur.fetchone()
        if row is None or not row["held"]:
            raise LeaseLost(*fence)

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


def _columns(rows: Sequence[Row], width: int) -> list[list[Any]]:
    """The ``width`` columns of ``rows``, each a list: the arrays unnest takes."""
    return [[row[i] for row in rows] for i in range(width)]
