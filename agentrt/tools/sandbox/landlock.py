"""The weaker, opt-in isolation: ``SandboxLimits(isolation="landlock")``, for hosts without
bubblewrap.

The program runs as agentrt's own user, in its own session and process group, with a scrubbed
environment and the rlimits of SandboxLimits (CPU seconds, address space per process, file
size), killed with its process group at the timeout. Landlock (Linux 5.13+) confines its
writes, creating, renaming and deleting files to its working directory (and /dev/null), and,
on kernels with Landlock ABI 4+, forbids TCP bind and connect.

What it does NOT confine:

- Reads: it can read every file agentrt's user can read (keys, tokens, other runs' data) and
  /proc/<pid>/environ of that user's processes, agentrt's included, with its secrets.
- Signals: it can kill or stop any process of the same user, agentrt itself included
  (``os.kill(os.getppid(), SIGKILL)``), and ptrace them where the host allows it.
- The network beyond TCP: UDP, ICMP, and Unix sockets, by path (docker.sock, D-Bus,
  ssh-agent) or abstract; on kernels before ABI 4, TCP too.
- Metadata of outside files: chmod, chown, utime and extended attributes are not writes to
  Landlock's older ABIs.
- Processes: a child that calls setsid() escapes the process-group kill and outlives the
  call; there is no bound on how many processes it starts, and memory is bounded per
  process only (four processes hold four times memory_bytes).
- As root, all of root's power apart from the confined writes: chown, raw sockets, signals
  to every process, every file readable.

Where the kernel has no Landlock it refuses to run unless ``require_confinement=False``,
which leaves only the rlimits and the scrubbed environment.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from agentrt.tools.contract import ToolError
from agentrt.tools.sandbox.limits import Outcome, SandboxLimits

# Linux x86_64/aarch64 syscall numbers and constants from <linux/landlock.h>.
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_FS_WRITE_FILE = 1 << 1
_FS_WRITES = (
    _FS_WRITE_FILE
    | (1 << 4)  # REMOVE_DIR
    | (1 << 5)  # REMOVE_FILE
    | (1 << 6)  # MAKE_CHAR
    | (1 << 7)  # MAKE_DIR
    | (1 << 8)  # MAKE_REG
    | (1 << 9)  # MAKE_SOCK
    | (1 << 10)  # MAKE_FIFO
    | (1 << 11)  # MAKE_BLOCK
    | (1 << 12)  # MAKE_SYM
)
_FS_REFER = 1 << 13  # ABI 2: link or rename across directories
_FS_TRUNCATE = 1 << 14  # ABI 3
_NET_TCP = (1 << 0) | (1 << 1)  # ABI 4: BIND_TCP | CONNECT_TCP


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers; 0 if it offers none."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    version = libc.syscall(_SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)
    return max(0, int(version))


def _confine_writes(workdir: str, abi: int) -> None:
    """In the child, before exec: allow writes only beneath ``workdir``, then lock it in."""
    libc = ctypes.CDLL(None, use_errno=True)
    handled = _FS_WRITES | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    if abi >= 4:
        attr = ctypes.create_string_buffer(struct.pack("=QQ", handled, _NET_TCP))
    else:
        attr = ctypes.create_string_buffer(struct.pack("=Q", handled))
    ruleset = libc.syscall(_SYS_CREATE_RULESET, attr, len(attr.raw), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    file_rights = _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0)
    for path, allowed in ((workdir, handled), ("/dev/null", file_rights)):
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        rule = ctypes.create_string_buffer(struct.pack("=Qi", allowed, fd))
        if libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, rule, 0) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path!r}")
        os.close(fd)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(ruleset)


def run(
    argv: Sequence[str], workdir: Path, limits: SandboxLimits, out: IO[bytes], err: IO[bytes]
) -> Outcome:
    """Run ``argv`` in ``workdir`` with its writes confined by Landlock (see the module)."""
    abi = landlock_abi()
    if limits.require_confinement and abi == 0:
        raise ToolError(
            "this kernel has no Landlock, so the landlock sandbox cannot confine writes to its "
            "directory; use the default isolation (install bubblewrap), run on Linux 5.13+, or "
            "pass SandboxLimits(isolation='landlock', require_confinement=False)"
        )
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        **limits.env,
    }

    def in_child() -> None:
        for kind, value in (
            (resource.RLIMIT_CPU, limits.cpu_seconds),
            (resource.RLIMIT_AS, limits.memory_bytes),
            (resource.RLIMIT_FSIZE, limits.file_size_bytes),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.setrlimit(kind, (value, value))
        if abi:
            _confine_writes(str(workdir), abi)

    proc = subprocess.Popen(
        list(argv),
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=err,
        start_new_session=True,
        preexec_fn=in_child,  # noqa: PLW1509 (rlimits and Landlock must be set in the child)
    )
    timed_out = False
    try:
        proc.wait(timeout=limits.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group: children that did not setsid()
        proc.wait()
    return Outcome(
        returncode=proc.returncode,
        timed_out=timed_out,
        confined=abi > 0,
        isolation="landlock" if abi else "none",
        bound="per-process",
    )
