"""The effects ledger in SQLite: reserve, record, settle; each its own transaction."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from agentrt.records import EffectOutcome, EffectRecord
from agentrt.store.sqlite.database import Database, record_of

__all__ = ["EffectsTable"]


class EffectsTable:
    """EffectStore on SQLite."""

    db: Database

    def get_effect(self, key: str) -> EffectRecord | None:
        return self.db.one("SELECT * FROM effects WHERE key=?", (key,), _effect)

    def list_effects(self, thread_id: str) -> list[EffectRecord]:
        """A run's ledger rows, in the order they were first reserved."""
        return self.db.all(
            "SELECT * FROM effects WHERE thread_id=? ORDER BY rowid", (thread_id,), _effect
        )

    def start_effect(
        self,
        *,
        key: str,
        thread_id: str,
        step_id: str,
        tool: str,
        args_digest: str,
        seen: int,
        owner: str | None = None,
    ) -> int | None:
        """Reserve the key (status started) and return which attempt this is, from 1; None
        if it moved since it was read (``seen`` attempts, 0: no row) or ``owner`` no longer
        holds the run's lease."""
        with self.db.tx() as db:
            row = db.execute(
                "INSERT INTO effects (key, thread_id, step_id, tool, args_digest, status, "
                "started_at) SELECT ?,?,?,?,?,'started',? "
                "WHERE ? IS NULL OR EXISTS "
                "(SELECT 1 FROM runs WHERE thread_id=? AND lease_owner=?) "
                "ON CONFLICT (key) DO UPDATE SET status='started', attempts=attempts+1, "
                "started_at=excluded.started_at, error=NULL, error_kind=NULL "
                "WHERE effects.status IN ('started', 'retry') AND effects.attempts=? "
                "RETURNING attempts",
                (
                    key,
                    thread_id,
                    step_id,
                    tool,
                    args_digest,
                    self.db.clock(),
                    owner,
                    thread_id,
                    owner,
                    seen,
                ),
            ).fetchone()
        return None if row is None else int(row["attempts"])

    def finish_effect(self, key: str, outcome: EffectOutcome, *, attempt: int) -> bool:
        """Record the outcome of ``attempt``: done with its result, or failed. False if it
        is no longer the attempt started (a person settled it, or another began since):
        a process that woke late writes nothing over the row's later attempt."""
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE effects SET status=?, result=?, error=?, error_kind=?, retries=?, "
                "finished_at=? WHERE key=? AND status='started' AND attempts=?",
                (
                    "failed" if outcome.failed else "done",
                    None if outcome.failed else json.dumps(outcome.result, default=str),
                    outcome.error,
                    outcome.error_kind if outcome.failed else None,
                    outcome.retries,
                    self.db.clock(),
                    key,
                    attempt,
                ),
            )
        return cur.rowcount == 1

    def note_in_doubt(self, key: str, reason: str, *, retries: int = 0) -> None:
        """Say why a started effect is in doubt, leaving it started (a person settles it)."""
        with self.db.tx() as db:
            db.execute(
                "UPDATE effects SET error=?, error_kind='timeout', retries=? "
                "WHERE key=? AND status='started'",
                (reason, retries, key),
            )

    def settle_effect(self, key: str, attempt: int, *, happened: bool, result: Any = None) -> bool:
        """Apply a reconcile decision to the attempt it was about: done with ``result`` if the
        effect happened, else 'retry'. False if that attempt is no longer the one in doubt."""
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE effects SET status=?, result=?, finished_at=? "
                "WHERE key=? AND status='started' AND attempts=?",
                (
                    "done" if happened else "retry",
                    json.dumps(result, default=str) if happened else None,
                    self.db.clock(),
                    key,
                    attempt,
                ),
            )
        return cur.rowcount == 1


def _effect(row: sqlite3.Row) -> EffectRecord:
    return record_of(EffectRecord, row, result=json.loads)
