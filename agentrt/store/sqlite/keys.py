"""The service's API keys in SQLite, by the sha256 of each key."""

from __future__ import annotations

import json
import sqlite3

from agentrt.principal import Principal
from agentrt.store.protocols import ApiKey
from agentrt.store.sqlite.database import Database

__all__ = ["KeysTable"]


class KeysTable:
    """KeyStore on SQLite."""

    db: Database

    def add_key(self, key: ApiKey, key_hash: str) -> None:
        with self.db.tx() as db:
            db.execute(
                "INSERT INTO api_keys (key_id, key_hash, principal, label, created_at) "
                "VALUES (?,?,?,?,?)",
                (
                    key.key_id,
                    key_hash,
                    json.dumps(key.principal.to_dict()),
                    key.label,
                    key.created_at,
                ),
            )

    def key_by_hash(self, key_hash: str) -> ApiKey | None:
        with self.db.read() as db:
            row = db.execute(
                "SELECT * FROM api_keys WHERE key_hash=? AND revoked_at IS NULL", (key_hash,)
            ).fetchone()
        return _key(row) if row else None

    def list_keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        with self.db.read() as db:
            rows = db.execute(f"SELECT * FROM api_keys{where} ORDER BY created_at, key_id")
            return [_key(r) for r in rows.fetchall()]

    def revoke_key(self, key_id: str) -> ApiKey | None:
        with self.db.tx() as db:
            db.execute(
                "UPDATE api_keys SET revoked_at=? WHERE key_id=? AND revoked_at IS NULL",
                (self.db.clock(), key_id),
            )
            row = db.execute("SELECT * FROM api_keys WHERE key_id=?", (key_id,)).fetchone()
        return _key(row) if row else None


def _key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        principal=Principal.from_dict(json.loads(row["principal"])),
        label=row["label"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
