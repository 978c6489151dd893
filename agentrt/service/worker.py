"""Runs driven in the background of the server, so no request waits on a model.

A request writes what it must (the run's row, a decision) and hands the thread id here;
the worker carries the run on with ``aresume`` in a task, at most ``max_concurrent`` at a
time. A run that is already being driven is not started twice: the worker notes that it
must look again, and resumes once more when the current segment ends (a decision that
arrived meanwhile is then acted on). A run another process holds the lease of is tried
again when that lease would expire: if its holder died (on another host, or on a
database shared across hosts, where no pid is checked), it is taken over then.

Under ``serve --no-worker`` (``enabled=False``) it drives nothing: processes running
``agentrt worker`` claim the runs the requests wrote. Nor does it drive a run its app may
not (agentrt.runs.apps; a database two apps share: another name's, or one needing a tool
this app has not): a decision or a message for it is recorded, and a worker of an app
that may carries it on, with its own tools and policy.

A segment someone ``watch``es as it begins (the event stream of /runs/{id}/events) is
driven with ``astream_resume``: every event is handed to the watchers as it happens, then
``None`` when the segment has ended and the run's row says where it stopped. One no one
watches is driven with ``aresume``, without a stream (which cost a run a tenth of its CPU
with no one to read it), and its model is asked for whole answers (``RunDeps.quiet_threads``).
A watcher that comes meanwhile has the run stop before its next step (resumable, as a
worker shutting down leaves it: ``RunDeps.stopping_threads``) and go on at once, streamed;
until then it is told ``None`` and reads the log as it grows. A page that starts watching
a streamed segment gets the model's tokens from its next model call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from agentrt.errors import RunBusy
from agentrt.events import StreamEvent
from agentrt.logs import get_logger
from agentrt.runs.apps import described, lacks
from agentrt.runtime import AgentRuntime

__all__ = ["WATCH_BACKLOG", "RunWorker"]

WATCH_BACKLOG = 10_000
"""Events a watcher may fall behind by (a slow client of the event stream)."""

logger = get_logger("agentrt.service")


class RunWorker:
    def __init__(self, runtime: AgentRuntime, *, max_concurrent: int, enabled: bool = True) -> None:
        self.runtime = runtime
        self.max_concurrent = max_concurrent
        self.enabled = enabled
        """False: drive nothing (workers do)."""
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._later: dict[str, asyncio.TimerHandle] = {}
        self._slots: asyncio.Semaphore | None = None
        self._watchers: dict[str, set[asyncio.Queue[StreamEvent | None]]] = {}
        self._logged: dict[str, int] = {}
        """How far each run's log goes as told while it is driven here (``logged``)."""
        self._quiet = runtime.deps.quiet_threads
        """The runs this worker drives that no one watches: shared with the run graph."""
        self._unstreamed_now: set[str] = set()
        """The runs whose segment in flight is driven without a stream (no one watched it
        as it began): a watcher has them stop before their next step, to go on streamed."""
        self._stopping = runtime.deps.stopping_threads

    @contextmanager
    def watch(self, thread_id: str) -> Iterator[asyncio.Queue[StreamEvent | None]]:
        """The run's events as this worker drives it, while the block lasts: each event,
        then None once a segment has ended. A watcher that falls behind by
        ``WATCH_BACKLOG`` events is sent None instead of what it missed (it reads the
        log again)."""
        queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue(WATCH_BACKLOG)
        self._watchers.setdefault(thread_id, set()).add(queue)
        self._quiet.discard(thread_id)
        if thread_id in self._unstreamed_now:
            self._stopping.add(thread_id)  # to go on streamed (``_segment``)
        try:
            yield queue
        finally:
            watchers = self._watchers.get(thread_id, set())
            watchers.discard(queue)
            if not watchers:
                self._watchers.pop(thread_id, None)
                if thread_id in self._tasks:
                    self._quiet.add(thread_id)

    def watched(self, thread_id: str) -> bool:
        """True while someone watches the run."""
        return thread_id in self._watchers

    def logged(self, thread_id: str) -> int:
        """How many entries of the run's log this worker has told while it has the run in
        hand (0 once it let the run go): a told entry may be ahead of the checkpoints, held
        back with its node's writes until the segment writes them."""
        return self._logged.get(thread_id, 0)

    def _tell(self, thread_id: str, event: StreamEvent | None) -> None:
        if event is not None and event.index is not None:
            self._logged[thread_id] = max(self.logged(thread_id), event.index + 1)
        for queue in self._watchers.get(thread_id, ()):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                while not queue.empty():  # behind: what it missed is in the log
                    queue.get_nowait()
                queue.put_nowait(None)

    def driving(self, thread_id: str) -> bool:
        """True while this worker has the run in hand (queued or running)."""
        return thread_id in self._tasks

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def drive(self, thread_id: str) -> None:
        """Carry the run on in the background (from a request handler, on the loop)."""
        if not self.enabled:
            return
        later = self._later.pop(thread_id, None)
        if later is not None:
            later.cancel()
        if thread_id in self._tasks:
            self._again.add(thread_id)
            return
        self._tasks[thread_id] = asyncio.get_running_loop().create_task(
            self._drive(thread_id), name=f"agentrt-run-{thread_id}"
        )

    async def _drive(self, thread_id: str) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrent)
        if not self.watched(thread_id):
            self._quiet.add(thread_id)
        try:
            if not await self._ours(thread_id):
                return
            while True:
                self._again.discard(thread_id)
                async with self._slots:
                    try:
                        await self._segment(thread_id)
                    except RunBusy as busy:
                        # Another process drives it; it sees any decision at the gate.
                        logger.info("run %r is driven elsewhere; left to it", thread_id)
                        self._try_when_free(thread_id, busy.expires_at)
                    except Exception:
                        logger.exception("driving run %r failed", thread_id)
                    finally:
                        self._tell(thread_id, None)
                if thread_id not in self._again:
                    return
        finally:
            self._tasks.pop(thread_id, None)
            self._logged.pop(thread_id, None)
            self._quiet.discard(thread_id)

    async def _segment(self, thread_id: str) -> None:
        """Drive the run's next segment: streamed to its watchers, or, with none, without a
        stream; one a watcher came to meanwhile stops before its next step and goes on at
        once, streamed, in the same slot (no run queued for one goes first)."""
        if not self.watched(thread_id) and not await self._unstreamed(thread_id):
            return
        async for event in self.runtime.astream_resume(thread_id):
            self._tell(thread_id, event)

    async def _unstreamed(self, thread_id: str) -> bool:
        """Drive the run's next segment without a stream. True if a watcher came meanwhile:
        the run stopped before its next step (or ended, maybe leaving a follow-up it would
        have taken for the next driver), to be driven on, streamed."""
        self._unstreamed_now.add(thread_id)
        try:
            await self.runtime.aresume(thread_id)
        finally:
            self._unstreamed_now.discard(thread_id)
            stopped = thread_id in self._stopping
            self._stopping.discard(thread_id)
        if stopped:
            self._tell(thread_id, None)  # it stopped: what it wrote is in the log
        return stopped

    async def _ours(self, thread_id: str) -> bool:
        """False for a run this app may not drive (runs.apps.may_drive), which is left to a
        worker whose app may."""
        rt = self.runtime
        try:
            record = await asyncio.to_thread(rt.store.get_run, thread_id)
        except Exception:  # the store is away: the drive meets it and says so
            return True
        if record is None or not (need := lacks(rt.app, record)):
            return True
        logger.info(
            "run %r needs %s, which this app (%s) has not: left to a worker whose app has it",
            thread_id,
            need,
            described(rt.app),
        )
        return False

    def _try_when_free(self, thread_id: str, expires_at: float) -> None:
        """Look at the run again when its lease would expire: a live holder renews it
        (and the look finds it busy, or done), a dead one does not."""
        ttl = self.runtime.lease_ttl
        delay = min(max(expires_at - time.time(), 0.0), ttl) + min(1.0, ttl / 10)
        self._later[thread_id] = asyncio.get_running_loop().call_later(
            delay, self._later_due, thread_id
        )

    def _later_due(self, thread_id: str) -> None:
        self._later.pop(thread_id, None)
        self.drive(thread_id)

    async def wait(self, thread_id: str | None = None) -> None:
        """Until the run (or, with None, every run this worker holds) is out of its hands."""
        while True:
            tasks = (
                list(self._tasks.values())
                if thread_id is None
                else [t for t in [self._tasks.get(thread_id)] if t is not None]
            )
            if not tasks:
                return
            await asyncio.wait(tasks)

    async def close(self, grace: float) -> None:
        """Let runs in hand finish for ``grace`` seconds, then cancel the rest.

        A cancelled run keeps its checkpoints and releases its lease; the next server (or
        `agentrt resume`) carries it on from its last step.
        """
        self._forget_later()
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning(
                "stopped %d runs mid-way; they resume from their checkpoints", len(pending)
            )
            await asyncio.wait(pending)
        self._forget_later()  # those the last runs asked for

    def _forget_later(self) -> None:
        for later in self._later.values():
            later.cancel()
        self._later.clear()
