"""A call's working directory: named, filled, read back, removed, and swept after a crash.

Under bubblewrap the working directory is a tmpfs of the call's own (bubblewrap.py), which
the launcher fills with the call's files and hands back by descriptor: nothing of it is on
the host's disk. In landlock mode it is a host directory, made and removed here. Either
way it is named ``agentrt-sandbox-<pid>-<random>`` after the process that owns it (the
bubblewrap sandbox's host name, the directory's name), so one left behind by a killed
process is known as such: the first call of every process removes those whose owner is
dead (and cgroups and sandboxes of the same name, see cgroups.py and bubblewrap.py).
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from agentrt.logs import get_logger
from agentrt.processes import pid_alive
from agentrt.tools.contract import ToolError
from agentrt.tools.sandbox import tree

PREFIX = "agentrt-sandbox-"
_OWNED = re.compile(rf"^{PREFIX}(\d+)-")
logger = get_logger("agentrt.sandbox")


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


def call_name() -> str:
    """A new call's name, its owner's pid in it (see sweep)."""
    return f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"


def cannot_create(name: str, reason: str) -> ToolError:
    """The ToolError for an input file the working directory cannot hold."""
    return ToolError(
        f"cannot create {name!r} in the sandbox's working directory: {reason}; give each "
        "file its own path, each within file_size_bytes and all within workdir_bytes"
    )


def make(files: Mapping[str, str]) -> Path:
    """A fresh host directory holding ``files`` (landlock mode)."""
    names = {name: check_name(name) for name in files}  # every name checked before any write
    root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    try:
        for name, content in files.items():
            target = root / names[name]
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, encoding="utf-8")
            except OSError as e:
                raise cannot_create(name, e.strerror or str(e)) from e
    except BaseException:
        remove(root)
        raise
    return root


def written(
    root: int, listed: Mapping[str, int], inputs: Mapping[str, str], limit: int
) -> dict[str, bytes]:
    """The first ``limit`` of the ``listed`` files under the directory ``root`` (a
    descriptor), in path order, that the program made or changed (an input it left as it
    was is not one; nor is Python's bytecode cache), relative path -> content.

    Only those are read: the program can leave any number of files of file_size_bytes,
    and what is read here is this process's memory, which no sandbox limit bounds. Called
    once every process of the call is dead, so nothing moves under it; a link is never
    followed, so a link to a file outside is not read through.
    """
    found: dict[str, bytes] = {}
    for name, size in sorted(listed.items()):
        if len(found) >= limit:
            break
        if "__pycache__" in PurePosixPath(name).parts:
            continue
        given = inputs.get(name)
        given_bytes = given.encode("utf-8") if given is not None else None
        if given_bytes is not None and len(given_bytes) != size:
            given_bytes = None  # changed: its size says so without reading it twice
        content = tree.read_file(root, name)
        if content is not None and given_bytes != content:
            found[name] = content
    return found


def remove(root: Path) -> None:
    """Remove a working directory, whatever modes, depth or path lengths the code left in
    it; a RuntimeWarning if it cannot be (a later process's sweep tries again)."""
    try:
        tree.remove(root)
    except FileNotFoundError:
        pass
    except OSError as e:
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
    """Remove the working directories of owners that have exited. One that cannot be
    removed (another user's, or anything else) is logged and passed over: it never stops
    the sweep, nor the call that sweeps."""
    tmp = Path(tempfile.gettempdir())
    try:
        stale = [
            Path(entry.path)
            for entry in os.scandir(tmp)
            if entry.name.startswith(PREFIX) and not owner_alive(entry.name)
        ]
    except OSError as e:
        logger.warning("cannot look for stale sandbox directories in %r: %s", str(tmp), e)
        return
    for path in stale:
        try:
            tree.remove(path)
        except FileNotFoundError:
            pass  # another process's sweep was first
        except Exception as e:  # whatever it is, the next directory and the call go on
            logger.warning("cannot remove the stale sandbox directory %r: %r", str(path), e)
