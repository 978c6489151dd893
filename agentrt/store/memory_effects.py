"""The exactly-once ledger in memory (MemoryStore's share of EffectStore): one record a
idempotency key, its attempts counted."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from agentrt import records
from agentrt.records import EffectOutcome

__all__ = ["EffectsMemory"]


class EffectsMemory:
    """EffectStore in memory."""

    _lock: threading.RLock
    _leases: dict[str, records.LeaseRecord]
    """The runs' leases (MemoryStore's): an effect is reserved only under its run's."""

    @property
    def _effects(self) -> dict[str, records.EffectRecord]:
        # Made on first use: the store's __init__ stays the other families' own.
        with self._lock:
            return self.__dict__.setdefault("_effect_records", {})  # type: ignore[no-any-return]

    def get_effect(self, key: str) -> records.EffectRecord | None:
        with self._lock:
            return self._effects.get(key)

    def list_effects(self, thread_id: str) -> list[records.EffectRecord]:
        with self._lock:
            return [e for e in self._effects.values() if e.thread_id == thread_id]

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
        with self._lock:
            if owner is not None:
                held = self._leases.get(thread_id)
                if held is None or held.owner != owner:
                    return None
            found = self._effects.get(key)
            if found is not None and (
                found.status not in ("started", "retry") or found.attempts != seen
            ):
                return None
            attempts = 1 if found is None else found.attempts + 1
            self._effects[key] = records.EffectRecord(
                key=key,
                thread_id=thread_id,
                step_id=step_id,
                tool=tool,
                status="started",
                result=None if found is None else found.result,
                error=None,
                attempts=attempts,
                retries=0 if found is None else found.retries,
            )
            return attempts

    def finish_effect(self, key: str, outcome: EffectOutcome, *, attempt: int) -> bool:
        with self._lock:
            found = self._effects.get(key)
            if found is None or found.status != "started" or found.attempts != attempt:
                return False
            self._effects[key] = replace(
                found,
                status="failed" if outcome.failed else "done",
                result=None if outcome.failed else outcome.result,
                error=outcome.error,
                error_kind=outcome.error_kind if outcome.failed else None,
                retries=outcome.retries,
            )
            return True

    def note_in_doubt(self, key: str, reason: str, *, retries: int = 0) -> None:
        with self._lock:
            found = self._effects.get(key)
            if found is not None and found.status == "started":
                self._effects[key] = replace(
                    found, error=reason, error_kind="timeout", retries=retries
                )

    def settle_effect(self, key: str, attempt: int, *, happened: bool, result: Any = None) -> bool:
        with self._lock:
            found = self._effects.get(key)
            if found is None or found.status != "started" or found.attempts != attempt:
                return False
            self._effects[key] = replace(
                found,
                status="done" if happened else "retry",
                result=result if happened else None,
            )
            return True
