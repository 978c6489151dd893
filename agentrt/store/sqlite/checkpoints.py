"""LangGraph's checkpoints in the SQLite file, for sync and async runs alike.

LangGraph's AsyncSqliteSaver writes a checkpoint as two awaits, the INSERT and then the
commit, so its write transaction stays open until the event loop comes back to it. With a
few hundred runs on one loop that is most of the time: the span store, the lease heartbeat
and the store's own writes, each on a connection of its own, waited past busy_timeout and
failed with "database is locked" (runs included). Here every method, async or not, is one
whole call of SqliteSaver's: the statements and their commit, under its lock, in one thread.
The async methods run on a worker thread of the saver's own, so checkpoints are written in
the order they were asked for and no thread of the event loop's pool waits on SQLite.

The same saver serves the sync graph and the async one: no connection is bound to a loop.

Checkpoints are stored compact (agentrt.store.sqlite.compact): short channel versions,
values deflated against a dictionary of the run state's shape. While a driver holds a
thread, what its nodes write waits for the checkpoint after it, or after a pure node for
the thread's next write, and goes in the same transaction (agentrt.store.held, where the
async methods are too).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, cast

from langgraph.checkpoint.sqlite import SqliteSaver

from agentrt.errors import LeaseLost
from agentrt.logs import get_logger
from agentrt.state import Usage
from agentrt.store.held import Fence, Held, Holding, HoldingSaver
from agentrt.store.sqlite.compact import CompactSerializer
from agentrt.store.sqlite.database import connect, retry_locked
from agentrt.store.sqlite.runs import write_usage
from agentrt.store.versions import next_version

__all__ = ["Checkpoints"]


logger = get_logger()


class Checkpoints(HoldingSaver, SqliteSaver):
    """SqliteSaver with async methods that never hold a transaction across an await."""

    def __init__(self, path: str | Path) -> None:
        # autocommit=False: SqliteSaver runs each method's statements in Python's implicit
        # transaction and commits at the end of it.
        super().__init__(connect(path, autocommit=False), serde=CompactSerializer())
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentrt-checkpoints")
        self.holding = Holding()
        self._in_one_go = threading.local()

    def get_next_version(self, current: str | None, channel: None) -> str:
        return next_version(current)

    @contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        if getattr(self._in_one_go, "on", False):  # _in_one holds the lock and commits once
            cur = self.conn.cursor()
            try:
                yield cur
            finally:
                cur.close()
            return
        with super().cursor(transaction) as cur:
            yield cur

    # Writes wait out another process's write lock (retry_locked) instead of failing the
    # run at busy_timeout.

    def _write_one(self, call: Held, fence: Fence | None = None) -> None:
        if fence is not None:  # the lease's check and the write: one transaction
            retry_locked(lambda: self._in_one([call], fence), undo=self._rollback)
        else:
            retry_locked(call, undo=self._rollback)

    def _write_all(self, calls: Sequence[Held], fence: Fence | None = None) -> None:
        retry_locked(lambda: self._in_one(calls, fence), undo=self._rollback)

    def _usage_call(self, thread_id: str, usage: Mapping[str, Any]) -> Held:
        return partial(self._write_usage, thread_id, usage)

    def _write_usage(self, thread_id: str, usage: Mapping[str, Any]) -> None:
        with self.cursor() as cur:  # in the transaction of the write that carries it
            write_usage(cur, thread_id, cast(Usage, usage))

    def delete_thread(self, thread_id: str) -> None:
        self.holding.forget(thread_id)  # what the thread held goes with it
        retry_locked(lambda: SqliteSaver.delete_thread(self, thread_id), undo=self._rollback)

    def _in_one(self, calls: Sequence[Held], fence: Fence | None = None) -> None:
        """SqliteSaver's calls, in one transaction; with a ``fence``, only while the run's
        lease is still its owner's (the write lock taken first, so no process takes the
        lease over between the look and the commit)."""
        with self.lock:
            self.setup()
            self._in_one_go.on = True
            try:
                if fence is not None:
                    self.conn.execute("BEGIN IMMEDIATE")
                    thread_id, owner = fence
                    held = self.conn.execute(
                        "SELECT lease_owner FROM runs WHERE thread_id=?", (thread_id,)
                    ).fetchone()
                    if held is None or held[0] != owner:
                        raise LeaseLost(thread_id, owner)
                for call in calls:
                    call()
                self.conn.commit()
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.rollback()
                raise
            finally:
                self._in_one_go.on = False

    def _rollback(self) -> None:
        with self.lock:
            if self.conn.in_transaction:
                self.conn.rollback()

    def close(self) -> None:
        """Finish the writes already asked for and those held, then close the connection."""
        self._worker.shutdown(wait=True)
        self.flush_for_read()
        self.conn.close()
