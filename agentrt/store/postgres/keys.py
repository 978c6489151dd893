"""The service's API keys in PostgreSQL, by the sha256 of each key."""

from __future__ import annotations

from psycopg.rows import DictRow

from agentrt.principal import Principal
from agentrt.store.postgres.database import Database, columns_of, doc, record_of
from agentrt.store.protocols import ApiKey

__all__ = ["KeysTable"]

KEY = columns_of(ApiKey)


class KeysTable:
    """KeyStore on PostgreSQL."""

    db: Database

    def add_key(self, key: ApiKey, key_hash: str) -> None:
        # Not run twice blindly: a second run would fail on the id the first one took.
        self.db.apply(
            "INSERT INTO api_keys (key_id, key_hash, principal, label, created_at) "
            "VALUES (%s,%s,%s,%s,%s)",
            (key.key_id, key_hash, doc(key.principal.to_dict()), key.label, key.created_at),
            lambda cur: None,
        )

    def key_by_hash(self, key_hash: str) -> ApiKey | None:
        return self.db.one(
            f"SELECT {KEY} FROM api_keys WHERE key_hash=%s AND revoked_at IS NULL",
            (key_hash,),
            _key,
        )

    def list_keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        return self.db.all(
            f"SELECT {KEY} FROM api_keys{where} ORDER BY created_at, key_id", (), _key
        )

    def revoke_key(self, key_id: str) -> ApiKey | None:
        self.db.execute(
            "UPDATE api_keys SET revoked_at=%s WHERE key_id=%s AND revoked_at IS NULL",
            (self.db.clock(), key_id),
        )
        return self.db.one(f"SELECT {KEY} FROM api_keys WHERE key_id=%s", (key_id,), _key)


def _key(row: DictRow) -> ApiKey:
    return record_of(ApiKey, row, principal=Principal.from_dict)
