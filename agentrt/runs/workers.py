"""Workers: a process that claims the runs needing a driver from a shared database and drives them.

``agentrt worker`` runs one (``AgentRuntime.worker``); any number may share a database, on
any number of machines (PostgreSQL) or on one (a SQLite file). A worker:

- claims as many runs as it has free slots (``Store.claim_runs``: each run goes to one
  worker), only those its app may drive (agentrt.runs.apps: its own name's, or an unnamed
  app's whose tools it all has), and drives each in a thread of its own
  (``Driver.take_over``) until the run ends, waits at a gate, waits to retry, or fails;
- looks again when the database says a run may need a driver (LISTEN/NOTIFY on PostgreSQL),
  when one of its runs frees a slot, when a wait to retry or a lease it saw ends, and at
  least every ``poll`` seconds (SQLite tells no one of a commit, so there it polls often);
- on a store only this machine uses, takes over at once the runs of a process here that
  died (its pid is gone) rather than waiting for their leases to expire;
- expires overdue approvals now and then (any process may: each expiry is a conditional
  write), which leaves their runs to be claimed;
- holds off a run whose driving failed outside its graph (its checkpoint unreadable, the
  database away): its lease is kept, to no one's work, for a while that doubles with each
  failure in a row (HOLD_OFF), where it would be claimed again at once, thousands of times
  a second, each a traceback in the log;
- on ``stop()`` claims nothing more, and each run it drives stops before its next step,
  resumable, its lease let go: another worker claims it at once. ``run()`` returns then.
  Only its own runs stop: the runtime goes on driving others (``rt.start``, a new worker).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from agentrt.errors import ConfigError, RunBusy
from agentrt.logs import get_logger
from agentrt.processes import pause
from agentrt.runs.apps import described, lacks, may_drive
from agentrt.runs.driver import Driver
from agentrt.runs.lease import LeaseOwner, acquire, owner_dead
from agentrt.state import RunStatus
from agentrt.steps import drive as drive_steps
from agentrt.store.protocols import RunRecord

__all__ = ["Worker", "WorkerSettings"]

logger = get_logger()

NOTIFIED_POLL = 10.0
"""Seconds between looks when the database notifies (a fallback: a notification is lost
only while the listening connection is down, and it looks again when it is back)."""

POLLED_POLL = 0.25
"""Seconds between looks on a store that notifies no one (SQLite)."""

HOLD_OFF = (1.0, 60.0)
"""Seconds a run whose driving failed is left before it may be claimed again: the first
time, and at most (doubling with each failure in a row)."""


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
        self._asked = False
        """stop() was called: a plain attribute, which a signal handler may set whatever
        lock the code it interrupted holds."""
        self._stopping = threading.Event()
        self._loop: int | None = None
        """The thread running run(), while it does."""
        self._lock = threading.Lock()
        self._in_hand: set[str] = set()
        self._failures: dict[str, int] = {}
        """Runs whose driving failed, each with its failures in a row."""
        self.driven = 0
        """Runs this worker has carried on (each claim of a run counts)."""

    @property
    def in_hand(self) -> int:
        """Runs this worker drives now."""
        with self._lock:
            return len(self._in_hand)

    def stop(self) -> None:
        """Claim nothing more; runs in hand stop before their next step (safe from a signal
        handler and from any thread).

        On the thread running ``run()``, which is where a signal handler runs, it only asks,
        taking no lock: the handler may have interrupted the loop while it held one, and
        waiting for it there would wait for ever. The loop acts on it within processes.STOP_CHECK
        seconds. From any other thread the runs in hand are told at once."""
        self._asked = True
        if threading.get_ident() != self._loop:
            self._stop_now()

    def _stop_now(self) -> None:
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
        self._say_others()
        sweep_at = time.monotonic()
        pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="agentrt-run")
        self._loop = threading.get_ident()
        try:
            while not self._asked:
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
                self._pause(wait)
        finally:
            self._stop_now()
            pool.shutdown(wait=True)  # each run stops before its next step
            if listening is not None:
                listening.close()
            self._loop = None  # a signal from here on finds the loop's locks free
        logger.info("worker: stopped, %d runs carried on", self.driven)

    def _pause(self, seconds: float) -> None:
        """Until woken (by the database, a run's end, a stop from another thread), asked to
        stop on this thread, or ``seconds`` have passed (processes.pause)."""
        pause(self._wake, seconds, lambda: self._asked)

    def _claim(self, pool: ThreadPoolExecutor) -> float:
        """Claim runs for the free slots and hand them to the pool; seconds until a run not
        claimable now may become so (or the poll interval)."""
        free = self.settings.concurrency - self.in_hand
        if free <= 0:
            return float("inf")  # a run that ends frees a slot and wakes the loop
        now = self.store.clock()
        owner = LeaseOwner.this_process(self.driver.new_id())
        lease = self.driver.lease_for(owner)
        claim = self.store.claim_runs(lease, now=now, limit=free, app=self.driver.app)
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
        for record, held in self.store.leased_on(owner.host, now=now):
            if free <= 0:
                return
            if not owner_dead(held, owner.host):
                continue  # alive: its process lets it go, or its lease expires
            if not self._may_drive(record):
                continue  # another app's: one of its workers takes it over
            try:
                acquire(self.store, record.thread_id, owner, self.driver.lease_ttl, now=now)
            except (RunBusy, KeyError):
                continue  # another worker was first, or the run is gone
            self._submit(pool, record.thread_id, owner)
            free -= 1

    def _may_drive(self, record: RunRecord) -> bool:
        return self.driver.app is None or may_drive(self.driver.app, record)

    def _say_others(self) -> None:
        """Log the runs waiting for a driver that this worker may not claim, by what they
        need that its app has not (agentrt.runs.apps: a name, tools): it leaves them to
        workers that have it, and an operator who sees them wait for ever learns why."""
        app = self.driver.app
        if app is None:
            return
        needs: dict[str, int] = {}
        try:
            for status in (RunStatus.PENDING, RunStatus.RUNNING):
                for record in self.store.list_runs(status=status.value, limit=1000):
                    if record.lease_owner is None and (need := lacks(app, record)):
                        needs[need] = needs.get(need, 0) + 1
        except Exception:  # only a word in the log: the claims say what is wrong
            logger.debug("worker: the runs of other apps could not be counted", exc_info=True)
        if not needs:
            return
        # Tools it lacks: likely this app's runs from a version that had one more (a tool
        # dropped, a rollback), which no worker of this version may drive. Said louder.
        tools = any(need.startswith("the tool") for need in needs)
        logger.log(
            logging.WARNING if tools else logging.INFO,
            "worker: %d runs waiting for a driver need what this app (%s) has not: %s; "
            "they wait for a worker whose app has it",
            sum(needs.values()),
            described(app),
            "; ".join(f"{need} ({n})" for need, n in sorted(needs.items())),
        )

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
            with self._lock:
                self._failures.pop(thread_id, None)
        except Exception:
            wait = self._hold_off(thread_id, owner)
            logger.exception(
                "worker: driving run %r failed; it may be claimed again in %g s", thread_id, wait
            )
        finally:
            self._let_go(thread_id)
            with self._lock:
                self.driven += 1
            self._wake.set()

    def _hold_off(self, thread_id: str, owner: LeaseOwner) -> float:
        """Lease a run whose driving failed to ``owner`` for a while, working on nothing:
        what failed (an unreadable checkpoint, a database away) most likely fails again at
        once, and every worker would claim it in a loop. Seconds held."""
        with self._lock:
            failures = self._failures.get(thread_id, 0) + 1
            self._failures[thread_id] = failures
        first, most = HOLD_OFF
        wait = min(first * float(2 ** min(failures - 1, 32)), most)
        lease = replace(self.driver.lease_for(owner), expires_at=self.store.clock() + wait)
        try:  # only if no one took it meanwhile: then it is theirs to try
            self.store.take_lease(thread_id, lease, expected=None)
        except Exception:  # the database away: the next claim finds it as it can
            logger.debug("worker: run %r could not be held off", thread_id, exc_info=True)
        return wait

    def _let_go(self, thread_id: str) -> None:
        """The run is no longer in hand; marked to stop for this worker, it is no longer
        (the runtime, another worker, may drive it again)."""
        with self._lock:
            self._in_hand.discard(thread_id)
            if self._stopping.is_set():
                self.driver.stopping_threads.discard(thread_id)
