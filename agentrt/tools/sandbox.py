"""A sandboxed subprocess runner for tools that run code, and the built-in run_python tool.

Each call gets its own process in its own session, a fresh temporary working directory
(deleted afterwards), an environment with nothing of the parent's (no API keys, no tokens),
and rlimits on CPU seconds, address space and file size. At its timeout the whole process
group is killed with SIGKILL.

Confinement of writes uses Landlock, the Linux LSM that an unprivileged process may apply
to itself (kernel 5.13+, no root, no user namespace): the child may create, write, rename
and delete only under its working directory (and write /dev/null); on kernels with
Landlock ABI 4+ it may not open TCP connections either. Reads are not confined: the child
needs the interpreter and its libraries, so it can read what the user running agentrt can
read. Where Landlock is missing the runner refuses to run unless the caller allows an
unconfined sandbox (limits and a scrubbed environment, but writes anywhere the user may).
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from langgraph.types import RetryPolicy
from pydantic import BaseModel

from agentrt.tools.contract import ToolError, ToolSpec, tool

__all__ = [
    "RunPythonResult",
    "SandboxLimits",
    "SandboxResult",
    "landlock_abi",
    "run_python",
    "run_python_tool",
    "run_sandboxed",
]

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


@dataclass(frozen=True, kw_only=True)
class SandboxLimits:
    """What one sandboxed process may use."""

    timeout: float = 10.0
    """Wall-clock seconds before the process group is killed."""
    cpu_seconds: int = 5
    """RLIMIT_CPU: CPU seconds before the kernel stops the process."""
    memory_bytes: int = 512 * 1024 * 1024
    """RLIMIT_AS: address space; allocations beyond it fail (MemoryError in Python)."""
    file_size_bytes: int = 16 * 1024 * 1024
    """RLIMIT_FSIZE: largest file the process may write, its captured output included."""
    max_output_chars: int = 64_000
    """stdout and stderr are each cut to this many characters in the result."""
    require_confinement: bool = True
    """Refuse to run where Landlock cannot confine writes to the working directory."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables; nothing of the parent's environment is passed."""


@dataclass(frozen=True, kw_only=True)
class SandboxResult:
    """What a sandboxed process did."""

    returncode: int
    """Exit status; negative: killed by that signal."""
    stdout: str
    stderr: str
    timed_out: bool
    """True if it was killed at its timeout."""
    confined: bool
    """True if Landlock confined its writes to its working directory."""
    files: dict[str, int]
    """Files left in the working directory (relative path -> size), before it was removed."""


def _relative(path: str) -> PurePosixPath:
    """A path inside the working directory, or a ToolError naming the one that is not."""
    rel = PurePosixPath(path)
    if not path or rel.is_absolute() or ".." in rel.parts:
        raise ToolError(
            f"path {path!r} is outside the sandbox's working directory; give a relative path "
            "without '..'"
        )
    return rel


def run_sandboxed(
    argv: Sequence[str],
    *,
    files: Mapping[str, str] | None = None,
    limits: SandboxLimits | None = None,
) -> SandboxResult:
    """Run ``argv`` in a fresh working directory holding ``files``, under ``limits``."""
    limits = limits or SandboxLimits()
    abi = landlock_abi()
    if limits.require_confinement and abi == 0:
        raise ToolError(
            "this kernel has no Landlock, so the sandbox cannot confine writes to its "
            "directory; run on Linux 5.13+ or pass SandboxLimits(require_confinement=False)"
        )
    workdir = tempfile.mkdtemp(prefix="agentrt-sandbox-")
    try:
        root = Path(workdir)
        for name, content in (files or {}).items():
            target = root / _relative(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": workdir,
            "TMPDIR": workdir,
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
                _confine_writes(workdir, abi)

        # Output goes to files, not pipes, so RLIMIT_FSIZE bounds it too.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
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
                os.killpg(proc.pid, signal.SIGKILL)  # the whole group: children too
                proc.wait()
            stdout, stderr = (_read(f, limits.max_output_chars) for f in (out, err))
        left = {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}
        return SandboxResult(
            returncode=proc.returncode,
            stdout=stdout,
            stderr=stderr,
            timed_out=timed_out,
            confined=abi > 0,
            files=left,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _read(f: Any, limit: int) -> str:
    f.seek(0)
    text: str = f.read(limit * 4).decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "\n[output cut]"


class RunPythonResult(BaseModel):
    """What the run_python tool returns to the model."""

    exit_code: int
    stdout: str
    stderr: str
    files: dict[str, int]


def run_python_tool(
    limits: SandboxLimits | None = None, *, name: str = "run_python", scopes: Sequence[str] = ()
) -> ToolSpec:
    """A run_python tool with these limits; register it to offer it (it is never implicit)."""
    limits = limits or SandboxLimits()

    # Its effects stay in a directory that is deleted afterwards, so calling it again is
    # harmless: idempotent. A run killed at its timeout is a timeout observation; it is not
    # retried (max_attempts=1), since the same code would most likely run as long again.
    @tool(
        name=name,
        effect="write",
        scopes=list(scopes),
        idempotent=True,
        retry=RetryPolicy(max_attempts=1),
    )
    def run_python(code: str, files: dict[str, str] | None = None) -> RunPythonResult:
        """Run a Python program in a sandbox and return its exit code and output.

        Args:
            code: The program, run as main.py in a fresh, empty working directory.
            files: Extra files to create first, relative path -> text.
        """
        inputs = {**(files or {}), "main.py": code}
        done = run_sandboxed([sys.executable, "-I", "main.py"], files=inputs, limits=limits)
        if done.timed_out:
            raise TimeoutError(f"the program was killed at its timeout of {limits.timeout:g}s")
        return RunPythonResult(
            exit_code=done.returncode, stdout=done.stdout, stderr=done.stderr, files=done.files
        )

    return run_python


run_python = run_python_tool()
"""The built-in run_python tool with default limits: pass it in tools=[...] to offer it."""
