"""API keys of the service: made, looked up by hash, listed and revoked.

A key is ``agrt_<key id>_<secret>``. Only its sha256 is stored, so a copy of the database
hands nobody a working key; the key id is what lists and revocations name. Keys carry 256
bits of randomness, so a plain hash (not a slow password hash) is enough to keep them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

from agentrt.errors import ConfigError
from agentrt.principal import Principal
from agentrt.store.sqlite import Store

__all__ = ["KEY_PREFIX", "ApiKey", "authenticate", "create_key", "list_keys", "revoke_key"]

KEY_PREFIX = "agrt_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key as the store keeps it (never the key itself)."""

    key_id: str
    """Public handle of the key: listed, revoked, and part of the key's own text."""
    principal: Principal
    """Who a request made with this key acts as: id, roles, tenant, scopes."""
    label: str | None
    """What the key is for, in words."""
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "principal": self.principal.to_dict(),
            "label": self.label,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    store: Store, principal: Principal, *, label: str | None = None
) -> tuple[ApiKey, str]:
    """Make a key for ``principal``; returns its record and the key, which is never shown again."""
    if not isinstance(principal, Principal):
        raise ConfigError(f"an API key acts for an agentrt Principal, got {principal!r}")
    if not principal.tenant:
        raise ConfigError(
            f"principal {principal.id!r} has no tenant; an API key needs one, since the "
            "service shows each key only its own tenant's runs and approvals"
        )
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    now = store.clock()
    with store._tx() as db:
        db.execute(
            "INSERT INTO api_keys (key_id, key_hash, principal, label, created_at) "
            "VALUES (?,?,?,?,?)",
            (key_id, key_hash(key), json.dumps(principal.to_dict()), label, now),
        )
    return ApiKey(key_id, principal, label, now, None), key


def authenticate(store: Store, key: str) -> ApiKey | None:
    """The active key with this text, or None (unknown, malformed or revoked)."""
    if not key.startswith(KEY_PREFIX):
        return None
    with store._lock:
        row = store._conn.execute(
            "SELECT * FROM api_keys WHERE key_hash=? AND revoked_at IS NULL", (key_hash(key),)
        ).fetchone()
    return _key(row) if row else None


def list_keys(store: Store, *, include_revoked: bool = False) -> list[ApiKey]:
    """Every key, oldest first."""
    where = "" if include_revoked else " WHERE revoked_at IS NULL"
    with store._lock:
        rows = store._conn.execute(
            f"SELECT * FROM api_keys{where} ORDER BY created_at, key_id"
        ).fetchall()
    return [_key(r) for r in rows]


def revoke_key(store: Store, key_id: str) -> ApiKey:
    """Revoke a key by id; requests made with it are refused from now on."""
    with store._tx() as db:
        row = db.execute("SELECT * FROM api_keys WHERE key_id=?", (key_id,)).fetchone()
        if row is None:
            raise ConfigError(
                f"no API key has id {key_id!r} in {store.path!r}; list them with "
                "`agentrt keys list`"
            )
        if row["revoked_at"] is None:
            db.execute("UPDATE api_keys SET revoked_at=? WHERE key_id=?", (store.clock(), key_id))
        row = db.execute("SELECT * FROM api_keys WHERE key_id=?", (key_id,)).fetchone()
    return _key(row)


def _key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        principal=Principal.from_dict(json.loads(row["principal"])),
        label=row["label"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
