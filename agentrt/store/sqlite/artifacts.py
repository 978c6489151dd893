"""Artifacts in SQLite: content once by digest, and each run's references to it."""

from __future__ import annotations

import sqlite3

from agentrt.artifacts import ArtifactRecord, ArtifactRef
from agentrt.store.sqlite.database import Database

__all__ = ["ArtifactsTable"]

_COLUMNS = "thread_id, name, digest, media_type, size, preview, tenant, step_id, created_at"


class ArtifactsTable:
    """ArtifactStore on SQLite."""

    db: Database

    def put_artifact(self, record: ArtifactRecord, content: bytes) -> None:
        ref = record.ref
        with self.db.tx() as db:
            # Looked up first: content already kept is not written (or sent) again.
            kept = db.execute(
                "SELECT 1 FROM artifact_blobs WHERE digest=?", (ref.digest,)
            ).fetchone()
            if kept is None:
                db.execute(
                    "INSERT INTO artifact_blobs (digest, size, content, created_at) "
                    "VALUES (?,?,?,?)",
                    (ref.digest, len(content), sqlite3.Binary(content), self.db.clock()),
                )
            db.execute(
                f"INSERT INTO artifacts ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (thread_id, name) DO UPDATE SET digest=excluded.digest, "
                "media_type=excluded.media_type, size=excluded.size, "
                "preview=excluded.preview, step_id=excluded.step_id, "
                "created_at=excluded.created_at",
                (
                    record.thread_id,
                    ref.name,
                    ref.digest,
                    ref.media_type,
                    ref.size,
                    ref.preview,
                    record.tenant,
                    record.step_id,
                    self.db.clock(),
                ),
            )

    def get_artifact(self, thread_id: str, name: str) -> ArtifactRecord | None:
        return self.db.one(
            f"SELECT {_COLUMNS} FROM artifacts WHERE thread_id=? AND name=?",
            (thread_id, name),
            _artifact,
        )

    def list_artifacts(self, thread_id: str) -> list[ArtifactRecord]:
        return self.db.all(
            f"SELECT {_COLUMNS} FROM artifacts WHERE thread_id=? ORDER BY name",
            (thread_id,),
            _artifact,
        )

    def artifact_content(self, digest: str) -> bytes | None:
        with self.db.read() as db:
            row = db.execute(
                "SELECT content FROM artifact_blobs WHERE digest=?", (digest,)
            ).fetchone()
        return None if row is None else bytes(row["content"])

    def drop_unreferenced_artifacts(self) -> int:
        with self.db.tx() as db:
            cur = db.execute(
                "DELETE FROM artifact_blobs WHERE NOT EXISTS "
                "(SELECT 1 FROM artifacts a WHERE a.digest = artifact_blobs.digest)"
            )
        return cur.rowcount


def _artifact(row: sqlite3.Row) -> ArtifactRecord:
    return ArtifactRecord(
        thread_id=row["thread_id"],
        ref=ArtifactRef(
            name=row["name"],
            media_type=row["media_type"],
            size=row["size"],
            digest=row["digest"],
            preview=row["preview"],
        ),
        tenant=row["tenant"],
        step_id=row["step_id"],
        created_at=row["created_at"],
    )
