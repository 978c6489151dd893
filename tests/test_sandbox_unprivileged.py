"""The sandbox run by a user who is not root: no staging, no chown, and no writable cgroup.

The tests run as root in CI and containers; then these run agentrt as nobody, in a process
of its own. Without a cgroup the call's process count is bounded by RLIMIT_NPROC (counted
in the sandbox's own user namespace) and its memory per process; and what the code leaves,
a mode-000 directory included, must still be removed by a user without root's power.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_sandbox import assert_none_left

pytestmark = pytest.mark.subprocess

NOBODY = 65534
ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, os, sys, tempfile
from agentrt.tools.sandbox import SandboxLimits, landlock_abi, run_sandboxed

def py(code, **limits):
    return run_sandboxed([sys.executable, "-I", "-c", code], limits=SandboxLimits(**limits))

BOMB = '''
import os
r, w = os.pipe()
children = 0
for _ in range(300):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    children += 1
print(children)
'''
DAEMON = '''
import subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", sys.argv[1]],
                 start_new_session=True)
'''
DEEP = '''
import os
for _ in range(1500):
    os.mkdir("a")
    os.chdir("a")
'''
MEMFD = '''
import ctypes, errno, os
try:
    os.memfd_create("m")
    print("memfd")
except OSError as e:
    print(errno.errorcode[e.errno])
libc = ctypes.CDLL(None, use_errno=True)
print("shm" if libc.shmget(0, 1 << 20, 0o1600) >= 0 else errno.errorcode[ctypes.get_errno()])
'''
TRAP = '''
import os
os.makedirs("trap/inner")
open("trap/inner/file", "w").write("x")
os.chmod("trap/inner", 0)
os.chmod("trap", 0)
'''
out = {}
who = py("import os; print(os.getuid())")
out["uids"] = [os.getuid(), int(who.stdout)]
out["isolation"], out["bound"] = who.isolation, who.bound
out["children"] = int(py(BOMB, max_processes=16).stdout)
big = py("bytearray(400 << 20)", memory_bytes=200 << 20)
out["memory"] = [big.returncode, big.stderr.strip().splitlines()[-1]]
py(TRAP)
out["left"] = sorted(os.listdir(tempfile.gettempdir()))
if landlock_abi():  # a directory on the host's disk, 1,500 deep, a mode-000 one at the bottom
    py(DEEP + TRAP, isolation="landlock")
out["left_landlock"] = sorted(os.listdir(tempfile.gettempdir()))
out["memfd"] = py(MEMFD).stdout.split()
run_sandboxed([sys.executable, "-I", "-c", DAEMON, sys.argv[1]])
print(json.dumps(out))
"""


def _covers() -> dict[str, list[str]]:
    """Directories nobody cannot search, each with the Python directories below it."""
    covers: dict[str, list[str]] = {}
    wanted = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    for d in sorted({os.path.realpath(d) for d in wanted}):
        if any(d.startswith(kept + "/") for dirs in covers.values() for kept in dirs):
            continue  # bound with the directory above it
        for above in reversed(Path(d).parents[:-1]):  # from the top, "/" aside
            if not os.stat(above).st_mode & 0o001:
                covers.setdefault(str(above), []).append(d)
                break
    return covers


def _as_nobody() -> Callable[[], None]:
    """What the child runs before exec to become nobody, with this Python in its reach.

    A Python under /root (mode 700) is out of nobody's reach: in a mount namespace of the
    child's own, each such directory is covered by an empty tmpfs with the Python's
    directories bound back into it.
    """
    covers, libc = _covers(), ctypes.CDLL(None, use_errno=True)

    def check(result: int) -> None:
        if result != 0:
            raise OSError(ctypes.get_errno(), "mount")

    def in_child() -> None:
        check(libc.unshare(0x20000))  # CLONE_NEWNS
        check(libc.mount(None, b"/", None, 16384 | (1 << 18), None))  # MS_REC | MS_PRIVATE
        for top, dirs in covers.items():
            fds = [os.open(d, os.O_PATH | os.O_DIRECTORY) for d in dirs]
            check(libc.mount(b"tmpfs", top.encode(), b"tmpfs", 0, b"mode=0755"))
            for d, fd in zip(dirs, fds, strict=True):
                os.makedirs(d)
                check(libc.mount(b"/proc/self/fd/%d" % fd, d.encode(), None, 4096, None))
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    return in_child


@pytest.fixture(scope="module")
def unprivileged() -> Iterator[dict[str, Any]]:
    """What SCRIPT found, run by nobody (root's tests) or by this user (anyone else's)."""
    tmp = Path(tempfile.mkdtemp(prefix="agentrt-test-", dir="/tmp"))  # in nobody's reach
    marker = f"agentrt-test-{uuid.uuid4()}"
    try:
        as_root = os.geteuid() == 0
        if as_root:
            os.chown(tmp, NOBODY, NOBODY)
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, marker],
            env={
                "PATH": os.environ["PATH"],
                "TMPDIR": str(tmp),
                "HOME": str(tmp),
                "PYTHONPATH": str(ROOT),  # this checkout's agentrt, whatever is installed
            },
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=_as_nobody() if as_root else None,
            check=False,  # the assertion below shows its stderr
        )
        assert done.returncode == 0, done.stderr[-3000:]
        yield {**json.loads(done.stdout.splitlines()[-1]), "as_root": as_root, "marker": marker}
    finally:
        # rm -rf walks any depth (fts), where shutil.rmtree of Python 3.11 recurses.
        subprocess.run(["rm", "-rf", str(tmp)], check=False, timeout=120)


def test_it_runs_in_bubblewrap_as_the_user_who_runs_agentrt(unprivileged: dict[str, Any]) -> None:
    agentrt_uid, code_uid = unprivileged["uids"]
    assert agentrt_uid != 0
    assert code_uid == agentrt_uid
    assert unprivileged["isolation"] == "bubblewrap"
    if unprivileged["as_root"]:  # nobody may write none of root's cgroups
        assert unprivileged["bound"] == "rlimit"


def test_without_a_cgroup_the_process_count_is_still_bounded(
    unprivileged: dict[str, Any],
) -> None:
    assert unprivileged["children"] == 15  # max_processes=16, the program included


def test_without_a_cgroup_memory_is_bounded_per_process(unprivileged: dict[str, Any]) -> None:
    assert unprivileged["memory"] == [1, "MemoryError"]


def test_a_mode_000_directory_it_leaves_is_removed(unprivileged: dict[str, Any]) -> None:
    assert unprivileged["left"] == []
    assert unprivileged["left_landlock"] == []  # at any depth, on the host's disk too


def test_without_a_cgroup_memfd_and_shared_memory_are_refused(
    unprivileged: dict[str, Any],
) -> None:
    assert unprivileged["memfd"] == ["EPERM", "EPERM"]


def test_a_setsid_daemon_dies_with_the_call(unprivileged: dict[str, Any]) -> None:
    assert_none_left(unprivileged["marker"])
