"""Workers: a process that claims the runs needing a driver from a shared database and drives them.

``agentrt worker`` runs one (``AgentRuntime.worker``); any number may share a database, on
any number of machines (PostgreSQL) or on one (a SQLite file). A worker:

- claims as many runs as it has free slots (``Store.claim_runs``: each run goes to one
  worker) and drives each in a thread of its own (``Driver.take_over``) until the run ends,
  waits at a gate, waits to retry, or fails;
- looks again when the database says a run may need a driver (LISTEN/NOTIFY on PostgreSQL),
  when one of its runs frees a slot, when a wait to retry or a lease it saw ends, and at
  least every ``poll`` seconds (SQLite tells no one of a commit, so there it polls often);
- on a store only this machine uses, takes over at once the runs of a process here that
  died (its pid is gone) rather than waiting for their leases to expire;
- expires overdue approvals now and then (any process may: each expiry is a conditional
  write), which leaves their runs to be claimed;
- on ``stop()`` claims nothing more, and each run it drives stops before its next step,
  resumable, its lease let go: another worker claims it at once. ``run()`` returns then.
  Only its own runs stop: the runtime goes on driving others (``rt.start``, a new worker).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from agentrt.errors import ConfigError, RunBusy
from agentrt.logs import get_logger
from agentrt.runs.driver import Driver
from agentrt.runs.lease import LeaseOwner, acquire, owner_dead
from agentrt.state import RunStatus
from agentrt.steps import drive as drive_steps

__all__ = ["Worker", "WorkerSettings"]

logger = get_logger()

NOTIFIED_POLL = 10.0
"""Seconds between looks when the database notifies (a fallback: a notification is lost
only while the listening connection is down, and it looks again when it is back)."""

POLLED_POLL = 0.25
"""Seconds between looks on a store that notifies no one (SQLite)."""


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    """How a worker claims and drives runs."""

    concurrency: int = 8
    """Runs driven at once, each in a thread of its own."""
    poll: float | None = None
    """Seconds between looks when nothing wakes the worker; None: 10 where the database
    notifies (PostgreSQL), 0.25 where it does not (SQLite)."""
    sweep_every: float | None = 30.0
    """Seconds between expiries of overdue approvals; None: this worker expires none."""

    def __post_init__(self) -> None:
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int):
            raise ConfigError(f"concurrency must be a whole number, got {self.concurrency!r}")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be 1 or more runs, got {self.concurrency!r}")
        for name in ("poll", "sweep_every"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, int | float) and not isinstance(value, bool) and value > 0
            ):
                raise ConfigError(f"{name} must be a number of seconds > 0 or None, got {value!r}")


class Worker:
    """Claims runs from the runtime's database and drives them, until ``stop()``."""

    def __init__(self, driver: Driver, settings: WorkerSettings) -> None:
        self.driver = driver
        self.store = driver.store
        self.settings = settings
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._in_hand: set[str] = set()
        self.driven = 0
        """Runs this worker has carried on (each claim of a run counts)."""

    @property
    def in_hand(self) -> int:
        """Runs this worker drives now."""
        with self._lock:
            return len(self._in_hand)

    def stop(self) -> None:
        """Claim nothing more; runs in hand stop before their next step (safe from a signal
        handler and from any thread)."""
        self._stopping.set()
        # Every run claimed, driven or waiting for a thread of the pool; under the lock, so
        # a run that ends meanwhile is forgotten after it is marked, never before.
        with self._lock:
            self.driver.stop_at_next_step(self._in_hand)
        self._wake.set()

    def run(self) -> None:
        """Claim and drive runs until stop(); return once every run in hand has stopped."""
        listening = self.store.listen(self._wake.set)
        poll = self.settings.poll or (POLLED_POLL if listening is None else NOTIFIED_POLL)
        logger.info(
            "worker: driving runs from %s, %d at a time, %s",
            self.store.location,
            self.settings.concurrency,
            "told by the database when one needs a driver"
            if listening is not None
            else f"looking every {poll:g} s",
        )
        sweep_at = time.monotonic()
        pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="agentrt-run")
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                wait = poll
                try:
                    wait = min(wait, self._claim(pool))
                    if self.settings.sweep_every is not None and time.monotonic() >= sweep_at:
                        sweep_at = time.monotonic() + self.settings.sweep_every
                        drive_steps(self.driver.sweep(None, resume=False))
                except Exception:  # a database away past its patience: try again shortly
                    logger.exception("worker: claiming runs failed; trying again")
                    wait = min(wait, 1.0)
                self._wake.wait(wait)
        finally:
            self.stop()
            pool.shutdown(wait=True)  # each run stops before its next step
            if listening is not None:
                listening.close()
        logger.info("worker: stopped, %d runs carried on", self.driven)

    def _claim(self, pool: ThreadPoolExecutor) -> float:
        """Claim runs for the free slots and hand them to the pool; seconds until a run not
        claimable now may become so (or the poll interval)."""
        free = self.settings.concurrency - self.in_hand
        if free <= 0:
            return float("inf")  # a run that ends frees a slot and wakes the loop
        now = self.store.clock()
        owner = LeaseOwner.this_process(self.driver.new_id())
        claim = self.store.claim_runs(self.driver.lease_for(owner), now=now, limit=free)
        for thread_id in claim.thread_ids:
            self._submit(pool, thread_id, owner)
        if self.store.one_host and len(claim.thread_ids) < free:
            self._take_dead(pool, owner, free - len(claim.thread_ids), now)
        return float("inf") if claim.next_at is None else max(0.0, claim.next_at - now)

    def _take_dead(
        self, pool: ThreadPoolExecutor, owner: LeaseOwner, free: int, now: float
    ) -> None:
        """On a store only this machine uses: take over the runs whose lease is held by a
        process here that is gone, without waiting for the lease to expire."""
        for status in (RunStatus.RUNNING, RunStatus.PENDING):
            for record in self.store.list_runs(status=status.value, limit=1000):
                if free <= 0:
                    return
                held = self.store.lease_of(record.thread_id) if record.lease_owner else None
                if held is None or held.expires_at <= now or not owner_dead(held, owner.host):
                    continue  # free or expired: the next claim takes it
                try:
                    acquire(self.store, record.thread_id, owner, self.driver.lease_ttl, now=now)
                except (RunBusy, KeyError):
                    continue  # another worker was first, or the run is gone
                self._submit(pool, record.thread_id, owner)
                free -= 1

    def _submit(self, pool: ThreadPoolExecutor, thread_id: str, owner: LeaseOwner) -> None:
        with self._lock:
            self._in_hand.add(thread_id)
            if self._stopping.is_set():  # stop() came after the claim: this run stops too
                self.driver.stop_at_next_step([thread_id])
        try:
            pool.submit(self._drive, thread_id, owner)
        except RuntimeError:  # the interpreter is shutting down: let the run go, and stop
            self._let_go(thread_id)
            self.store.release_lease(thread_id, owner.label)
            self.stop()

    def _drive(self, thread_id: str, owner: LeaseOwner) -> None:
        try:
            run = drive_steps(self.driver.take_over(thread_id, owner))
            logger.debug("worker: run %r is %s", thread_id, run.status.value)
        except Exception:
            logger.exception("worker: driving run %r failed", thread_id)
        finally:
            self._let_go(thread_id)
            with self._lock:
                self.driven += 1
            self._wake.set()

    def _let_go(self, thread_id: str) -> None:
        """The run is no longer in hand; marked to stop for this worker, it is no longer
        (the runtime, another worker, may drive it again)."""
        with self._lock:
            self._in_hand.discard(thread_id)
            if self._stopping.is_set():
                self.driver.stopping_threads.discard(thread_id)
