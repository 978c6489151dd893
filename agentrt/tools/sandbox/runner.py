"""run_sandboxed: one call, from a fresh working directory to the last process killed."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import IO

from agentrt.tools.contract import ToolError
from agentrt.tools.sandbox import bubblewrap, cgroups, landlock, seccomp, tree, workdir
from agentrt.tools.sandbox.cgroups import CallCgroup
from agentrt.tools.sandbox.limits import Outcome, SandboxLimits, SandboxResult

_swept_by = 0  # the pid that swept: a forked child sweeps again
_sweep_lock = threading.Lock()
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def run_sandboxed(
    argv: Sequence[str],
    *,
    files: Mapping[str, str] | None = None,
    limits: SandboxLimits | None = None,
    keep_written: bool = False,
    max_written: int = 20,
) -> SandboxResult:
    """Run ``argv`` in a fresh working directory holding ``files``, under ``limits``.

    By default in bubblewrap (see agentrt.tools.sandbox.bubblewrap for what the program can
    and cannot reach); a host without it gets a ToolError saying what to install, unless
    ``limits.isolation`` opts into the weaker "landlock" mode. Every process the call starts
    is dead when this returns, and its working directory removed. ``keep_written``: the
    files the program wrote come back in ``written``, read once every process is dead: the
    first ``max_written`` in path order (each is file_size_bytes at most, so this bounds
    what this process reads; the program can leave more).
    """
    limits = limits or SandboxLimits()
    files = {str(workdir.check_name(name)): text for name, text in (files or {}).items()}
    bwrap = None
    if limits.isolation == "bubblewrap":
        bwrap = bubblewrap.find_bwrap()
        if bwrap is None:
            raise ToolError(
                "bubblewrap (the `bwrap` command) is not installed, so the sandbox cannot "
                "isolate this code; install it (Debian and Ubuntu: apt-get install bubblewrap; "
                "Fedora: dnf install bubblewrap), or accept the weaker mode, which confines "
                "writes only, with SandboxLimits(isolation='landlock')"
            )
    _sweep_once()
    root = None if bwrap is not None else workdir.make(files)
    outcome: Outcome | None = None
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            if bwrap is not None:
                outcome = _run_bubblewrap(bwrap, argv, files, limits, out=out, err=err)
            else:
                assert root is not None
                outcome = landlock.run(argv, root, limits, out, err)
                with contextlib.suppress(OSError):  # made unreadable by the code: no files
                    outcome = replace(outcome, tree=os.open(root, _DIR))
            stdout, stderr = (_read(f, limits.max_output_chars) for f in (out, err))
        tree_fd = outcome.tree
        listed = (
            tree.listing(tree_fd, limits.max_output_chars)
            if tree_fd is not None
            else tree.Listing({}, 0)
        )
        return SandboxResult(
            returncode=outcome.returncode,
            stdout=stdout,
            stderr=stderr,
            timed_out=outcome.timed_out,
            confined=outcome.confined,
            files=listed.files,
            files_not_listed=listed.not_listed,
            isolation=outcome.isolation,
            bound=outcome.bound,
            written=(
                workdir.written(tree_fd, listed.files, files, max_written)
                if keep_written and tree_fd is not None
                else {}
            ),
        )
    finally:
        if outcome is not None and outcome.tree is not None:
            os.close(outcome.tree)  # the last hold on a bubblewrap call's tmpfs: it is freed
        if root is not None:
            workdir.remove(root)


def _sweep_once() -> None:
    """Once a process: remove what dead owners left (a SIGKILL gives no chance to clean up)."""
    global _swept_by  # noqa: PLW0603 (a once-per-process latch)
    with _sweep_lock:
        if _swept_by == os.getpid():
            return
        _swept_by = os.getpid()
    bubblewrap.sweep_orphans()
    cgroups.sweep()
    workdir.sweep()


def _run_bubblewrap(
    bwrap: str,
    argv: Sequence[str],
    files: Mapping[str, str],
    limits: SandboxLimits,
    *,
    out: IO[bytes],
    err: IO[bytes],
) -> Outcome:
    max_tasks = limits.max_processes + bubblewrap.OVERHEAD_TASKS
    cgroup = CallCgroup.create(limits.memory_bytes, max_tasks)
    # Without a cgroup, memory that no rlimit counts is refused (seccomp.py).
    rules = seccomp.memory_filter() if cgroup is None else None
    # The launcher's lifeline (see launcher.py): the write end stays here, unshared.
    lifeline, held = os.pipe()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    got: int | None = None
    try:
        with contextlib.ExitStack() as temporary:
            status, info, inputs, filter_file = (
                temporary.enter_context(tempfile.TemporaryFile()) for _ in range(4)
            )
            inputs.write(json.dumps(list(files.items())).encode("ascii"))
            inputs.seek(0)
            if rules is not None:
                filter_file.write(rules)
                filter_file.seek(0)
            fds = bubblewrap.Fds(
                status=status.fileno(),
                info=info.fileno(),
                lifeline=lifeline,
                inputs=inputs.fileno(),
                handback=theirs.fileno(),
                seccomp=filter_file.fileno() if rules is not None else None,
            )
            sources, in_child = bubblewrap.prepare_child(limits, cgroup, status.fileno())
            cmd = bubblewrap.command(
                bwrap,
                argv,
                workdir.call_name(),
                sources,
                limits,
                fds=fds,
                # Without a cgroup, the launcher bounds the count with RLIMIT_NPROC.
                max_processes=0 if cgroup else limits.max_processes + bubblewrap.INSIDE_TASKS,
            )
            try:
                proc = subprocess.Popen(
                    cmd,
                    cwd="/",
                    env=bubblewrap.environment(limits),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    pass_fds=[
                        fd
                        for fd in (fds.status, fds.info, lifeline, fds.inputs, fds.handback)
                        + (() if fds.seccomp is None else (fds.seccomp,))
                    ],
                    preexec_fn=in_child,  # noqa: PLW1509 (cgroup, mounts, uid: in the child)
                )
            except subprocess.SubprocessError as e:
                said = [line for line in _lines(status) if line.startswith("setup-failed ")]
                reason = said[-1].removeprefix("setup-failed ") if said else str(e)
                raise ToolError(
                    f"the sandbox could not be set up: {reason}; as root, agentrt needs "
                    "CAP_SYS_ADMIN to bind a Python or temporary directory that "
                    f"uid {limits.uid} cannot reach, or put them where it can"
                ) from e
            theirs.close()  # the launcher's, and only the launcher's, from now on
            timed_out = False
            try:
                proc.wait(timeout=limits.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill(proc, info)
            except BaseException:  # interrupted while waiting: the sandbox goes first
                _kill(proc, info)
                raise
            report = _lines(status)
            got = _handed_back(ours)
    finally:
        os.close(lifeline)
        os.close(held)
        ours.close()
        theirs.close()
        if cgroup is not None:
            cgroup.close()
    try:
        returncode = _returncode(
            report, proc.returncode, timed_out=timed_out, argv=argv, inputs=list(files), err=err
        )
    except BaseException:
        if got is not None:
            os.close(got)
        raise
    return Outcome(
        returncode=returncode,
        timed_out=timed_out,
        confined=True,
        isolation="bubblewrap",
        bound="cgroup" if cgroup is not None else "rlimit",
        tree=got,
    )


def _handed_back(sock: socket.socket) -> int | None:
    """The working directory's descriptor the launcher sent, if it did (it was first on
    the socket, and nothing else could send on it: see launcher.py)."""
    sock.setblocking(False)
    try:
        _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    except OSError:  # nothing sent: the launcher never got that far
        return None
    for extra in fds[1:]:
        os.close(extra)
    if not fds:
        return None
    if not stat.S_ISDIR(os.fstat(fds[0]).st_mode):
        os.close(fds[0])
        return None
    return fds[0]


def _returncode(
    report: list[str],
    bwrap_code: int,
    *,
    timed_out: bool,
    argv: Sequence[str],
    inputs: Sequence[str],
    err: IO[bytes],
) -> int:
    """The program's exit status, from the launcher's report where there is one."""
    if timed_out:
        return -signal.SIGKILL
    for line in report:
        word, _, rest = line.partition(" ")
        if word == "exited":
            return os.waitstatus_to_exitcode(int(rest))
        if word == "cannot-create":
            index, _, reason = rest.partition(" ")
            raise workdir.cannot_create(inputs[int(index)], reason)
        if word == "cannot-run":
            raise ToolError(
                f"cannot run {argv[0]!r} in the sandbox: {rest.partition(' ')[2]}; it sees "
                "only /usr, /bin, the Python prefix and its working directory"
            )
    if "started" not in report:
        err.seek(0)
        said = err.read(2000).decode("utf-8", errors="replace").strip()
        raise ToolError(
            f"bubblewrap could not start the sandbox (exit status {bwrap_code}): {said!r}; "
            "if it could not make namespaces, the host must allow unprivileged user "
            "namespaces (sysctl user.max_user_namespaces > 0, and on Debian "
            "kernel.unprivileged_userns_clone=1)"
        )
    # The launcher itself was killed (the OOM killer, or the program): bubblewrap's 128+N.
    return -(bwrap_code - 128) if bwrap_code > 128 else bwrap_code


def _kill(proc: subprocess.Popen[bytes], info: IO[bytes]) -> None:
    """Kill the sandbox's PID 1, and so every process in it, and wait until they are gone."""
    init = _sandbox_init(proc.pid, info)
    if init is not None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(init, signal.SIGKILL)
    proc.kill()
    proc.wait()
    if init is not None:
        # Readable once PID 1 has exited, which the kernel allows only after every other
        # process of its namespace has.
        select.select([init], [], [], 5.0)
        os.close(init)


def _sandbox_init(bwrap_pid: int, info: IO[bytes]) -> int | None:
    """A pidfd of the sandbox's PID 1 (bwrap's --info-fd names it), or None if not known."""
    info.seek(0)
    try:
        pid = int(json.loads(info.read() or b"{}")["child-pid"])
        fd = os.pidfd_open(pid)
    except (ValueError, KeyError, OSError):
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            parent = int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        parent = 0
    if parent != bwrap_pid:  # exited and its pid reused: not ours to signal
        os.close(fd)
        return None
    return fd


def _lines(f: IO[bytes]) -> list[str]:
    f.seek(0)
    return f.read(4096).decode("utf-8", errors="replace").splitlines()


def _read(f: IO[bytes], limit: int) -> str:
    f.seek(0)
    text = f.read(limit * 4).decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "\n[output cut]"
