"""API keys of the service: made, looked up, listed and revoked.

A key is ``agrt_<key id>_<secret>``. Only its sha256 is stored, so a copy of the database
hands nobody a working key; the key id is what lists and revocations name. Keys carry 256
bits of randomness, so a plain hash (not a slow password hash) is enough to keep them.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from agentrt.errors import ConfigError
from agentrt.principal import Principal
from agentrt.store.protocols import ApiKey, KeyStore

__all__ = ["KEY_PREFIX", "ApiKey", "ApiKeys", "key_hash"]

KEY_PREFIX = "agrt_"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """The keys of one store (``rt.keys``)."""

    def __init__(self, store: KeyStore, *, clock: Callable[[], float], where: str) -> None:
        self._store = store
        self._clock = clock
        self._where = where

    def create(self, principal: Principal, *, label: str | None = None) -> tuple[ApiKey, str]:
        """Make a key for ``principal``: its record, and the key, which is never shown again."""
        if not isinstance(principal, Principal):
            raise ConfigError(f"an API key acts for an agentrt Principal, got {principal!r}")
        if not principal.tenant:
            raise ConfigError(
                f"principal {principal.id!r} has no tenant; an API key needs one, since the "
                "service shows each key only its own tenant's runs and approvals"
            )
        if not principal.tenant.strip():  # a tenant no run is ever started in
            raise ConfigError(
                f"principal {principal.id!r} has the blank tenant {principal.tenant!r}; give "
                "its tenant's name, e.g. tenant='acme' ('*': every tenant's)"
            )
        # A role is a name an approval rule asks for, a scope one a tool requires; a blank
        # one is a typo (an unset variable in a script) that no rule or tool can ever name.
        for kind, names, example in (
            ("role", principal.roles, "refund-approver"),
            ("scope", principal.scopes, "orders:read"),
        ):
            for name in names:
                if not name.strip():
                    raise ConfigError(
                        f"principal {principal.id!r} has the blank {kind} {name!r}; give each "
                        f"{kind} a name, e.g. {kind}s=[{example!r}] (agentrt keys create "
                        f"--{kind} {example}), or no {kind}s for a key with none"
                    )
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id, principal, label, self._clock())
        self._store.add_key(record, key_hash(key))
        return record, key

    def authenticate(self, key: str) -> ApiKey | None:
        """The active key with this text, or None (unknown, malformed or revoked)."""
        if not key.startswith(KEY_PREFIX):
            return None
        return self._store.key_by_hash(key_hash(key))

    def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        """Every key, oldest first."""
        return self._store.list_keys(include_revoked=include_revoked)

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by id; requests made with it are refused from now on."""
        revoked = self._store.revoke_key(key_id)
        if revoked is None:
            raise ConfigError(
                f"no API key has id {key_id!r} in {self._where!r}; list them with "
                "`agentrt keys list`"
            )
        return revoked
