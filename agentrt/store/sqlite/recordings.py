"""Recorded model responses in SQLite, one per plan revision of a run."""

from __future__ import annotations

import json
import sqlite3

from agentrt.store.protocols import ModelCall
from agentrt.store.sqlite.database import Database

__all__ = ["RecordingsTable"]


class RecordingsTable:
    """RecordingStore on SQLite."""

    db: Database

    def record_model_call(self, thread_id: str, call: ModelCall) -> None:
        with self.db.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO model_calls (thread_id, revision, model, "
                "request_digest, response, created_at) VALUES (?,?,?,?,?,?)",
                (
                    thread_id,
                    call.revision,
                    call.model,
                    call.request_digest,
                    json.dumps(call.response, default=str),
                    self.db.clock(),
                ),
            )

    def model_call(self, thread_id: str, revision: int) -> ModelCall | None:
        with self.db.read() as db:
            row = db.execute(
                "SELECT * FROM model_calls WHERE thread_id=? AND revision=?",
                (thread_id, revision),
            ).fetchone()
        return _model_call(row) if row else None

    def model_calls(self, thread_id: str) -> list[ModelCall]:
        with self.db.read() as db:
            rows = db.execute(
                "SELECT * FROM model_calls WHERE thread_id=? ORDER BY revision", (thread_id,)
            ).fetchall()
        return [_model_call(r) for r in rows]


def _model_call(row: sqlite3.Row) -> ModelCall:
    return ModelCall(
        revision=row["revision"],
        model=row["model"],
        request_digest=row["request_digest"],
        response=json.loads(row["response"]),
    )
