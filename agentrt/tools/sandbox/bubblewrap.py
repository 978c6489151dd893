"""The default isolation: the program runs inside bubblewrap (`bwrap`).

What the program sees and may do:

- Its own PID, network, IPC, UTS, cgroup and user namespaces: it can signal, trace or read
  /proc of no process but its own; its network has a loopback device and nothing else (no
  host TCP or UDP ports, no abstract Unix sockets); it cannot make user namespaces of its own.
- A filesystem of read-only binds of what an interpreter needs (/usr, the /bin and /lib*
  links or directories, the dynamic linker's files in /etc, and the Python prefixes of
  ``sys.executable``), a fresh /proc and a minimal /dev, private tmpfs /tmp and /dev/shm of
  file_size_bytes each, and its working directory at /sandbox, a private tmpfs of
  workdir_bytes: the only places it can write, none of them on the host's disk. Host
  sockets (docker.sock, D-Bus, ssh-agent), home directories and other files are not there
  to reach.
- No capabilities, a new session (no TIOCSTI into agentrt's terminal), an environment of
  PATH, HOME, TMPDIR, LANG and SandboxLimits.env only. Without a cgroup, no memfd and no
  SysV shared memory either (seccomp.py): memory no rlimit would count.
- When agentrt runs as root, it runs as SandboxLimits.uid/gid (nobody), so what it owns on
  the host it owns as nobody. Privileges are dropped before bubblewrap runs; the Python
  prefixes are first bound into a private mount namespace where that user can reach them (a
  prefix under /root, mode 700, is otherwise out of its reach).
- bubblewrap is PID 1 of its PID namespace: when it dies (at the timeout, or with agentrt,
  through --die-with-parent) the kernel kills every process of the call. When the program
  exits, the launcher (launcher.py) kills what it left, setsid() daemons too, so PID 1 exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentrt.tools.sandbox import launcher
from agentrt.tools.sandbox.cgroups import CallCgroup
from agentrt.tools.sandbox.limits import SandboxLimits
from agentrt.tools.sandbox.workdir import PREFIX, owner_alive

WORKDIR = "/sandbox"
"""Where the call's working directory is inside the sandbox."""

# Processes of the call beyond the program's: bubblewrap's PID 1 and the launcher inside the
# sandbox (RLIMIT_NPROC counts them), and bubblewrap outside it (a cgroup counts all three).
INSIDE_TASKS = 2
OVERHEAD_TASKS = INSIDE_TASKS + 1
_LAUNCHER = Path(launcher.__file__).read_text(encoding="utf-8")
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime")
_STAGE = "/tmp"  # covered by a tmpfs of the staged binds, in the child's mount namespace only
_CLONE_NEWNS, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x20000, 4096, 16384, 1 << 18
_MS_NOSUID, _MS_NODEV = 2, 4


def find_bwrap() -> str | None:
    """The bwrap binary on PATH, or None."""
    return shutil.which("bwrap")


def python_dirs() -> list[str]:
    """Directories the interpreter needs, beyond /usr: its prefixes and its real location."""
    wanted = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    wanted.append(os.path.dirname(os.path.realpath(sys.executable)))
    dirs: list[str] = []
    for d in sorted({os.path.abspath(d) for d in wanted}, key=len):
        if not any(d == kept or d.startswith(kept + "/") for kept in ["/usr", *dirs]):
            dirs.append(d)
    return dirs


@dataclass(frozen=True, kw_only=True)
class Fds:
    """The descriptors a call hands bubblewrap (see launcher.py for the launcher's)."""

    status: int
    info: int
    lifeline: int
    inputs: int
    handback: int
    seccomp: int | None


def command(
    bwrap: str,
    argv: Sequence[str],
    call: str,
    sources: dict[str, str],
    limits: SandboxLimits,
    *,
    fds: Fds,
    max_processes: int,
) -> list[str]:
    """The bwrap command line; ``sources`` maps each sandbox path to bind read-only to where
    it is now, and ``call`` names the call."""
    cmd = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"]
    cmd += ["--new-session", "--cap-drop", "ALL", "--info-fd", str(fds.info)]
    cmd += ["--hostname", call]  # names the call, and its owner: see sweep_orphans
    if fds.seccomp is not None:
        cmd += ["--seccomp", str(fds.seccomp)]
    cmd += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    for name in _ETC:
        cmd += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    # Every tmpfs has a size, or writing to it would take memory no rlimit counts; /dev's
    # own is made read-only once /dev/shm is on it.
    size = str(limits.file_size_bytes)
    cmd += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm"]
    cmd += ["--remount-ro", "/dev", "--size", size, "--tmpfs", "/tmp"]
    # The working directory is a tmpfs too, so what the program leaves is bounded, and gone
    # with the last descriptor of it (the launcher hands agentrt one).
    cmd += ["--size", str(limits.workdir_bytes), "--tmpfs", WORKDIR]
    for inside, outside in sources.items():  # after /tmp's tmpfs, which would hide one under it
        cmd += ["--ro-bind", outside, inside]
    cmd += ["--remount-ro", "/", "--chdir", WORKDIR, "--clearenv"]
    for key, value in environment(limits).items():
        cmd += ["--setenv", key, value]
    cmd += ["--", sys.executable, "-I", "-S", "-c", _LAUNCHER]
    cmd += [str(fds.status), str(fds.lifeline), str(max_processes)]
    return [*cmd, str(fds.inputs), str(fds.handback), *argv]


def environment(limits: SandboxLimits) -> dict[str, str]:
    """The program's whole environment (bubblewrap gets the same: its /proc/1/environ shows)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": WORKDIR,
        "TMPDIR": WORKDIR,
        "LANG": "C.UTF-8",
        **limits.env,
    }


def _reachable(path: str, uid: int, gid: int) -> bool:
    """True if ``uid``/``gid`` may search every directory above ``path`` (ACLs aside)."""
    for above in Path(os.path.realpath(path)).parents:
        st = os.stat(above)
        bit = 0o100 if st.st_uid == uid else 0o010 if st.st_gid == gid else 0o001
        if not st.st_mode & bit:
            return False
    return True


def prepare_child(
    limits: SandboxLimits,
    cgroup: CallCgroup | None,
    status_fd: int,
) -> tuple[dict[str, str], Callable[[], None]]:
    """The bind sources to give bwrap, and the function the child runs before exec'ing it."""
    as_root = os.geteuid() == 0
    sources = {d: d for d in python_dirs()}
    staged: list[tuple[bytes, bytes]] = []
    if as_root and not all(_reachable(s, limits.uid, limits.gid) for s in sources.values()):
        # A source the unprivileged user cannot reach (a Python under /root, mode 700): the
        # child, still root, binds each at /tmp/<n> of a mount namespace of its own, and
        # bwrap binds it from there.
        staged = [
            (os.fsencode(src), f"{_STAGE}/{n}".encode()) for n, src in enumerate(sources.values())
        ]
        sources = {
            inside: os.fsdecode(point) for inside, (_, point) in zip(sources, staged, strict=True)
        }
    libc = ctypes.CDLL(None, use_errno=True)
    rlimits = [
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_AS, limits.memory_bytes),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes),
        (resource.RLIMIT_CORE, 0),
    ]

    def check(result: int, what: str) -> None:
        if result != 0:
            raise OSError(ctypes.get_errno(), f"{what} failed")

    def stage() -> None:
        check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "making / private")
        # Opened before /tmp is covered: a source may be under it.
        fds = [os.open(src, os.O_PATH | os.O_DIRECTORY) for src, _ in staged]
        flags = _MS_NOSUID | _MS_NODEV
        check(libc.mount(b"tmpfs", _STAGE.encode(), b"tmpfs", flags, b"mode=0755"), "tmpfs")
        for fd, (src, point) in zip(fds, staged, strict=True):
            os.mkdir(point)
            proc_path = b"/proc/self/fd/%d" % fd
            check(libc.mount(proc_path, point, None, _MS_BIND | _MS_REC, None), f"binding {src!r}")
            os.close(fd)

    def in_child() -> None:
        try:
            if cgroup is not None:
                cgroup.join()  # first: the unprivileged user may not write the cgroup's files
            if staged:
                stage()
            for kind, value in rlimits:
                resource.setrlimit(kind, (value, value))
            if as_root:
                os.setgroups([])
                os.setgid(limits.gid)
                os.setuid(limits.uid)
            # No parent-death signal here: bwrap arms its own just before it lets its PID 1 go
            # on with the setup. Killed before that, bwrap would leave PID 1 waiting for it
            # for good; alive, it sees its PID 1 through (whose launcher then finds agentrt
            # gone). sweep_orphans ends the PID 1 of a bwrap killed in that instant.
        except OSError as e:
            # subprocess reports only "Exception occurred in preexec_fn": say what failed.
            os.write(status_fd, f"setup-failed {e}\n".encode())
            raise

    return sources, in_child


def sweep_orphans() -> None:
    """Kill the bubblewrap processes of calls whose agentrt has exited.

    bubblewrap's PID 1 waits for a go-ahead from the bwrap that started it; one killed between
    arming its parent-death signal and giving it leaves PID 1 waiting for good (no code of the
    call has run). Its command line names the call (--hostname), so a later process finds it.
    """
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # exited meanwhile
        if os.path.basename(args[0]) != b"bwrap" or b"--hostname" not in args[:-1]:
            continue
        name = os.fsdecode(args[args.index(b"--hostname") + 1])
        if name.startswith(PREFIX) and not owner_alive(name):
            with contextlib.suppress(OSError):
                os.kill(int(entry), signal.SIGKILL)
