"""The outbox and its webhook deliveries in memory (MemoryStore's share of OutboxStore).

The other families call ``_tell`` under the store's one lock, in the same step as the
change an event describes: the memory store's equivalent of one transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

from agentrt.store.outbox import (
    Delivery,
    DeliveryOutcome,
    DeliveryQuery,
    DeliveryStatus,
    OutboxEvent,
)

__all__ = ["OutboxMemory"]


@dataclass(slots=True)
class _Claim:
    owner: str
    until: float


class OutboxMemory:
    """OutboxStore in memory."""

    _lock: threading.RLock

    def _outbox_init(self) -> None:
        self._outbox: dict[str, OutboxEvent] = {}
        self._outbox_seq = 0  # never reused, as SQLite's AUTOINCREMENT
        self._cursors: dict[str, int] = {}
        self._deliveries: dict[tuple[str, str], Delivery] = {}
        self._claims: dict[tuple[str, str], _Claim] = {}

    def _tell(self, event: OutboxEvent | None) -> None:
        """Keep ``event`` (the caller holds the lock); an id kept before stays as it was."""
        if event is None or event.id in self._outbox:
            return
        self._outbox_seq += 1
        self._outbox[event.id] = replace(event, seq=self._outbox_seq)

    def _forget_run(self, thread_id: str) -> None:
        """A deleted run's events and their deliveries go with it."""
        for key in [k for k, e in self._outbox.items() if e.thread_id == thread_id]:
            del self._outbox[key]
        for pair in [k for k, d in self._deliveries.items() if d.event.thread_id == thread_id]:
            del self._deliveries[pair]
            self._claims.pop(pair, None)

    def outbox_events(
        self, *, after: int = 0, limit: int = 500, thread_id: str | None = None
    ) -> list[OutboxEvent]:
        with self._lock:
            found = [
                e
                for e in self._outbox.values()
                if e.seq > after and (thread_id is None or e.thread_id == thread_id)
            ]
        return sorted(found, key=lambda e: e.seq)[: max(0, limit)]

    def outbox_cursor(self, endpoint: str) -> int:
        with self._lock:
            return self._cursors.get(endpoint, 0)

    def add_deliveries(
        self, endpoint: str, events: Sequence[OutboxEvent], *, cursor: int, upto: int, now: float
    ) -> bool:
        with self._lock:
            if self._cursors.get(endpoint, 0) != cursor:
                return False
            for event in events:
                self._deliveries.setdefault(
                    (endpoint, event.id),
                    Delivery(
                        endpoint=endpoint,
                        event=event,
                        status=DeliveryStatus.PENDING,
                        next_at=now,
                        updated_at=now,
                    ),
                )
            self._cursors[endpoint] = upto
            return True

    def claim_deliveries(
        self, endpoint: str, *, owner: str, now: float, until: float, limit: int
    ) -> list[Delivery]:
        with self._lock:
            pending = sorted(
                (
                    d
                    for (name, _), d in self._deliveries.items()
                    if name == endpoint and d.status is DeliveryStatus.PENDING
                ),
                key=lambda d: d.event.seq,
            )
            first_of_run: dict[str, Delivery] = {}
            for d in pending:
                first_of_run.setdefault(d.event.thread_id, d)
            taken: list[Delivery] = []
            for d in sorted(first_of_run.values(), key=lambda d: d.event.seq):
                claim = self._claims.get((endpoint, d.event.id))
                if d.next_at > now or (claim is not None and claim.until > now):
                    continue
                if len(taken) >= limit:
                    break
                self._claims[(endpoint, d.event.id)] = _Claim(owner, until)
                taken.append(d)
            return taken

    def finish_delivery(
        self, endpoint: str, event_id: str, *, owner: str, outcome: DeliveryOutcome
    ) -> bool:
        key = (endpoint, event_id)
        with self._lock:
            found = self._deliveries.get(key)
            claim = self._claims.get(key)
            if found is None or found.status is not DeliveryStatus.PENDING:
                return False
            if claim is None or claim.owner != owner:
                return False
            delivered = outcome.status is DeliveryStatus.DELIVERED
            self._deliveries[key] = replace(
                found,
                status=outcome.status,
                attempts=outcome.attempts,
                next_at=outcome.next_at if outcome.next_at is not None else found.next_at,
                last_error=outcome.error,
                last_status=outcome.http_status,
                delivered_at=outcome.now if delivered else None,
                updated_at=outcome.now,
            )
            del self._claims[key]
            return True

    def list_deliveries(self, query: DeliveryQuery) -> list[Delivery]:
        q = query
        with self._lock:
            found = [
                d
                for d in self._deliveries.values()
                if (q.status is None or d.status.value == q.status)
                and (q.endpoint is None or d.endpoint == q.endpoint)
                and (q.tenant is None or d.event.tenant == q.tenant)
                and (q.thread_id is None or d.event.thread_id == q.thread_id)
                and (q.event_id is None or d.event.id == q.event_id)
            ]
        found.sort(key=lambda d: d.endpoint)
        found.sort(key=lambda d: d.event.seq, reverse=True)
        return found[: max(0, q.limit)]

    def retry_delivery(self, endpoint: str, event_id: str, *, now: float) -> bool:
        key = (endpoint, event_id)
        with self._lock:
            found = self._deliveries.get(key)
            if found is None or found.status is not DeliveryStatus.DEAD:
                return False
            self._deliveries[key] = replace(
                found, status=DeliveryStatus.PENDING, attempts=0, next_at=now, updated_at=now
            )
            self._claims.pop(key, None)
            return True
