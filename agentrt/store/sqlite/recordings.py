"""Recorded model responses in SQLite, one per plan revision of a run."""

from __future__ import annotations

import json
import sqlite3

from agentrt.state import Usage
from agentrt.store.protocols import ModelCall
from agentrt.store.sqlite.database import Database, record_of

__all__ = ["RecordingsTable"]


class RecordingsTable:
    """RecordingStore on SQLite."""

    db: Database

    def record_model_call(
        self, thread_id: str, call: ModelCall, *, usage: Usage | None = None
    ) -> None:
        with self.db.tx() as db:
            if usage is not None:
                db.execute(
                    "UPDATE runs SET usage=? WHERE thread_id=?", (json.dumps(usage), thread_id)
                )
            db.execute(
                "INSERT OR REPLACE INTO model_calls (thread_id, revision, model, "
                "request_digest, response, created_at, prompt_tokens, cap) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (
                    thread_id,
                    call.revision,
                    call.model,
                    call.request_digest,
                    json.dumps(call.response, default=str),
                    self.db.clock(),
                    call.prompt_tokens,
                    call.cap,
                ),
            )

    def model_call(self, thread_id: str, revision: int) -> ModelCall | None:
        return self.db.one(
            "SELECT * FROM model_calls WHERE thread_id=? AND revision=?",
            (thread_id, revision),
            _model_call,
        )

    def model_calls(self, thread_id: str) -> list[ModelCall]:
        return self.db.all(
            "SELECT * FROM model_calls WHERE thread_id=? ORDER BY revision",
            (thread_id,),
            _model_call,
        )


def _model_call(row: sqlite3.Row) -> ModelCall:
    return record_of(ModelCall, row, response=json.loads)
