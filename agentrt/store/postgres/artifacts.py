"""Artifacts in PostgreSQL: content once by digest, and each run's references to it."""

from __future__ import annotations

from psycopg.rows import DictRow

from agentrt.artifacts import ArtifactRecord, ArtifactRef
from agentrt.store.postgres.database import Conn, Database

__all__ = ["ArtifactsTable"]

_COLUMNS = "thread_id, name, digest, media_type, size, preview, tenant, step_id, created_at"


class ArtifactsTable:
    """ArtifactStore on PostgreSQL."""

    db: Database

    def put_artifact(self, record: ArtifactRecord, content: bytes) -> None:
        ref = record.ref
        now = self.db.clock()

        def put(conn: Conn) -> None:
            # FOR KEY SHARE holds kept content against a prune deleting it before the
            # reference below is written (the prune skips what is locked); content already
            # kept is neither written nor sent again.
            kept = conn.execute(
                "SELECT 1 FROM artifact_blobs WHERE digest=%s FOR KEY SHARE", (ref.digest,)
            ).fetchone()
            if kept is None:
                conn.execute(
                    "INSERT INTO artifact_blobs (digest, size, content, created_at) "
                    "VALUES (%s,%s,%s,%s) ON CONFLICT (digest) DO NOTHING",
                    (ref.digest, len(content), content, now),
                )
            conn.execute(
                f"INSERT INTO artifacts ({_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) "
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
                    now,
                ),
            )

        self.db.write(put)  # the same end if run twice: safe to try again

    def get_artifact(self, thread_id: str, name: str) -> ArtifactRecord | None:
        return self.db.one(
            f"SELECT {_COLUMNS} FROM artifacts WHERE thread_id=%s AND name=%s",
            (thread_id, name),
            _artifact,
        )

    def list_artifacts(self, thread_id: str) -> list[ArtifactRecord]:
        return self.db.all(
            f"SELECT {_COLUMNS} FROM artifacts WHERE thread_id=%s ORDER BY name",
            (thread_id,),
            _artifact,
        )

    def artifact_content(self, digest: str) -> bytes | None:
        return self.db.one(
            "SELECT content FROM artifact_blobs WHERE digest=%s",
            (digest,),
            lambda row: bytes(row["content"]),
        )

    def drop_unreferenced_artifacts(self) -> int:
        # SKIP LOCKED passes over content a put is about to refer to (it holds it).
        return self.db.execute(
            "DELETE FROM artifact_blobs WHERE digest IN (SELECT b.digest FROM artifact_blobs b "
            "WHERE NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.digest = b.digest) "
            "FOR UPDATE SKIP LOCKED)",
            (),
        )


def _artifact(row: DictRow) -> ArtifactRecord:
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
