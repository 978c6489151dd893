"""The sandbox's settings (SandboxLimits) and what a call did (SandboxResult)."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from agentrt.errors import ConfigError

Isolation = Literal["bubblewrap", "landlock"]
"""How code is kept in: "bubblewrap" (namespaces) or "landlock" (the weaker opt-in mode)."""

ISOLATIONS: tuple[Isolation, ...] = ("bubblewrap", "landlock")

_RLIMIT_MOST = (sys.maxsize, "the most setrlimit takes")
"""The largest limit, and why: past a C long, setrlimit fails in the child, which says only
"Exception occurred in preexec_fn." (landlock mode) or blames user namespaces (bubblewrap)."""
_PROCESSES_MOST = (4_194_304, "PID_MAX_LIMIT, the most processes Linux can have")
"""The most processes, and why (a cgroup's pids.max refuses more)."""
_ID_MOST = (2**32 - 2, "the largest user or group id; setuid refuses 2**32 - 1")
"""The largest uid and gid, and why."""


@dataclass(frozen=True, kw_only=True)
class SandboxLimits:
    """What one sandboxed call may use, and how it is kept in."""

    timeout: float = 10.0
    """Wall-clock seconds before every process of the call is killed."""
    cpu_seconds: int = 5
    """RLIMIT_CPU: CPU seconds each process may use before the kernel stops it."""
    memory_bytes: int = 512 * 1024 * 1024
    """Memory for the whole call where a cgroup bounds it (SandboxResult.bound "cgroup"), and
    always each process's address space (RLIMIT_AS): one oversized allocation is a MemoryError."""
    max_processes: int = 64
    """Processes and threads the call may have at once, its first process included (a cgroup's
    pids.max, or RLIMIT_NPROC in the sandbox's user namespace; not bounded in landlock mode)."""
    file_size_bytes: int = 16 * 1024 * 1024
    """RLIMIT_FSIZE: largest file a process may write, its captured output included; also
    the size of each of the sandbox's private /tmp and /dev/shm."""
    workdir_bytes: int = 64 * 1024 * 1024
    """What the working directory holds at most, its input files included: it is a tmpfs of
    this size (memory, not the host's disk, and under a cgroup counted in memory_bytes);
    writing past it fails with ENOSPC. Not bounded in landlock mode."""
    max_output_chars: int = 64_000
    """stdout and stderr are each cut to this many characters in the result, and so are the
    paths the listing of its files names, all together."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables; nothing of the parent's environment is passed."""
    isolation: Isolation = "bubblewrap"
    """"bubblewrap" (the default; needs the `bwrap` binary) or "landlock", the weaker mode
    for hosts without it, which confines writes only: see agentrt.tools.sandbox.landlock."""
    require_confinement: bool = True
    """Landlock mode only: refuse to run where the kernel has no Landlock to confine writes."""
    uid: int = 65534
    """The unprivileged user the code runs as when agentrt runs as root (nobody)."""
    gid: int = 65534
    """The group the code runs as when agentrt runs as root (nogroup)."""

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATIONS:
            raise ConfigError(
                f"SandboxLimits(isolation={self.isolation!r}) is not one of {ISOLATIONS!r}; "
                "use 'bubblewrap' unless bubblewrap cannot be installed"
            )
        timeout = self.timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ConfigError(
                f"SandboxLimits(timeout={timeout!r}) must be a number of seconds, such as 10"
            )
        if not math.isfinite(timeout):
            # NaN compares false with everything: the call would wait however long it ran.
            raise ConfigError(
                f"SandboxLimits(timeout={timeout!r}) must be a finite number of seconds; "
                "NaN or infinity would mean no wall-clock limit at all"
            )
        if timeout <= 0:
            raise ConfigError(f"SandboxLimits(timeout={timeout!r}) must be positive")
        for name, least, most in (
            ("cpu_seconds", 1, _RLIMIT_MOST),
            ("memory_bytes", 1, _RLIMIT_MOST),
            ("max_processes", 1, _PROCESSES_MOST),
            ("file_size_bytes", 1, _RLIMIT_MOST),
            ("workdir_bytes", 1, _RLIMIT_MOST),
            ("max_output_chars", 0, None),
            ("uid", 1, _ID_MOST),
            ("gid", 1, _ID_MOST),
        ):
            value = getattr(self, name)
            # A float reaches setrlimit or a cgroup file as no limit it reads (nan, 1e9).
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(
                    f"SandboxLimits({name}={value!r}) must be a whole number (an int)"
                )
            if most is not None and value > most[0]:
                # Checked now: in the child, the call would fail without naming the value.
                raise ConfigError(
                    f"SandboxLimits({name}={value!r}) is past {most[0]} ({most[1]}); "
                    "give at most that"
                )
            if value >= least:
                continue
            if name in ("uid", "gid"):
                raise ConfigError(
                    f"SandboxLimits({name}={value!r}) must name an unprivileged id (not root)"
                )
            if least == 0:
                raise ConfigError(f"SandboxLimits({name}={value!r}) must not be negative")
            raise ConfigError(f"SandboxLimits({name}={value!r}) must be positive")


Bound = Literal["cgroup", "rlimit", "per-process"]


@dataclass(frozen=True, kw_only=True)
class SandboxResult:
    """What a sandboxed call did, and how it was kept in."""

    returncode: int
    """Exit status of the program; negative: killed by that signal."""
    stdout: str
    """What it wrote to stdout, cut to max_output_chars."""
    stderr: str
    """What it wrote to stderr, cut to max_output_chars."""
    timed_out: bool
    """True if it was killed at its timeout."""
    confined: bool
    """True if its writes were confined to its working directory."""
    files: dict[str, int]
    """Files left in the working directory (relative path -> size), before it was removed:
    the first in path order, at most 1,000 (tree.MAX_LISTED) and max_output_chars
    characters of paths; directories nested past 32 levels are not looked into."""
    isolation: Literal["bubblewrap", "landlock", "none"]
    """"bubblewrap" (namespaces), "landlock" (writes confined, nothing else) or "none"
    (Landlock mode on a kernel without Landlock, with require_confinement=False)."""
    bound: Bound
    """What bounded its processes and memory: "cgroup" (memory_bytes and max_processes for the
    whole call), "rlimit" (max_processes for the whole call, memory_bytes per process, and
    memfd and SysV shared memory refused: no writable cgroup) or "per-process" (Landlock
    mode: each process's address space, no process count)."""
    written: dict[str, bytes] = field(default_factory=dict)
    """With ``keep_written``: the content of each file the program wrote or changed
    (relative path -> bytes), read before the directory was removed; the first
    ``max_written`` of them in path order, among those ``files`` lists."""
    files_not_listed: int = 0
    """Files left out of ``files`` by its bound, and directories not looked into (nested
    too deep, or made unreadable), each of those counted as one."""


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How one isolation mode's run ended (internal: run_sandboxed adds output and files)."""

    returncode: int
    timed_out: bool
    confined: bool
    isolation: Literal["bubblewrap", "landlock", "none"]
    bound: Bound
    tree: int | None = None
    """Bubblewrap: a descriptor of the call's working directory (its tmpfs, kept while it
    is held), which the runner reads and closes; None if the launcher never sent it."""
