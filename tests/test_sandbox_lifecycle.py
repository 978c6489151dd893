"""The sandbox's life around the code: inputs, exit statuses, what it reports, what it leaves.

Real bubblewrap throughout: where it cannot run these fail, loudly (the Makefile installs it).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agentrt import Principal, ToolContext
from agentrt.errors import ConfigError
from agentrt.tools import ToolError
from agentrt.tools.sandbox import SandboxLimits, landlock_abi, run_python, run_sandboxed
from agentrt.tools.sandbox.cgroups import hierarchy
from agentrt.tools.sandbox.limits import Isolation
from tests.test_sandbox import assert_none_left, host_pids_with

pytestmark = pytest.mark.subprocess


def py(code: str, limits: SandboxLimits | None = None) -> tuple[int, str, str]:
    done = run_sandboxed([sys.executable, "-I", "-c", code], limits=limits)
    return done.returncode, done.stdout, done.stderr


def test_a_nul_byte_in_a_file_name_is_a_tool_error_naming_it() -> None:
    with pytest.raises(ToolError, match=r"file name 'data\\x00\.txt' contains a NUL byte"):
        run_sandboxed(["true"], files={"data\0.txt": "x"})


def test_files_that_cannot_both_exist_are_a_tool_error_naming_one() -> None:
    with pytest.raises(ToolError, match=r"cannot create 'a/b' in the sandbox's working directory"):
        run_sandboxed(["true"], files={"a": "x", "a/b": "y"})


def test_exit_statuses_are_the_programs_own() -> None:
    # bubblewrap alone would report a signal N as 128+N: the launcher keeps them apart.
    assert py("raise SystemExit(3)")[0] == 3
    assert py("raise SystemExit(143)")[0] == 143
    assert py("import os, signal; os.kill(os.getpid(), signal.SIGTERM)")[0] == -signal.SIGTERM


def test_a_program_it_cannot_find_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match=r"cannot run 'no-such-program' in the sandbox: No such"):
        run_sandboxed(["no-such-program"])


def test_the_result_says_how_the_code_was_kept_in() -> None:
    done = run_sandboxed([sys.executable, "-I", "-c", "import os; print(os.getuid())"])
    assert (done.isolation, done.confined) == ("bubblewrap", True)
    assert done.bound == ("cgroup" if hierarchy() is not None else "rlimit")
    assert int(done.stdout) == (65534 if os.geteuid() == 0 else os.geteuid())
    if landlock_abi():
        weak = run_sandboxed(["true"], limits=SandboxLimits(isolation="landlock"))
        assert (weak.isolation, weak.confined, weak.bound) == ("landlock", True, "per-process")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can run code as another user")
def test_as_root_it_runs_as_the_configured_user() -> None:
    code = "import os; open('made', 'w'); print(os.getuid(), os.getgid(), os.getgroups())"
    limits = SandboxLimits(uid=4321, gid=4322)
    assert py(code, limits)[1].split() == ["4321", "4322", "[]"]


SYSTEM_PYTHON = "/usr/bin/python3"


def _system_python_matches() -> bool:
    try:
        found = subprocess.run(
            [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return False
    return found == str(sys.version_info[:2])


@pytest.mark.skipif(
    os.geteuid() != 0 or not _system_python_matches(),
    reason=f"needs root, and {SYSTEM_PYTHON} of this Python's version to load its packages",
)
def test_as_root_a_python_nobody_can_reach_is_bound_where_it_is() -> None:
    # The usual container: Python under /usr. Nothing needs a mount namespace of its own:
    # bwrap, already nobody, binds what it needs itself, and the working directory is a tmpfs.
    inside = "import json, os; print(json.dumps([os.getuid(), open('/proc/1/cmdline').read()]))"
    code = (
        "import sys; from agentrt.tools.sandbox import run_sandboxed; "
        f"print(run_sandboxed([sys.executable, '-I', '-c', {inside!r}]).stdout, end='')"
    )
    packages = sysconfig.get_paths()["purelib"]
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": f"{Path(__file__).resolve().parents[1]}{os.pathsep}{packages}",
        "TMPDIR": "/tmp",
    }
    out = subprocess.run(
        [SYSTEM_PYTHON, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    uid, cmdline = json.loads(out)
    assert uid == 65534
    bwrap_args = cmdline.split("\0")  # bubblewrap is PID 1 in there
    assert bwrap_args[bwrap_args.index("/sandbox") - 1] == "--tmpfs"
    assert [a for a in bwrap_args if a.startswith("/tmp/")] == []  # nothing staged


def test_without_bubblewrap_it_refuses_and_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    with pytest.raises(ToolError, match=r"apt-get install bubblewrap.*isolation='landlock'"):
        run_sandboxed([sys.executable, "-I", "-c", "pass"])
    if landlock_abi():  # the caller may opt into the weaker mode
        done = run_sandboxed(
            [sys.executable, "-I", "-c", "print('ran')"], limits=SandboxLimits(isolation="landlock")
        )
        assert (done.stdout, done.isolation) == ("ran\n", "landlock")


def test_limits_are_checked_when_made() -> None:
    with pytest.raises(ConfigError, match=r"isolation='docker'"):
        SandboxLimits(isolation="docker")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"max_processes=0"):
        SandboxLimits(max_processes=0)
    with pytest.raises(ConfigError, match=r"workdir_bytes=0\) must be positive"):
        SandboxLimits(workdir_bytes=0)
    with pytest.raises(ConfigError, match=r"uid=0\) must name an unprivileged id"):
        SandboxLimits(uid=0)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (
            {"timeout": math.nan},
            "SandboxLimits(timeout=nan) must be a finite number of seconds; NaN or infinity "
            "would mean no wall-clock limit at all",
        ),
        (
            {"timeout": math.inf},
            "SandboxLimits(timeout=inf) must be a finite number of seconds; NaN or infinity "
            "would mean no wall-clock limit at all",
        ),
        ({"timeout": -1.5}, "SandboxLimits(timeout=-1.5) must be positive"),
        ({"timeout": "10"}, "SandboxLimits(timeout='10') must be a number of seconds, such as 10"),
        ({"timeout": True}, "SandboxLimits(timeout=True) must be a number of seconds, such as 10"),
        (
            {"cpu_seconds": math.nan},
            "SandboxLimits(cpu_seconds=nan) must be a whole number (an int)",
        ),
        (
            {"memory_bytes": 1e9},
            "SandboxLimits(memory_bytes=1000000000.0) must be a whole number (an int)",
        ),
        ({"file_size_bytes": -1}, "SandboxLimits(file_size_bytes=-1) must be positive"),
        ({"max_output_chars": -1}, "SandboxLimits(max_output_chars=-1) must not be negative"),
        ({"gid": -3}, "SandboxLimits(gid=-3) must name an unprivileged id (not root)"),
    ],
    ids=[
        "timeout-nan",
        "timeout-inf",
        "timeout-negative",
        "timeout-text",
        "timeout-bool",
        "cpu-nan",
        "memory-float",
        "file-size-negative",
        "output-negative",
        "gid-negative",
    ],
)
def test_a_limit_that_is_no_finite_number_or_negative_is_refused_naming_it(
    limits: dict[str, object], message: str
) -> None:
    # NaN passed "<= 0" and meant no limit: a sleeping program ran as long as it liked.
    with pytest.raises(ConfigError) as info:
        SandboxLimits(**limits)  # type: ignore[arg-type]
    assert str(info.value) == message
    assert SandboxLimits(timeout=0.5, max_output_chars=0).timeout == 0.5


@pytest.mark.parametrize(
    ("field", "value", "most", "why"),
    [
        ("memory_bytes", 2**64, sys.maxsize, "the most setrlimit takes"),
        ("memory_bytes", sys.maxsize + 1, sys.maxsize, "the most setrlimit takes"),
        ("file_size_bytes", 2**64, sys.maxsize, "the most setrlimit takes"),
        ("cpu_seconds", 2**64, sys.maxsize, "the most setrlimit takes"),
        ("workdir_bytes", 2**64, sys.maxsize, "the most setrlimit takes"),
        (
            "max_processes",
            4_194_305,
            4_194_304,
            "PID_MAX_LIMIT, the most processes Linux can have",
        ),
        (
            "uid",
            2**32 - 1,
            2**32 - 2,
            "the largest user or group id; setuid refuses 2**32 - 1",
        ),
        ("gid", 2**40, 2**32 - 2, "the largest user or group id; setuid refuses 2**32 - 1"),
    ],
)
def test_a_limit_past_what_the_kernel_takes_is_refused_naming_it(
    field: str, value: int, most: int, why: str
) -> None:
    # Taken, it failed every call in the child, with subprocess's bare "Exception occurred
    # in preexec_fn." (landlock mode), naming neither the field nor the value.
    with pytest.raises(ConfigError) as info:
        SandboxLimits(**{field: value})  # type: ignore[arg-type]
    assert str(info.value) == (
        f"SandboxLimits({field}={value!r}) is past {most} ({why}); give at most that"
    )


@pytest.mark.skipif(not landlock_abi(), reason="the kernel has no Landlock")
def test_the_largest_limits_it_takes_run() -> None:
    most = sys.maxsize
    limits = SandboxLimits(
        isolation="landlock", cpu_seconds=most, memory_bytes=most, file_size_bytes=most
    )
    done = run_sandboxed(["true"], limits=limits)
    assert (done.returncode, done.isolation) == (0, "landlock")


def test_calls_at_once_each_get_their_own_sandbox() -> None:
    code = "import os; open('mine', 'w').write(os.environ['N']); print(sorted(os.listdir()))"
    with ThreadPoolExecutor(4) as pool:
        done = list(
            pool.map(
                lambda n: run_sandboxed(
                    [sys.executable, "-I", "-c", code], limits=SandboxLimits(env={"N": str(n)})
                ),
                range(4),
            )
        )
    assert [d.stdout for d in done] == ["['mine']\n"] * 4
    assert [d.files for d in done] == [{"mine": 1}] * 4


# The agent makes the marker: its own command line must not hold it. bubblewrap's does from
# the moment it starts (the program's arguments are among its own); the program makes a
# child whose command line holds marker + "-running" only once the sandbox is set up.
AGENT = """
import sys
from agentrt.tools.sandbox import SandboxLimits, run_sandboxed
program = (
    "import subprocess, sys; subprocess.run("
    "[sys.executable, '-c', 'import time; time.sleep(60)', sys.argv[1] + '-running'])"
)
run_sandboxed([sys.executable, "-I", "-c", program, sys.argv[1] + "-sandboxed"],
              limits=SandboxLimits(timeout=60))
"""


@pytest.mark.parametrize("moment", ["while bubblewrap sets up", "while the program runs"])
def test_when_agentrt_is_killed_its_sandbox_dies_and_the_next_process_sweeps(
    tmp_path: Path, moment: str
) -> None:
    name = f"agentrt-test-{uuid.uuid4()}"
    marker = f"{name}-sandboxed"
    wait_for = marker if moment == "while bubblewrap sets up" else f"{marker}-running"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    agent = subprocess.Popen([sys.executable, "-c", AGENT, name], env=env)
    until = time.monotonic() + 30
    while not host_pids_with(wait_for) and time.monotonic() < until and agent.poll() is None:
        os.sched_yield()
    assert host_pids_with(wait_for), f"nothing holding {wait_for!r} ever started"
    agent.kill()
    agent.wait()
    # The program goes with its agent, even from a sandbox still being set up; all of the
    # sandbox goes with it, unless bubblewrap was killed in the instant it lets its PID 1 go
    # on: that one is left waiting (no code of the call runs), until the sweep below.
    assert_none_left(f"{marker}-running")
    if moment == "while the program runs":
        assert_none_left(marker)
    # Its working directory was a tmpfs of its sandbox: nothing of it is on the host's disk.
    assert list(tmp_path.iterdir()) == []
    owned = f"agentrt-sandbox-{agent.pid}-"
    parents = hierarchy().parents if hierarchy() else ()
    cgroups = [c for p in parents for c in p.iterdir() if c.name.startswith(owned)]
    assert cgroups or not parents
    # A new process's first call removes what the dead one left: its cgroup.
    sweep = "import sys; from agentrt.tools.sandbox import run_sandboxed; run_sandboxed(['true'])"
    subprocess.run([sys.executable, "-c", sweep], env=env, check=True, timeout=60)
    assert list(tmp_path.iterdir()) == []
    assert [c for c in cgroups if c.exists()] == []
    assert_none_left(marker)


@pytest.fixture
def own_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Sandbox directories (and a sweep's) under this test's own directory, removed after
    with ``rm -rf``, which walks any depth: a tree a test leaves must not break the rest."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    try:
        yield tmp
    finally:
        subprocess.run(["rm", "-rf", str(tmp)], check=False, timeout=120)


DEEP = """
import os
open("top.txt", "w").write("top")
for _ in range(1500):
    os.mkdir("a")
    os.chdir("a")
open("f", "w").write("x")
print("made")
"""


@pytest.mark.parametrize("isolation", ["bubblewrap", "landlock"])
def test_a_deep_directory_tree_is_a_result_and_nothing_of_it_is_left(
    own_tmp: Path, isolation: Isolation
) -> None:
    # 1,500 directories deep: past Python's recursion limit, which shutil.rmtree and os.walk
    # of Python 3.11 hit. Listed down to MAX_DEPTH, the directory below counted; removed.
    if isolation == "landlock" and landlock_abi() == 0:
        pytest.skip("this kernel has no Landlock to confine writes")
    done = run_sandboxed(
        [sys.executable, "-I", "-c", DEEP],
        limits=SandboxLimits(isolation=isolation),
        keep_written=True,
    )
    assert (done.returncode, done.stdout) == (0, "made\n"), done.stderr
    assert (done.files, done.files_not_listed) == ({"top.txt": 3}, 1)
    assert done.written == {"top.txt": b"top"}
    assert list(own_tmp.iterdir()) == []


def test_a_stale_directory_is_swept_whatever_it_holds_and_one_that_fails_is_passed_over(
    own_tmp: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A killed process's directories: one 1,500 deep with a mode-000 directory in it, one
    # whose removal fails for a reason nobody foresaw. The first call of the next process
    # removes the first, logs the second, and runs.
    from agentrt.tools.sandbox import runner, tree

    dead = subprocess.Popen(["true"])
    dead.wait()
    deep, bad = (own_tmp / f"agentrt-sandbox-{dead.pid}-{n}" for n in ("deep", "bad"))
    for stale in (deep, bad):
        stale.mkdir()
    fd = os.open(deep, os.O_DIRECTORY)
    for _ in range(1500):  # by descriptors: the path is soon past PATH_MAX
        os.mkdir("a", dir_fd=fd)
        inner = os.open("a", os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.mkdir("locked", 0, dir_fd=fd)
    os.close(fd)
    removing = tree.remove

    def remove(path: Path) -> None:
        if path == bad:
            raise RecursionError("maximum recursion depth exceeded")
        removing(path)

    monkeypatch.setattr(tree, "remove", remove)
    monkeypatch.setattr(runner, "_swept_by", 0)  # as in a new process
    done = run_sandboxed([sys.executable, "-I", "-c", "print('hello')"])
    assert done.stdout == "hello\n"
    assert sorted(own_tmp.iterdir()) == [bad]
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "agentrt.sandbox",
            "WARNING",
            f"cannot remove the stale sandbox directory {str(bad)!r}: "
            "RecursionError('maximum recursion depth exceeded')",
        )
    ]


def test_a_path_longer_than_path_max_is_listed_and_read_back(own_tmp: Path) -> None:
    # 16 directories of 250 characters and a file of 250: a path past PATH_MAX (4096),
    # which no call taking a whole path can reach; each step is opened below the last.
    program = """
import os
for _ in range(16):
    os.mkdir("d" * 250)
    os.chdir("d" * 250)
open("f" * 250, "w").write("deep")
"""
    done = run_sandboxed([sys.executable, "-I", "-c", program], keep_written=True)
    path = "/".join(["d" * 250] * 16 + ["f" * 250])
    assert len(path) > 4096
    assert (done.returncode, done.files, done.written) == (0, {path: 4}, {path: b"deep"})


def test_the_listing_of_files_is_bounded_and_says_how_many_it_left_out(own_tmp: Path) -> None:
    # 3,000 files: the first 1,000 in path order are listed, if their paths fit in
    # max_output_chars; the rest are counted, not named.
    program = """
import os
for i in range(3000):
    os.close(os.open(f"f{i:04}", os.O_CREAT | os.O_WRONLY))
os.mkdir("long")
for i in range(3):
    os.close(os.open("long/" + "x" * 200 + str(i), os.O_CREAT | os.O_WRONLY))
"""
    done = run_sandboxed([sys.executable, "-I", "-c", program], keep_written=True)
    assert list(done.files) == [f"f{i:04}" for i in range(1000)]
    assert done.files_not_listed == 2003
    assert list(done.written) == [f"f{i:04}" for i in range(20)]  # the first max_written
    tight = SandboxLimits(max_output_chars=450)
    done = run_sandboxed([sys.executable, "-I", "-c", program], limits=tight)
    # By path order ("f..." before "long/..."), and by characters: 90 names of 5 is 450.
    assert list(done.files) == [f"f{i:04}" for i in range(90)]
    assert done.files_not_listed == 3003 - 90
    # run_python says it to the model (its main.py, after "long/", is among those left out).
    ctx = ToolContext(thread_id="t", step_id="0.0", idempotency_key="k", principal=Principal("p"))
    said = run_python.fn(code=program, ctx=ctx)
    assert (len(said.files), said.files_not_listed) == (1000, 2004)


def test_the_working_directory_is_a_tmpfs_of_workdir_bytes(own_tmp: Path) -> None:
    # Not the host's disk: a tmpfs of its own, writes past its size refused (ENOSPC), and
    # nothing of it on the host once the call is done.
    program = """
import errno, os
st = os.statvfs(".")
print(st.f_blocks * st.f_frsize >> 20)
wrote = 0
try:
    for i in range(200):
        with open(f"o{i}", "wb") as f:
            f.write(b"x" * (1 << 20))
        wrote += 1
except OSError as e:
    print(errno.errorcode[e.errno])
print(wrote)
"""
    limits = SandboxLimits(workdir_bytes=4 << 20, file_size_bytes=1 << 20)
    done = run_sandboxed([sys.executable, "-I", "-c", program], limits=limits)
    assert done.stdout.split() == ["4", "ENOSPC", "4"]
    assert sum(done.files.values()) <= 4 << 20
    assert list(own_tmp.iterdir()) == []
    # Its input files count too: what does not fit is a ToolError naming it.
    with pytest.raises(
        ToolError, match=r"cannot create 'b.txt' in the sandbox's working directory: No space"
    ):
        run_sandboxed(
            ["true"],
            files={"a.txt": "x" * (3 << 20), "b.txt": "y" * (2 << 20)},
            limits=SandboxLimits(workdir_bytes=4 << 20),
        )


def test_without_a_cgroup_memfd_and_shared_memory_are_refused(
    own_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Memory no rlimit counts: a memfd's pages, a SysV segment's, held by a descriptor or an
    # id. Under a cgroup they count in memory_bytes; without one they are refused.
    from agentrt.tools.sandbox.cgroups import CallCgroup

    program = """
import ctypes, errno, os
try:
    os.memfd_create("m")
    print("memfd")
except OSError as e:
    print(errno.errorcode[e.errno])
libc = ctypes.CDLL(None, use_errno=True)
shm = libc.shmget(0, 1 << 20, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
print("shm" if shm >= 0 else errno.errorcode[ctypes.get_errno()])
"""
    if hierarchy() is not None:
        with_cgroup = run_sandboxed([sys.executable, "-I", "-c", program])
        assert (with_cgroup.bound, with_cgroup.stdout.split()) == ("cgroup", ["memfd", "shm"])
    monkeypatch.setattr(CallCgroup, "create", classmethod(lambda cls, memory, tasks: None))
    done = run_sandboxed([sys.executable, "-I", "-c", program])
    assert (done.bound, done.stdout.split()) == ("rlimit", ["EPERM", "EPERM"])
