"""A call's working directory: made, filled, listed, removed, and swept after a crash.

Each directory is named ``agentrt-sandbox-<pid>-<random>`` after the process that owns it,
so one left behind by a killed process is known as such: the first call of every process
removes those whose owner is dead (and cgroups of the same name, see cgroups.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from agentrt.processes import pid_alive
from agentrt.tools.contract import ToolError

PREFIX = "agentrt-sandbox-"
_OWNED = re.compile(rf"^{PREFIX}(\d+)-")


def check_name(name: str) -> PurePosixPath:
    """A file name for the working directory, or a ToolError naming the one that is not."""
    if "\0" in name:
        raise ToolError(
            f"file name {name!r} contains a NUL byte, which no file name can hold; remove it"
        )
    rel = PurePosixPath(name)
    if not name or rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ToolError(
            f"path {name!r} is outside the sandbox's working directory; give a relative path "
            "without '..'"
        )
    return rel


def make(files: Mapping[str, str], owner: tuple[int, int] | None) -> Path:
    """A fresh working directory holding ``files``, owned by ``owner`` (uid, gid) if given."""
    names = {name: check_name(name) for name in files}  # every name checked before any write
    root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    try:
        for name, content in files.items():
            target = root / names[name]
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, encoding="utf-8")
            except OSError as e:
                raise ToolError(
                    f"cannot create {name!r} in the sandbox's working directory: {e.strerror}; "
                    "give each file its own path"
                ) from e
        if owner is not None:
            for path in [root, *root.rglob("*")]:
                os.chown(path, *owner, follow_symlinks=False)
    except BaseException:
        remove(root)
        raise
    return root


def listing(root: Path) -> dict[str, int]:
    """Regular files under ``root`` (relative path -> size); links are not followed."""
    found: dict[str, int] = {}
    for top, _, names in os.walk(root):
        for name in names:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                found[os.path.relpath(path, root)] = st.st_size
    return found


def written(root: Path, inputs: Mapping[str, str], limit: int) -> dict[str, bytes]:
    """The first ``limit`` regular files under ``root``, in path order, that the program
    made or changed (an input it left as it was is not one; nor is Python's bytecode
    cache), relative path -> content.

    Only those are read: the program can leave any number of files of file_size_bytes on
    disk, and what is read here is this process's memory, which no sandbox limit bounds.
    Called once every process of the call is dead, so nothing moves under it; a link is
    never followed (O_NOFOLLOW), so a link to a file outside is not read through.
    """
    found: dict[str, bytes] = {}
    for name, size in sorted(listing(root).items()):
        if len(found) >= limit:
            break
        if "__pycache__" in PurePosixPath(name).parts:
            continue
        given = inputs.get(name)
        given_bytes = given.encode("utf-8") if given is not None else None
        if given_bytes is not None and len(given_bytes) != size:
            given_bytes = None  # changed: its size says so without reading it twice
        try:
            fd = os.open(os.path.join(root, name), os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                content = f.read()
        except OSError:  # a file the code made unreadable (mode 000): not returned
            continue
        if given_bytes != content:
            found[name] = content
    return found


def unlock(root: Path) -> None:
    """Give every directory under ``root`` (itself included) rwx for its owner.

    Code can leave a directory it owns at mode 000, which a user other than root can then
    neither list nor empty. Nothing runs in it any more, so a checked directory stays one;
    symbolic links are never followed (a link to a file of yours must not change its mode).
    """
    stack = [str(root)]
    while stack:
        path = stack.pop()
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            continue
        if st.st_mode & 0o700 != 0o700:
            with contextlib.suppress(OSError):  # not ours: rmtree reports it
                os.chmod(path, stat.S_IMODE(st.st_mode) | 0o700)
        with contextlib.suppress(OSError):
            stack.extend(entry.path for entry in os.scandir(path))


def remove(root: Path, *, quiet: bool = False) -> None:
    """Remove a working directory, whatever modes the code left in it."""
    try:
        if os.geteuid() != 0:  # root needs no permission bits
            unlock(root)
        shutil.rmtree(root)
    except FileNotFoundError:
        pass
    except OSError as e:
        if quiet:
            return
        warnings.warn(
            f"could not remove the sandbox directory {str(root)!r}: {e}; the first sandbox "
            "call of a later process removes it once this one has exited",
            RuntimeWarning,
            stacklevel=2,
        )


def owner_alive(name: str) -> bool:
    """False if ``name`` is an agentrt sandbox directory or cgroup whose owner has exited."""
    found = _OWNED.match(name)
    if found is None:
        return True  # not ours to judge
    pid = int(found.group(1))
    return pid == os.getpid() or pid_alive(pid)


def sweep() -> None:
    """Remove the working directories of owners that have exited."""
    tmp = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for entry in os.scandir(tmp):
            if entry.name.startswith(PREFIX) and not owner_alive(entry.name):
                remove(Path(entry.path), quiet=True)  # maybe another user's: not ours to fix
