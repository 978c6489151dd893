"""A mark beside the database file that changes whenever a stop request is written to it.

A run looks for stop requests (a cancel, an interrupting message) before each node: that
look is a read of the file, and at many runs at once those reads queue on the store's one
connection. A process that writes a stop request writes a fresh random mark into
``<file>-stops`` once it has committed it; every process maps that file into memory, so a
run that finds the mark as it was at its last look knows, with no read, that no stop
request was asked since through agentrt in any process on the machine.

The mark is written after the commit, so a request whose call has returned is always seen
at the next node. One written without moving the mark (its process died between the two,
an agentrt from before the mark, a hand-written UPDATE) is seen at the first node
``agentrt.nodes.stop_watch.MARKED_STALE`` seconds after the run last looked. Like the
WAL's own shared memory (``-shm``), the mark needs every process on one machine, which
SQLite in WAL mode needs already; and, like it, it takes the database file's permissions
and group, and must never be cut short while processes have it open. Where it cannot be
made (a read-only directory), there is none, and runs look as they do on a store with no
mark; a process that may only read it does not move it, so runs other processes drive see
its own stop requests only at their next look, seconds later (it warns once).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
from pathlib import Path

from agentrt.logs import get_logger

__all__ = ["SUFFIX", "StopMark"]

SUFFIX = "-stops"
"""What the mark's file adds to the database file's name."""
_SIZE = 16
"""Bytes of the mark: random, so a mark written anew never equals one seen before."""

log = get_logger(__name__)


class StopMark:
    """The mark of one database file, mapped into this process."""

    def __init__(self, db_path: str | Path) -> None:
        self._lock = threading.Lock()
        self._map, self._writable, self._path = _open(str(db_path))
        self._warned = False

    def read(self) -> bytes | None:
        """The mark as it stands; None where there is none (runs look as with no mark)."""
        found = self._map
        try:
            return None if found is None else found[:_SIZE]
        except ValueError:  # closed meanwhile: the store is closing
            return None

    def change(self) -> None:
        """Write a new mark: a stop request was just committed."""
        with self._lock:
            if self._map is not None and self._writable:
                self._map[:_SIZE] = os.urandom(_SIZE)
                return
            if self._warned or self._path is None or not os.path.lexists(self._path):
                return  # no mark anywhere: every process's runs look as with none
            self._warned = True
            log.warning(
                "this process may not write the stop mark %s: runs that other processes "
                "drive see its stop requests only at their next look, seconds later, not "
                "at their next node; let it write that file as it writes the database",
                self._path,
            )

    def close(self) -> None:
        with self._lock:
            found, self._map, self._path = self._map, None, None  # closed: nothing to warn of
        if found is not None:
            found.close()


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
"""A link planted where the mark goes is not followed, as SQLite opens its -wal and -shm:
through one, every stop request would write into the file it points to."""


def _open(db: str) -> tuple[mmap.mmap | None, bool, str | None]:
    """The mark mapped, whether this process may write it, and where it lies."""
    if db in ("", ":memory:"):
        return None, False, None  # a private database: nothing beside it, no other process
    # SQLite follows a symbolic link to the file it names, and so does the mark.
    real = os.path.realpath(db)
    path = real + SUFFIX
    try:
        if not os.path.lexists(path):
            _make(path, os.stat(real))
        try:
            fd, writable = os.open(path, os.O_RDWR | _NOFOLLOW), True
        except PermissionError:
            fd, writable = os.open(path, os.O_RDONLY | _NOFOLLOW), False
        try:
            if os.fstat(fd).st_size < _SIZE:
                return None, False, path  # not a mark this agentrt made
            access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
            return mmap.mmap(fd, _SIZE, access=access), writable, path
        finally:
            os.close(fd)
    except OSError as exc:
        log.info("no stop mark at %s (%s): runs look as they do with none", path, exc)
        return None, False, path


def _make(path: str, database: os.stat_result) -> None:
    """Make the mark whole under a name of its own, then link it into place: no process
    ever finds it short, or with other permissions than the database file's. Of processes
    making it at once, the first link wins and the others use that one."""
    made = f"{path}.{os.getpid()}.{threading.get_ident()}"
    fd = os.open(made, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        os.write(fd, bytes(_SIZE))
        _as_the_database(fd, database)
        with contextlib.suppress(FileExistsError):  # another process's came first
            os.link(made, path)
    finally:
        os.close(fd)
        os.unlink(made)


def _as_the_database(fd: int, database: os.stat_result) -> None:
    """The database file's permissions, and its group (its owner too when made by root),
    as SQLite gives its -wal and -shm: whoever may write the database may move the mark."""
    if not hasattr(os, "fchown"):  # Windows: files carry no such permissions
        return
    os.fchmod(fd, database.st_mode & 0o666)
    try:
        if os.geteuid() == 0:
            os.fchown(fd, database.st_uid, database.st_gid)
        else:
            os.fchown(fd, -1, database.st_gid)
    except OSError as exc:  # not a member of its group, or root squashed on NFS
        log.info("the stop mark keeps this process's owner and group (%s)", exc)
