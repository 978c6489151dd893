"""A working directory's tree walked, read and removed by directory descriptors.

What a program leaves is the program's choice: directories thousands deep, paths past
PATH_MAX, any number of files, links anywhere, modes of 000. So nothing here recurses
(Python's recursion limit is a few thousand frames), no path longer than one name is given
to the kernel (each step is an ``openat`` below a descriptor), no link is followed, and
what is kept in memory is bounded, however big the tree:

- ``listing``: the regular files in path order, cut at MAX_LISTED files and a number of
  characters of names, with a count of what was left out; directories nested past
  MAX_DEPTH are not looked into (it holds two descriptors a level), and count as one each.
- ``read_file``: one of them, by its relative path.
- ``remove``: the whole tree, as ``rm -rf`` does it: one directory open at a time, going
  back up by ``..``, checked against the directory it came from.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_DEPTH = 32
"""Directories below this many levels are not looked into (counted in ``not_listed``)."""
MAX_LISTED = 1000
"""Files a listing names at most; the rest are counted in ``not_listed``."""

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO must not block


@dataclass(frozen=True)
class Listing:
    """The files of a tree, as many as its bound takes."""

    files: dict[str, int]
    """Regular files, relative path -> size, the first in path order that fit the bound."""
    not_listed: int
    """Files left out of ``files``, and directories not looked into (nested past MAX_DEPTH,
    or unreadable), each of those counted as one."""


def listing(root: int, max_chars: int) -> Listing:
    """The regular files under the directory ``root`` (a descriptor): at most MAX_LISTED
    of them and ``max_chars`` characters of their paths, the first in path order."""
    kept: list[tuple[str, int]] = []
    chars, seen, unseen = 0, 0, 0
    cut: str | None = None  # the first path in path order left out so far
    for found in _walk(root):
        if found is None:
            unseen += 1
            continue
        seen += 1
        if cut is not None and found[0] > cut:
            continue
        kept.append(found)
        chars += len(found[0])
        if len(kept) > 2 * MAX_LISTED or chars > 2 * max_chars:  # sorted now and then only
            kept, cut = _first(kept, max_chars, cut)
            chars = sum(len(path) for path, _ in kept)
    kept, _ = _first(kept, max_chars, cut)
    return Listing(dict(kept), seen - len(kept) + unseen)


def _first(
    found: list[tuple[str, int]], max_chars: int, cut: str | None
) -> tuple[list[tuple[str, int]], str | None]:
    """Those of ``found`` that fit the bound, first in path order, and the first left out."""
    found.sort()
    chars = 0
    for n, (path, _) in enumerate(found):
        chars += len(path)
        if n >= MAX_LISTED or chars > max_chars:
            return found[:n], path  # smaller than ``cut``: only those were kept
    return found, cut


def _walk(root: int) -> Iterator[tuple[str, int] | None]:
    """(relative path, size) of each regular file under ``root``, depth first; None for
    each directory it does not look into. Holds a descriptor and a listing a level."""
    levels: list[tuple[str, int, Iterator[os.DirEntry[str]]]] = [("", root, os.scandir(root))]
    try:
        while levels:
            prefix, fd, entries = levels[-1]
            entry = next(entries, None)
            if entry is None:
                _close(levels.pop(), root)
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if len(levels) > MAX_DEPTH:
                        yield None
                        continue
                    sub = os.open(entry.name, _DIR, dir_fd=fd)
                    try:
                        levels.append((f"{prefix}{entry.name}/", sub, os.scandir(sub)))
                    except OSError:
                        os.close(sub)
                        raise
                elif entry.is_file(follow_symlinks=False):
                    yield prefix + entry.name, entry.stat(follow_symlinks=False).st_size
            except OSError:  # a directory it made unreadable (mode 000): not looked into
                if entry.is_dir(follow_symlinks=False):
                    yield None
    finally:
        while levels:
            _close(levels.pop(), root)


def _close(level: tuple[str, int, Iterator[os.DirEntry[str]]], root: int) -> None:
    _, fd, entries = level
    entries.close()  # type: ignore[attr-defined]  # a ScandirIterator
    if fd != root:
        os.close(fd)


def read_file(root: int, path: str) -> bytes | None:
    """The content of the regular file ``path`` below the directory ``root``, each of its
    steps opened without following a link; None if it cannot be read as one."""
    *dirs, name = path.split("/")
    fd = root
    try:
        for step in dirs:
            below = os.open(step, _DIR, dir_fd=fd)
            if fd != root:
                os.close(fd)
            fd = below
        file = os.open(name, _FILE, dir_fd=fd)
    except OSError:  # a file the code made unreadable (mode 000), or a link
        return None
    finally:
        if fd != root:
            os.close(fd)
    with os.fdopen(file, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read()


def remove(path: Path) -> None:
    """Remove ``path`` and everything under it; FileNotFoundError if it is not there,
    another OSError if something in it cannot be removed (or moved while it was)."""
    parent = os.open(path.parent, _DIR)
    try:
        fd = _open_dir(parent, path.name)
        above: list[tuple[str, int, int]] = []  # each directory gone into: name, parent's id
        try:
            while True:
                inner = _empty_but_one(fd)
                if inner is not None:
                    st = os.fstat(fd)
                    below = _open_dir(fd, inner)
                    above.append((inner, st.st_dev, st.st_ino))
                    os.close(fd)
                    fd = below
                    continue
                if not above:
                    break
                name, dev, ino = above.pop()
                up = os.open("..", _DIR, dir_fd=fd)
                os.close(fd)
                fd = up
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != (dev, ino):
                    raise OSError(f"a directory in {str(path)!r} was moved while it was removed")
                os.rmdir(name, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(path.name, dir_fd=parent)
    finally:
        os.close(parent)


def _empty_but_one(fd: int) -> str | None:
    """Unlink what is not a directory in the directory ``fd``, up to its first directory:
    that one's name, or None once nothing but directories' removal is left (it is empty)."""
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                return entry.name
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.name, dir_fd=fd)
    return None


def _open_dir(parent: int, name: str) -> int:
    """The directory ``name`` below ``parent``, opened, and writable by its owner.

    Code can leave a directory of its own at mode 000, which a user other than root can
    neither list nor empty: its mode gets rwx for its owner, through a descriptor of its
    own (a link put in its place is never followed: its target keeps its mode)."""
    try:
        fd = os.open(name, _DIR, dir_fd=parent)
    except PermissionError:
        if os.geteuid() == 0:
            raise
        path = os.open(
            name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
        )
        try:
            os.chmod(f"/proc/self/fd/{path}", stat.S_IMODE(os.fstat(path).st_mode) | 0o700)
            fd = os.open(".", _DIR, dir_fd=path)
        finally:
            os.close(path)
    mode = os.fstat(fd).st_mode
    if os.geteuid() != 0 and mode & 0o700 != 0o700:  # root needs no permission bits
        with contextlib.suppress(OSError):  # not ours: unlinking in it says so
            os.fchmod(fd, stat.S_IMODE(mode) | 0o700)
    return fd
