"""The sandbox's life around the code: inputs, exit statuses, what it reports, what it leaves.

Real bubblewrap throughout: where it cannot run these fail, loudly (the Makefile installs it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agentrt.errors import ConfigError
from agentrt.tools import ToolError
from agentrt.tools.sandbox import SandboxLimits, landlock_abi, run_sandboxed
from agentrt.tools.sandbox.cgroups import hierarchy
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
    # The usual container: Python under /usr, a temporary directory in /tmp. Nothing needs
    # a mount namespace of its own: bwrap, already nobody, binds the working directory itself.
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
    assert bwrap_args[bwrap_args.index("/sandbox") - 1].startswith("/tmp/agentrt-sandbox-")


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
    with pytest.raises(ConfigError, match=r"uid=0\) must name an unprivileged id"):
        SandboxLimits(uid=0)


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
    left = [p.name for p in tmp_path.iterdir()]
    assert left
    assert all(name.startswith(f"agentrt-sandbox-{agent.pid}-") for name in left)
    cgroups = [p / n for p in (hierarchy().parents if hierarchy() else ()) for n in left]
    # A new process's first call removes what the dead one left: its directory, its cgroup.
    sweep = "import sys; from agentrt.tools.sandbox import run_sandboxed; run_sandboxed(['true'])"
    subprocess.run([sys.executable, "-c", sweep], env=env, check=True, timeout=60)
    assert list(tmp_path.iterdir()) == []
    assert [c for c in cgroups if c.exists()] == []
    assert_none_left(marker)
