"""Artifacts in memory (MemoryStore's share of ArtifactStore): content once by digest."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from agentrt.artifacts import ArtifactRecord

__all__ = ["ArtifactsMemory"]


@dataclass(slots=True)
class _Tables:
    blobs: dict[str, bytes] = field(default_factory=dict)
    refs: dict[tuple[str, str], ArtifactRecord] = field(default_factory=dict)


class ArtifactsMemory:
    """ArtifactStore in memory; a deleted run's references go with it (``_forget_run``)."""

    _lock: threading.RLock
    clock: Callable[[], float]

    @property
    def _tables(self) -> _Tables:
        # Made on first use: the store's __init__ stays the other families' own.
        with self._lock:
            return self.__dict__.setdefault("_artifact_tables", _Tables())  # type: ignore[no-any-return]

    @property
    def _blobs(self) -> dict[str, bytes]:
        return self._tables.blobs

    @property
    def _artifacts(self) -> dict[tuple[str, str], ArtifactRecord]:
        return self._tables.refs

    def _forget_run(self, thread_id: str) -> None:
        with self._lock:
            for key in [k for k in self._artifacts if k[0] == thread_id]:
                del self._artifacts[key]
        super()._forget_run(thread_id)  # type: ignore[misc]

    def put_artifact(self, record: ArtifactRecord, content: bytes) -> None:
        with self._lock:
            self._blobs.setdefault(record.ref.digest, bytes(content))
            kept = replace(record, created_at=self.clock())
            self._artifacts[(record.thread_id, record.ref.name)] = kept

    def get_artifact(self, thread_id: str, name: str) -> ArtifactRecord | None:
        with self._lock:
            return self._artifacts.get((thread_id, name))

    def list_artifacts(self, thread_id: str) -> list[ArtifactRecord]:
        with self._lock:
            return sorted(
                (a for (t, _), a in self._artifacts.items() if t == thread_id),
                key=lambda a: a.ref.name,
            )

    def artifact_content(self, digest: str) -> bytes | None:
        with self._lock:
            return self._blobs.get(digest)

    def drop_unreferenced_artifacts(self) -> int:
        with self._lock:
            named = {a.ref.digest for a in self._artifacts.values()}
            unreferenced = [d for d in self._blobs if d not in named]
            for digest in unreferenced:
                del self._blobs[digest]
            return len(unreferenced)
