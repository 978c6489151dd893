"""A mark beside the database file that changes whenever a stop request is written to it.

A run looks for stop requests (a cancel, an interrupting message) before each node: that
look is a read of the file, and at many runs at once those reads queue on the store's one
connection. A process that writes a stop request writes a fresh random mark into
``<file>-stops`` once it has committed it; every process maps that file into memory, so a
run that finds the mark as it was at its last look knows, with no read, that no stop
request was asked since through agentrt in any process on the machine.

The mark is written after the commit, so a request whose call has returned is always seen
at the next node; if its process dies between the two, the run sees the request at its
next look anyway, at most ``agentrt.nodes.stop_watch.STALE`` later. Like the WAL's own
shared memory (``-shm``), this needs every process on one machine, which SQLite in WAL
mode needs already. Where the file cannot be made (a read-only directory), there is no
mark, and every node reads.
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
        self._map: mmap.mmap | None = _open(Path(db_path))

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
            if self._map is not None:
                self._map[:_SIZE] = os.urandom(_SIZE)

    def close(self) -> None:
        with self._lock:
            found, self._map = self._map, None
        if found is not None:
            found.close()


def _open(db_path: Path) -> mmap.mmap | None:
    if str(db_path) == ":memory:":
        return None  # no file to sit beside, and no other process
    path = db_path.with_name(db_path.name + SUFFIX)
    try:
        mode = db_path.stat().st_mode & 0o666  # readable by whoever may read the database
        fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    except OSError as exc:
        log.info("no stop mark at %s (%s): runs read the file before every node", path, exc)
        return None
    try:
        if os.fstat(fd).st_size < _SIZE:
            os.ftruncate(fd, _SIZE)  # only ever grows: a mark another process wrote stays
        return mmap.mmap(fd, _SIZE)
    except OSError as exc:
        log.info("no stop mark at %s (%s): runs read the file before every node", path, exc)
        return None
    finally:
        os.close(fd)
