"""A cgroup per call: memory and process count bounded for everything the call starts.

rlimits are per process: four processes under a 512 MB RLIMIT_AS hold 2 GB between them.
A cgroup counts them together. Each call gets a cgroup ``agentrt-sandbox-<pid>-<n>``, which
the child joins before it execs bubblewrap, so every process of the call is in it; after the
call whatever is left in it is killed and it is removed. It is made below agentrt's own
cgroup in the v1 memory and pids hierarchies; with cgroup v2, where only leaves hold
processes, below agentrt's own only if that is the root, else beside it, below its parent,
with memory and pids enabled there. Where none of that is writable (most hosts when agentrt
is not root, unless a cgroup is delegated to it; a container whose cgroup namespace starts
at agentrt's own cgroup v2), the caller falls back to rlimits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from itertools import count
from pathlib import Path

from agentrt.tools.sandbox.workdir import PREFIX, owner_alive

_CONTROLLERS = ("memory", "pids")
_serial = count(1)


@dataclass(frozen=True)
class _Hierarchy:
    """Where this process may make child cgroups: one v2 directory, or v1 memory and pids."""

    version: int
    parents: tuple[Path, ...]


def _read(path: Path) -> str:
    return path.read_text(encoding="ascii").strip()


def _discover() -> _Hierarchy | None:
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
        own_lines = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    own: dict[str, str] = {}  # controller ("" for v2) -> this process's cgroup path
    for line in own_lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    mounts: list[tuple[str, str, str, list[str]]] = []  # point, root, type, super options
    for line in mountinfo:
        before, after = line.split(" - ", 1)
        fields, (fstype, _source, super_options) = before.split(), after.split(" ", 2)
        mounts.append((fields[4], fields[3], fstype, super_options.strip().split(",")))

    def below(point: str, root: str, path: str) -> Path | None:
        if path != root and not path.startswith(root.rstrip("/") + "/"):
            return None  # our cgroup is outside what this mount shows
        found = Path(point, os.path.relpath(path, root))
        return found if os.access(found, os.W_OK) else None

    for point, root, fstype, _options in mounts:
        if fstype != "cgroup2" or "" not in own:
            continue
        # cgroup v2 lets only leaves hold processes (the root aside), and agentrt's own
        # cgroup holds agentrt: calls go below it only where it is the root, and otherwise
        # beside it, below its parent (on systemd, the slice of agentrt's service).
        for path in (own[""], os.path.dirname(own[""])):
            parent = below(point, root, path)
            if parent is not None and _enable_v2(parent):
                return _Hierarchy(2, (parent,))
    parents: list[Path] = []
    for controller in _CONTROLLERS:
        for point, root, fstype, options in mounts:
            if fstype == "cgroup" and controller in options and controller in own:
                parent = below(point, root, own[controller])
                if parent is not None:
                    parents.append(parent)
                    break
    return _Hierarchy(1, tuple(parents)) if len(parents) == len(_CONTROLLERS) else None


def _enable_v2(parent: Path) -> bool:
    """True if children of ``parent`` get the memory and pids controllers."""
    try:
        if not set(_CONTROLLERS) <= set(_read(parent / "cgroup.controllers").split()):
            return False
        enabled = set(_read(parent / "cgroup.subtree_control").split())
        missing = [c for c in _CONTROLLERS if c not in enabled]
        if missing:
            # Refused (EBUSY) where ``parent`` holds processes and is not the root.
            (parent / "cgroup.subtree_control").write_text(
                " ".join(f"+{c}" for c in missing), encoding="ascii"
            )
    except OSError:
        return False
    return True


_hierarchy: _Hierarchy | None = None
_discovered = False


def hierarchy() -> _Hierarchy | None:
    """Where this process makes call cgroups, found once; None where it cannot."""
    global _hierarchy, _discovered
    if not _discovered:
        _hierarchy, _discovered = _discover(), True
    return _hierarchy


class CallCgroup:
    """One call's cgroup: one directory (v2), or one in each of memory and pids (v1)."""

    def __init__(self, version: int, dirs: list[Path]) -> None:
        self.version = version
        self.dirs = dirs
        # Encoded now: the child joins between fork and exec, where less work is safer.
        self._procs = [os.fsencode(d / "cgroup.procs") for d in dirs]

    @classmethod
    def create(cls, memory_bytes: int, max_tasks: int) -> CallCgroup | None:
        """A new cgroup with these limits, or None where none can be made."""
        found = hierarchy()
        if found is None:
            return None
        name = f"{PREFIX}{os.getpid()}-{next(_serial)}"
        dirs: list[Path] = []
        try:
            for parent in found.parents:
                (parent / name).mkdir()
                dirs.append(parent / name)
            memory, pids = (dirs[0], dirs[0]) if found.version == 2 else dirs
            if found.version == 2:
                (memory / "memory.max").write_text(str(memory_bytes), encoding="ascii")
                _try_write(memory / "memory.swap.max", "0")
            else:
                (memory / "memory.limit_in_bytes").write_text(str(memory_bytes), encoding="ascii")
                # memory+swap, where swap is accounted: swapping out is no way past the limit
                _try_write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes))
            (pids / "pids.max").write_text(str(max_tasks), encoding="ascii")
        except OSError:
            cls(found.version, dirs).close()
            return None
        return cls(found.version, dirs)

    def join(self) -> None:
        """Move the calling process into this cgroup (run in the child, before exec)."""
        for procs in self._procs:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")  # 0: the writer itself
            finally:
                os.close(fd)

    def members(self) -> set[int]:
        """Process ids still in the cgroup."""
        pids: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in _read(d / "cgroup.procs").split())
        return pids

    def close(self, wait: float = 5.0) -> None:
        """Kill whatever is left in the cgroup and remove it (left for a later sweep if stuck)."""
        deadline, pause = time.monotonic() + wait, 0.001
        while (pids := self.members()) and time.monotonic() < deadline:
            if not (self.version == 2 and _try_write(self.dirs[0] / "cgroup.kill", "1")):
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
            time.sleep(pause)  # SIGKILL lands when each process next runs
            pause = min(pause * 2, 0.05)
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.rmdir()


def _try_write(path: Path, value: str) -> bool:
    try:
        path.write_text(value, encoding="ascii")
    except OSError:
        return False
    return True


def sweep() -> None:
    """Kill and remove the call cgroups of owners that have exited."""
    found = hierarchy()
    if found is None:
        return
    stale: dict[str, list[Path]] = {}
    for parent in found.parents:
        with contextlib.suppress(OSError):
            for entry in os.scandir(parent):
                if entry.name.startswith(PREFIX) and not owner_alive(entry.name):
                    stale.setdefault(entry.name, []).append(Path(entry.path))
    for dirs in stale.values():
        CallCgroup(found.version, dirs).close(wait=1.0)
