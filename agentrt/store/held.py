"""Checkpoint writes held back until the run's next write that matters.

LangGraph stores a node's writes when the node ends, then the checkpoint that follows
them, each in a transaction of its own. While a driver holds a thread (``hold``), agentrt's
savers hold them back and store them together:

- Every node's writes wait for the checkpoint that follows them, and go in its
  transaction. A crash between the two loses the node's writes, so the run resumes from
  the checkpoint before it and runs the node again: as after a crash just before LangGraph
  stored them, which every node already survives (a model's answer is recorded, an
  effect is in the ledger, before the node ends).
- After a node that only decides (policy, verify: ``Node.pure``), the checkpoint waits
  too, for the thread's next write that is not held back: a crash that loses them costs
  deciding again, before anything has acted on the decision.
- So does the checkpoint of a run's input, from which nothing has run yet: a crash that
  loses it is one before the run took its input, which the driver gives again on resume.

``release`` (the segment's end) writes whatever still waits (the writes of a node that
stopped the run, which no checkpoint follows), and a read of the thread through the saver
writes its held calls first, so this process never sees its own run go back.

Order is kept: a write that is not held carries every held one before it, in one
transaction, so no checkpoint is stored without the ones it descends from. A checkpoint is
held only when the writes before it are (LangGraph hands the saver a node's event-log
writes before the checkpoint that follows them), and only when every one of them is a
pure node's. And a node that acts on a pure node's decision (tool, commit, approval:
``Node.acts``) has the held calls written before it begins: an effect is never under way
while the decision that allowed it could still be lost, and made again otherwise on
resume (a policy changed meanwhile). A tool node calling a read does not: a read acts on
nothing, and a crash before the tool's checkpoint has it decided and made again anyway.

A driver holds a thread under the run's lease (``owner``): every write of the thread then
checks, as it writes (in its transaction, or its one statement), that the lease is still
the owner's, and raises LeaseLost with nothing written if another process took the run
over meanwhile: a process paused past its lease never writes a checkpoint over the run
another drives now. A read in that process drops what the thread holds instead.

Only threads a driver holds are affected, and only the writes of the nodes it names: an
app's own graph may have nodes of the same names, and its checkpoints are written as
LangGraph writes them; a resume value LangGraph writes before any node runs is stored at
once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar, runtime_checkable

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)

from agentrt.errors import LeaseLost
from agentrt.logs import get_logger

__all__ = ["Fence", "Held", "Holding", "HoldingSaver", "HoldsWrites", "saved_config"]

logger = get_logger()

_T = TypeVar("_T")

Fence = tuple[str, str]
"""A write's condition: (thread id, owner), the run's lease that must still be the owner's."""

Held = Any
"""A saver call held back, to be made later (with a later one): what the saver makes of
the call (``HoldingSaver._put_call``), a call itself by default."""


@runtime_checkable
class HoldsWrites(Protocol):
    """A checkpointer that can hold back what some nodes of a thread write (agentrt's own)."""

    def hold(
        self,
        thread_id: str,
        pure: Collection[str],
        others: Collection[str] = (),
        owner: str | None = None,
    ) -> None:
        """Hold back what the nodes named ``pure`` write on this thread, and the checkpoint
        after them; what the nodes named ``others`` write, until the checkpoint after it.
        ``owner``: the run's lease, which each write of the thread checks is still held."""

    def release(self, thread_id: str) -> None:
        """Stop holding this thread, writing what it still holds (LeaseLost, nothing
        written, if the run's lease went to another process)."""

    def flush(self, thread_id: str | None = None) -> None:
        """Write what the thread (None: every thread) holds (LeaseLost, as ``release``)."""

    def hold_usage(self, thread_id: str, usage: Mapping[str, Any]) -> bool:
        """Put the run's ``usage`` on its row with the thread's next write, in its
        transaction; False if it cannot (the thread is not held, or the saver does not
        write rows): the caller writes it itself."""


@dataclass(slots=True)
class _Thread:
    nodes: frozenset[str]
    pure: frozenset[str]
    calls: list[Held] = field(default_factory=list)
    after_held: str | None = None
    """The checkpoint held nodes ran from, once their writes are held: the checkpoint
    saved next descends from it, and goes with them."""
    checkpoint_waits: bool = False
    """Whether that next checkpoint is held too: every node whose writes wait for it is
    pure."""
    writing: threading.Lock = field(default_factory=threading.Lock)
    """Held while a write carries the held calls: the thread's writes reach the database
    in the order they were taken."""
    owner: str | None = None
    """The run's lease the thread is held under: each write checks it is still held."""


class Holding:
    """Which threads hold some nodes' writes back, and the calls held for each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[str, _Thread] = {}

    def hold(
        self,
        thread_id: str,
        pure: Collection[str],
        others: Collection[str] = (),
        owner: str | None = None,
    ) -> None:
        """From now on, hold back what the nodes named ``pure`` write on this thread, and
        the checkpoint after them; what the nodes named ``others`` write, until the
        checkpoint after it; each write checking that ``owner`` still holds the lease."""
        pure = frozenset(pure)
        with self._lock:
            self._threads.setdefault(
                thread_id, _Thread(pure | frozenset(others), pure, owner=owner)
            )

    def forget(self, thread_id: str) -> None:
        """Stop holding this thread (what it held is dropped: write it first)."""
        with self._lock:
            self._threads.pop(thread_id, None)

    def drop(self, thread_id: str) -> None:
        """Forget what the thread holds, keeping it held (its later writes still checked)."""
        with self._lock:
            thread = self._threads.get(thread_id)
            if thread is not None:
                thread.calls, thread.after_held, thread.checkpoint_waits = [], None, False

    def threads(self) -> list[str]:
        """The threads held now."""
        with self._lock:
            return list(self._threads)

    def writes(self, thread_id: str, checkpoint_id: str, task_path: str, call: Held) -> bool:
        """True if ``call``, a node's writes against ``checkpoint_id``, is held back."""
        node = task_path.rsplit(", ", 1)[-1]
        with self._lock:
            thread = self._threads.get(thread_id)
            if thread is None or node not in thread.nodes:
                return False
            thread.calls.append(call)
            pure = node in thread.pure
            if thread.after_held != checkpoint_id:
                thread.after_held, thread.checkpoint_waits = checkpoint_id, pure
            else:  # another task of the same step
                thread.checkpoint_waits = thread.checkpoint_waits and pure
            return True

    def checkpoint(
        self, thread_id: str, parent_id: str | None, call: Held, *, input: bool = False
    ) -> bool:
        """True if ``call``, a checkpoint descending from ``parent_id``, is held back: one
        after a held pure node's writes, or one of the run's ``input``, from which nothing
        has run yet. False: it is to be written now, with what the thread holds."""
        with self._lock:
            thread = self._threads.get(thread_id)
            if thread is None:
                return False
            if input:
                thread.calls.append(call)
                return True
            if parent_id is None or thread.after_held != parent_id:
                return False
            thread.after_held = None
            if not thread.checkpoint_waits:
                return False
            thread.calls.append(call)
            return True

    def also(self, thread_id: str, call: Held) -> bool:
        """True if ``call``, a write of the thread's that is no saver call, is held for the
        thread's next write (it changes nothing of which checkpoint waits)."""
        with self._lock:
            thread = self._threads.get(thread_id)
            if thread is None:
                return False
            thread.calls.append(call)
            return True

    def owner(self, thread_id: str) -> str | None:
        """The lease the thread is held under (None: none, or not held)."""
        with self._lock:
            thread = self._threads.get(thread_id)
        return None if thread is None else thread.owner

    @contextmanager
    def writing(self, thread_id: str) -> Iterator[list[Held]]:
        """The calls held for ``thread_id``, taken by a write that makes them first, in its
        own transaction; the thread's other writes wait until it is done. If it fails,
        they are held again, ahead of any held since."""
        with self._lock:
            thread = self._threads.get(thread_id)
        if thread is None:
            yield []
            return
        with thread.writing:
            with self._lock:
                taken, thread.calls = thread.calls, []
            try:
                yield taken
            except BaseException:
                with self._lock:
                    thread.calls[:0] = taken
                raise


class HoldingSaver(BaseCheckpointSaver[str]):
    """What agentrt's savers share to hold back what some nodes of a thread write: ``put`` and
    ``put_writes`` held, or made after what the thread holds, in one transaction; reads
    made after what the thread holds is written. Put it
    before the LangGraph saver it wraps (``class Checkpoints(HoldingSaver, SqliteSaver)``);
    the saver says what it holds of a call (``_put_call``, ``_writes_call``), how it makes
    one (``_write_one``) and several in one transaction (``_write_all``), each retried as its
    database needs, and each, given a ``fence`` (thread id, owner), only while the run's
    lease is that owner's (LeaseLost otherwise, nothing written)."""

    holding: Holding
    _worker: Executor
    """Where the async methods make the saver's calls, off the event loop."""

    def _write_one(self, call: Held, fence: Fence | None = None) -> None:
        raise NotImplementedError

    def _write_all(self, calls: Sequence[Held], fence: Fence | None = None) -> None:
        raise NotImplementedError

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        call = self._put_unless_held(config, checkpoint, metadata, new_versions)
        if call is not None:
            self._write(config["configurable"]["thread_id"], call)
        return saved_config(config, checkpoint)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        call = self._writes_unless_held(config, writes, task_id, task_path)
        if call is not None:
            self._write(config["configurable"]["thread_id"], call)

    def _put_unless_held(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Held | None:
        """``put`` as a call to write now, or None: the thread holds it back."""
        call = self._put_call(config, checkpoint, metadata, new_versions)
        conf = config["configurable"]
        input = metadata.get("source") == "input"
        if self.holding.checkpoint(conf["thread_id"], conf.get("checkpoint_id"), call, input=input):
            return None
        return call

    def _writes_unless_held(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> Held | None:
        """``put_writes`` as a call to write now, or None: the thread holds it back."""
        call = self._writes_call(config, writes, task_id, task_path)
        conf = config["configurable"]
        if self.holding.writes(conf["thread_id"], conf["checkpoint_id"], task_path, call):
            return None
        return call

    def _put_call(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Held:
        """``put`` as the saver holds it: the wrapped saver's call, by default."""
        return partial(super().put, config, checkpoint, metadata, new_versions)

    def _writes_call(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> Held:
        """``put_writes`` as the saver holds it: the wrapped saver's call, by default."""
        return partial(super().put_writes, config, writes, task_id, task_path)

    def hold_usage(self, thread_id: str, usage: Mapping[str, Any]) -> bool:
        """Put the run's ``usage`` on its row with the thread's next write, in its
        transaction (``_usage_call``); False if the thread is not held or the saver writes
        no rows of agentrt's: the caller writes it itself."""
        call = self._usage_call(thread_id, usage)
        return call is not None and self.holding.also(thread_id, call)

    def _usage_call(self, thread_id: str, usage: Mapping[str, Any]) -> Held | None:
        """The run's usage written onto its row, as a held call; None: not this saver's."""
        return None

    # Reads see what this process holds: written first.

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        self.flush_for_read(config["configurable"]["thread_id"])
        return super().get_tuple(config)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        self.flush_for_read((config or {}).get("configurable", {}).get("thread_id"))
        return super().list(config, filter=filter, before=before, limit=limit)

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        self.flush_for_read(config["configurable"]["thread_id"])
        return super().get_delta_channel_history(config=config, channels=channels)

    def hold(
        self,
        thread_id: str,
        pure: Collection[str],
        others: Collection[str] = (),
        owner: str | None = None,
    ) -> None:
        """Hold back what the nodes named ``pure`` write on this thread, and the checkpoint
        after them; what the nodes named ``others`` write, until the checkpoint after it.
        ``owner``: the run's lease, which each write of the thread checks is still held."""
        self.holding.hold(thread_id, pure, others, owner)

    # async: the same, on the saver's worker thread(s) (``_worker``) -------------------------

    async def _call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(
            self._worker, partial(fn, *args, **kwargs)
        )

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._call(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        # Read in one go: a generator left open across awaits would hold the saver's lock.
        found = await self._call(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in found:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        # Whether the thread holds it back is decided here, on the loop, in the order
        # LangGraph makes the calls: a held call (most of a run's) costs no trip.
        call = self._put_unless_held(config, checkpoint, metadata, new_versions)
        if call is not None:
            await self._call(self._write, config["configurable"]["thread_id"], call)
        return saved_config(config, checkpoint)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        # task_path named: LangGraph hands it only to a saver whose signature has it, and
        # the held writes are told apart by it.
        call = self._writes_unless_held(config, writes, task_id, task_path)
        if call is not None:
            await self._call(self._write, config["configurable"]["thread_id"], call)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._call(self.delete_thread, thread_id)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await self._call(self.get_delta_channel_history, config=config, channels=channels)

    def release(self, thread_id: str) -> None:
        """Stop holding this thread, writing what it still holds (LeaseLost, nothing
        written, if the run's lease went to another process)."""
        try:
            self._write(thread_id)
        except LeaseLost:
            raise  # not this driver's to write any more: it stops, writing nothing
        except Exception:
            # As a crash before they were stored: the run resumes from the stored checkpoint
            # before them, and runs the nodes after it again.
            logger.warning(
                "checkpoint writes held for thread %r were not stored; the run goes on from "
                "its last stored checkpoint when it is resumed",
                thread_id,
                exc_info=True,
            )
        finally:
            self.holding.forget(thread_id)

    def flush(self, thread_id: str | None = None) -> None:
        """Write what ``thread_id`` (None: every thread) holds: before a node that acts on
        it (LeaseLost, nothing written, if the run's lease went to another process)."""
        for thread in [thread_id] if thread_id is not None else self.holding.threads():
            self._write(thread)

    def flush_for_read(self, thread_id: str | None = None) -> None:
        """``flush`` before a read, or a close: a thread whose lease went to another process
        meanwhile has what it holds dropped, not written (not this process's to write; the
        read sees what the run's driver stored). Its later writes are refused still."""
        for thread in [thread_id] if thread_id is not None else self.holding.threads():
            try:
                self._write(thread)
            except LeaseLost:
                self.holding.drop(thread)

    def _write(self, thread_id: str, call: Held | None = None) -> None:
        """``call`` (None: none) after what the thread holds, in one transaction."""
        owner = self.holding.owner(thread_id)
        fence = None if owner is None else (thread_id, owner)
        with self.holding.writing(thread_id) as held:
            calls = [*held, call] if call is not None else held
            if len(calls) == 1:
                self._write_one(calls[0], fence)
            elif calls:
                self._write_all(calls, fence)


def saved_config(config: RunnableConfig, checkpoint: Checkpoint) -> RunnableConfig:
    """What a saver's ``put`` answers: the config of the checkpoint it saved."""
    conf = config["configurable"]
    return {
        "configurable": {
            "thread_id": conf["thread_id"],
            "checkpoint_ns": conf.get("checkpoint_ns", ""),
            "checkpoint_id": checkpoint["id"],
        }
    }
