"""One thread a runtime renews the leases of every run its segments hold.

A run's lease (agentrt.runs.lease) expires ``ttl`` seconds after it was last taken or
renewed, so while a segment runs its lease is renewed every ``ttl / 3``. One thread keeps
them all, however many runs are driven at once: a thread a run cost every segment a
thread's start and join, the join a trip off the event loop (it may wait on a renewal in
progress), and a few hundred concurrent runs as many threads.

The leases due within a moment of each other (a thirtieth of their ttl, a second at the
default) are renewed together, in one write (``LeaseStore.renew_leases``). A run's row
that another transaction holds is not waited for: that lease is asked again a moment
later, and the others are renewed on time; a warning says so once the lease has gone
unrenewed for two thirds of its ttl. A renewal that fails (a lost connection) is asked
again a moment later too, and logged once a lease until one goes through.

``let_go`` only takes the lease off the list: it never waits, so the async driver calls
it on the loop. A renewal already under way may still land; it is conditional on the
owner, so once the lease is released it changes nothing, and a refusal for a lease let
go is not reported as lost.

Each renewal also writes the run's active time as its segment counts it now, the node in
flight included (``Kept.counted``, which the node wrapper notes in memory as each node
begins and ends): a process killed inside a long node leaves on the row what it spent
there, all but the last ``ttl / 3`` at most, and the next segment counts on from it. Only
a live driver renews, so time when no process held the run (killed at night, resumed in
the morning) is never counted; and a node costs no write for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agentrt.logs import get_logger
from agentrt.processes import in_forked_child
from agentrt.store.protocols import LeaseRenewal, LeaseStore

__all__ = ["Kept", "LeaseKeeper"]

logger = get_logger()

_MOMENT = 30
"""A moment is ttl / this (a second at 30 s): leases due within it are renewed together,
and a lease that could not be renewed is asked again after it."""


def _leases(kept: list[Kept]) -> str:
    """The leases, named by their runs for a log line: the first few, and how many more."""
    if len(kept) == 1:
        return f"the lease on run {kept[0].thread_id!r}"
    named = ", ".join(repr(k.thread_id) for k in kept[:5])
    more = f" and {len(kept) - 5} more" if len(kept) > 5 else ""
    return f"the leases on runs {named}{more}"


@dataclass(eq=False, slots=True)
class Kept:
    """A lease the keeper renews: one segment's hold on its run."""

    thread_id: str
    owner: str
    ttl: float
    due: float
    """When (``monotonic``) it is renewed next."""
    renewed: float
    """When (``monotonic``) it was last taken or renewed: it expires ``ttl`` after."""
    warned: bool = False
    """A warning said it has gone unrenewed too long (until it is renewed again)."""
    failing: bool = False
    """Its last renewal failed (logged once, till one goes through)."""
    lost: bool = False
    """A renewal found the lease another owner's: the segment stops before its next step
    (the node wrapper looks), and the ledger would refuse its effects anyway."""
    expires_at: float = 0.0
    """When (the store's clock) the lease runs out as last taken or renewed here."""
    counted: tuple[float, float | None] | None = None
    """The run's active seconds as this segment counts them, and when (the run's clock)
    the node in flight began, whose time is not in them yet (None between nodes); None:
    nothing counted, a renewal leaves the row's figure as it is. One value, swapped whole
    by the node wrapper, so the renewing thread never reads half of a change."""

    def active_seconds(self, now: float) -> float | None:
        """The run's active time at ``now`` (the run's clock), the node in flight's so far
        included; None if nothing is counted."""
        counted = self.counted
        if counted is None:
            return None
        active, since = counted
        return active if since is None else active + max(0.0, now - since)


class LeaseKeeper:
    """Renews the leases of the runs a driver's segments hold, from one thread of its own.

    The thread starts with the first lease kept and ends when it finds none left, so a
    runtime that drives nothing has no thread. Lease times are the store's ``clock``;
    when to renew is this process's ``monotonic`` clock; active time is the run's
    ``run_clock`` (the runtime's, by which nodes are timed; the store's if not given).
    """

    def __init__(
        self,
        store: LeaseStore,
        clock: Callable[[], float],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        run_clock: Callable[[], float] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._monotonic = monotonic
        self._run_clock = run_clock or clock
        self._closed = False
        self._forget()
        in_forked_child(self._forget)

    def _forget(self) -> None:
        """Keep nothing: at the start, and in a forked child (its parent's leases, and the
        thread renewing them, are not its own; the parent's lock may have been held)."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._kept: dict[str, Kept] = {}
        self._thread: threading.Thread | None = None

    def keep(self, thread_id: str, owner: str, ttl: float, *, active: float | None = None) -> Kept:
        """Renew ``owner``'s lease on the run every ``ttl / 3`` until ``let_go``; ``active``:
        the run's active seconds counted so far, if known (the row's live figure)."""
        now = self._monotonic()
        kept = Kept(thread_id, owner, ttl, now + ttl / 3, now, expires_at=self._clock() + ttl)
        if active is not None:
            kept.counted = (active, None)
        with self._lock:
            if self._closed:  # the runtime is closed: nothing is renewed any more
                return kept
            # The thread waits for the earliest lease due: told when this one comes first.
            first = all(kept.due < k.due for k in self._kept.values())
            self._kept[thread_id] = kept
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="agentrt-leases", daemon=True
                )
                self._thread.start()
            elif first:
                self._changed.notify()
        return kept

    def let_go(self, kept: Kept) -> None:
        """Stop renewing that lease (the caller releases it). Never waits on a renewal."""
        with self._lock:
            if self._kept.get(kept.thread_id) is kept:
                del self._kept[kept.thread_id]

    def close(self) -> None:
        """Renew nothing more, and end the thread (none starts again)."""
        with self._lock:
            self._closed = True
            self._kept.clear()
            thread = self._thread
            self._changed.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()  # after a renewal in progress, if any

    def surely_held(self, kept: Kept) -> bool:
        """True if no other process can have taken ``kept`` over yet: not found lost, and
        taken or renewed less than half its ttl ago (on the store's clock, by which it
        expires). Else its row must be read to know."""
        return not kept.lost and self._clock() + kept.ttl / 2 < kept.expires_at

    def kept(self) -> list[str]:
        """The runs whose leases are being renewed now."""
        with self._lock:
            return list(self._kept)

    def renew_due(self) -> float | None:
        """Renew every lease due now or within a moment, in one write; seconds until the
        next is due (None: none is kept)."""
        now = self._monotonic()
        with self._lock:
            due = [k for k in self._kept.values() if k.due - k.ttl / _MOMENT <= now]
            for kept in due:
                kept.due = now + kept.ttl / 3
        if due:
            self._renew(due, now)
        with self._lock:
            return self._next_wait()

    def _next_wait(self) -> float | None:
        """Seconds until the earliest lease kept is due (None: none is); under the lock."""
        if not self._kept:
            return None
        return max(0.0, min(k.due for k in self._kept.values()) - self._monotonic())

    def _renew(self, due: list[Kept], now: float) -> None:
        at, ran = self._clock(), self._run_clock()
        try:
            answers = self._store.renew_leases(
                [LeaseRenewal(k.thread_id, k.owner, at + k.ttl, k.active_seconds(ran)) for k in due]
            )
        except Exception:  # a failed renewal must not end the keeper, or the runs
            newly = [k for k in due if not k.failing]
            if newly:  # each lease logged once, till one of its renewals goes through
                logger.exception("could not renew %s; asking again", _leases(newly))
            with self._lock:  # a passing fault gets more tries before the leases expire
                for kept in due:
                    kept.due, kept.failing = now + kept.ttl / _MOMENT, True
            return
        lost: list[Kept] = []
        stuck: list[Kept] = []
        with self._lock:
            for kept in due:
                if self._kept.get(kept.thread_id) is not kept:
                    continue  # let go meanwhile: released, not lost
                answer = answers.get(kept.thread_id)
                kept.failing = False
                if answer:
                    kept.renewed, kept.warned, kept.expires_at = now, False, at + kept.ttl
                elif answer is False:
                    del self._kept[kept.thread_id]
                    kept.lost = True
                    lost.append(kept)
                else:  # its row was busy (or the store gave no answer): asked again soon
                    kept.due = now + kept.ttl / _MOMENT
                    if not kept.warned and now - kept.renewed >= 2 * kept.ttl / 3:
                        kept.warned = True
                        stuck.append(kept)
        for kept in lost:
            logger.warning("lost the lease on run %r", kept.thread_id)
        for kept in stuck:
            left = kept.renewed + kept.ttl - now
            logger.warning(
                "could not renew the lease on run %r for %.1f s: another transaction holds "
                "its row; %s",
                kept.thread_id,
                now - kept.renewed,
                f"the lease expires in {left:.1f} s unless it is let go"
                if left > 0
                else f"the lease expired {-left:.1f} s ago",
            )

    def _run(self) -> None:
        while True:
            self.renew_due()
            with self._lock:
                if self._closed or not self._kept:
                    # Ends under the lock: a lease kept from now on starts a new thread.
                    self._thread = None
                    return
                # Worked out under the lock it waits on, so a keep that comes first is
                # never told before the wait begins.
                wait = self._next_wait()
                if wait:
                    self._changed.wait(wait)
