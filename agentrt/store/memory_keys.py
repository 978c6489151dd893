"""API keys and stored spans in memory (MemoryStore's share of KeyStore and SpanStore)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace

from agentrt import records

__all__ = ["KeysMemory"]


class KeysMemory:
    """KeyStore and SpanStore in memory."""

    _lock: threading.RLock
    clock: Callable[[], float]

    def _keys_init(self) -> None:
        self._keys: dict[str, tuple[records.ApiKey, str]] = {}
        self._spans: dict[str, records.SpanRow] = {}

    def add_key(self, key: records.ApiKey, key_hash: str) -> None:
        with self._lock:
            self._keys[key.key_id] = (key, key_hash)

    def key_by_hash(self, key_hash: str) -> records.ApiKey | None:
        with self._lock:
            for key, digest in self._keys.values():
                if digest == key_hash and key.active:
                    return key
            return None

    def list_keys(self, *, include_revoked: bool = False) -> list[records.ApiKey]:
        with self._lock:
            keys = [k for k, _ in self._keys.values() if include_revoked or k.active]
            return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def revoke_key(self, key_id: str) -> records.ApiKey | None:
        with self._lock:
            found = self._keys.get(key_id)
            if found is None:
                return None
            key, digest = found
            if key.active:
                key = replace(key, revoked_at=self.clock())
                self._keys[key_id] = (key, digest)
            return key

    def write_spans(self, rows: Sequence[records.SpanRow]) -> None:
        with self._lock:
            for row in rows:
                self._spans[row.span_id] = row

    def spans_of(self, trace_id: str) -> list[records.SpanRow]:
        with self._lock:
            return sorted(
                (s for s in self._spans.values() if s.trace_id == trace_id),
                key=lambda s: s.start_ns,
            )
