"""The service's API keys in SQLite, by the sha256 of each key."""

from __future__ import annotations

import json
import sqlite3

from agentrt.principal import Principal
from agentrt.store.protocols import ApiKey
from agentrt.store.sqlite.database import Database, record_of

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
        return self.db.one(
            "SELECT * FROM api_keys WHERE key_hash=? AND revoked_at IS NULL", (key_hash,), _key
        )

    def list_keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        return self.db.all(f"SELECT * FROM api_keys{where} ORDER BY created_at, key_id", (), _key)

    def revoke_key(self, key_id: str) -> ApiKey | None:
        with self.db.tx() as db:
            db.execute(
                "UPDATE api_keys SET revoked_at=? WHERE key_id=? AND revoked_at IS NULL",
                (self.db.clock(), key_id),
            )
        return self.db.one("SELECT * FROM api_keys WHERE key_id=?", (key_id,), _key)


def _key(row: sqlite3.Row) -> ApiKey:
    return record_of(ApiKey, row, principal=lambda text: Principal.from_dict(json.loads(text)))
