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
SQLite in WAL mode needs already; and, like it, it takes the database file's owner and
permissions, and must never be cut short while processes have it open. Where it cannot be
made (a read-only directory), there is none, and every look reads the file; where it can
only be read, this process's own stop requests reach runs elsewhere through that read.
"""

from __future__ import annotations

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
        self._map, self._writable = _open(str(db_path))
        self._warned = False

    def read(self) -> bytes | None:
        """The mark as it stands; None where there is none (every look reads)."""
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
            elif self._map is not None and not self._warned:
                self._warned = True
                log.warning(
                    "this process may not write the stop mark beside the database: runs "
                    "other processes drive see its stop requests seconds later, not at "
                    "their next node; let it write the %s file as it writes the database",
                    SUFFIX,
                )

    def close(self) -> None:
        with self._lock:
            found, self._map = self._map, None
        if found is not None:
            found.close()


def _open(db: str) -> tuple[mmap.mmap | None, bool]:
    """The mark mapped, and whether this process may write it; (None, False) if none."""
    if db in ("", ":memory:"):
        return None, False  # a private database: no file to sit beside, no other process
    # SQLite follows a symbolic link to the file it names, and so does the mark.
    real = os.path.realpath(db)
    path = real + SUFFIX
    try:
        owner = os.stat(real)
        try:
            fd, writable = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), True
            _as_the_database(fd, owner)
        except FileExistsError:
            try:
                fd, writable = os.open(path, os.O_RDWR), True
            except PermissionError:
                fd, writable = os.open(path, os.O_RDONLY), False
        try:
            if writable and os.fstat(fd).st_size < _SIZE:
                _grow(fd)
            if os.fstat(fd).st_size < _SIZE:
                return None, False  # not made yet by a process that may write it
            access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
            return mmap.mmap(fd, _SIZE, access=access), writable
        finally:
            os.close(fd)
    except OSError as exc:
        log.info("no stop mark at %s (%s): runs read the file before every node", path, exc)
        return None, False


def _as_the_database(fd: int, owner: os.stat_result) -> None:
    """A new mark gets the database file's permissions, and its owner when made by root, as
    SQLite's ``-wal`` and ``-shm`` do: whoever may write the database may move the mark."""
    os.fchmod(fd, owner.st_mode & 0o666)
    if os.geteuid() == 0:
        os.fchown(fd, owner.st_uid, owner.st_gid)


def _grow(fd: int) -> None:
    """Make the file the mark's size without touching what it holds: a mark another process
    wrote stays as it is. Blocks on disk where the system can, not a hole that a full disk
    could not fill once mapped."""
    try:
        os.posix_fallocate(fd, 0, _SIZE)
    except (AttributeError, OSError):  # macOS has none; some file systems refuse it
        os.ftruncate(fd, max(_SIZE, os.fstat(fd).st_size))
