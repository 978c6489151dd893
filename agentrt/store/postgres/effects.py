"""The effects ledger in PostgreSQL: reserve, record, settle; each its own transaction."""

from __future__ import annotations

from typing import Any

from psycopg.rows import DictRow

from agentrt.records import EffectOutcome, EffectRecord
from agentrt.store.postgres.database import (
    Cursor,
    Database,
    columns_of,
    doc,
    one_row,
    record_of,
)

__all__ = ["EffectsTable"]

EFFECT = columns_of(EffectRecord)


class EffectsTable:
    """EffectStore on PostgreSQL."""

    db: Database

    def get_effect(self, key: str) -> EffectRecord | None:
        return self.db.one(f"SELECT {EFFECT} FROM effects WHERE key=%s", (key,), _effect)

    def list_effects(self, thread_id: str) -> list[EffectRecord]:
        """A run's ledger rows, in the order they were first reserved."""
        return self.db.all(
            f"SELECT {EFFECT} FROM effects WHERE thread_id=%s ORDER BY seq", (thread_id,), _effect
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
        params = (
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
        )
        return self.db.apply(
            "INSERT INTO effects (key, thread_id, step_id, tool, args_digest, status, "
            "started_at) SELECT %s,%s,%s,%s,%s,'started',%s "
            "WHERE %s::text IS NULL OR EXISTS "
            "(SELECT 1 FROM runs WHERE thread_id=%s AND lease_owner=%s) "
            "ON CONFLICT (key) DO UPDATE SET status='started', "
            "attempts=effects.attempts+1, started_at=excluded.started_at, error=NULL, "
            "error_kind=NULL WHERE effects.status IN ('started', 'retry') "
            "AND effects.attempts=%s RETURNING attempts",
            params,
            _attempts,
        )

    def finish_effect(self, key: str, outcome: EffectOutcome, *, attempt: int) -> bool:
        """Record the outcome of ``attempt``: done with its result, or failed. False if it
        is no longer the attempt started (a person settled it, or another began since):
        a process that woke late writes nothing over the row's later attempt."""
        return self.db.apply(
            "UPDATE effects SET status=%s, result=%s, error=%s, error_kind=%s, retries=%s, "
            "finished_at=%s WHERE key=%s AND status='started' AND attempts=%s",
            (
                "failed" if outcome.failed else "done",
                None if outcome.failed else doc(outcome.result, default=str),
                outcome.error,
                outcome.error_kind if outcome.failed else None,
                outcome.retries,
                self.db.clock(),
                key,
                attempt,
            ),
            one_row,
        )

    def note_in_doubt(self, key: str, reason: str, *, retries: int = 0) -> None:
        """Say why a started effect is in doubt, leaving it started (a person settles it)."""
        self.db.execute(
            "UPDATE effects SET error=%s, error_kind='timeout', retries=%s "
            "WHERE key=%s AND status='started'",
            (reason, retries, key),
        )

    def settle_effect(self, key: str, attempt: int, *, happened: bool, result: Any = None) -> bool:
        """Apply a reconcile decision to the attempt it was about: done with ``result`` if the
        effect happened, else 'retry'. False if that attempt is no longer the one in doubt."""
        return self.db.apply(
            "UPDATE effects SET status=%s, result=%s, finished_at=%s "
            "WHERE key=%s AND status='started' AND attempts=%s",
            (
                "done" if happened else "retry",
                doc(result, default=str) if happened else None,
                self.db.clock(),
                key,
                attempt,
            ),
            one_row,
        )


def _attempts(cur: Cursor) -> int | None:
    row = cur.fetchone()
    return None if row is None else int(row["attempts"])


def _effect(row: DictRow) -> EffectRecord:
    return record_of(EffectRecord, row)
