"""Recorded model responses in PostgreSQL, one per plan revision of a run.

A row's columns are the record's fields (and the run's id, and when it was kept), so the
statements follow ModelCall as it grows; a migration adds the column first.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from psycopg.rows import DictRow

from agentrt.state import Usage
from agentrt.store.postgres.database import Database, columns_of, doc, record_of
from agentrt.store.protocols import ModelCall

__all__ = ["RecordingsTable"]

MODEL_CALL = columns_of(ModelCall)
_FIELDS = tuple(f.name for f in fields(ModelCall))
_RECORD = (
    f"INSERT INTO model_calls (thread_id, created_at, {MODEL_CALL}) "
    f"VALUES (%s, %s, {', '.join('%s' for _ in _FIELDS)}) "
    "ON CONFLICT (thread_id, revision) DO UPDATE SET created_at=excluded.created_at, "
    + ", ".join(f"{name}=excluded.{name}" for name in _FIELDS if name != "revision")
)

_WITH_USAGE = "WITH usage_set AS (UPDATE runs SET usage=%s WHERE thread_id=%s) " + _RECORD


class RecordingsTable:
    """RecordingStore on PostgreSQL."""

    db: Database

    def record_model_call(
        self, thread_id: str, call: ModelCall, *, usage: Usage | None = None
    ) -> None:
        values: list[Any] = [getattr(call, name) for name in _FIELDS]
        values[_FIELDS.index("response")] = doc(call.response, default=str)
        if usage is None:
            self.db.execute(_RECORD, (thread_id, self.db.clock(), *values))
            return
        # One statement, so one round trip and one transaction; an upsert and a plain set,
        # so running it again after a lost connection comes to the same end.
        self.db.execute(_WITH_USAGE, (doc(usage), thread_id, thread_id, self.db.clock(), *values))

    def model_call(self, thread_id: str, revision: int) -> ModelCall | None:
        return self.db.one(
            f"SELECT {MODEL_CALL} FROM model_calls WHERE thread_id=%s AND revision=%s",
            (thread_id, revision),
            _model_call,
        )

    def model_calls(self, thread_id: str) -> list[ModelCall]:
        return self.db.all(
            f"SELECT {MODEL_CALL} FROM model_calls WHERE thread_id=%s ORDER BY revision",
            (thread_id,),
            _model_call,
        )


def _model_call(row: DictRow) -> ModelCall:
    return record_of(ModelCall, row)
