"""The sandboxed runner and run_python: real child processes, real limits, real kills."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

from agentrt import AgentRuntime, Policy, Principal, RunStatus
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools import ToolError
from agentrt.tools.sandbox import (
    SandboxLimits,
    landlock_abi,
    run_python,
    run_python_tool,
    run_sandboxed,
)
from agentrt.tools.sandbox.limits import Isolation

pytestmark = pytest.mark.subprocess


def py(code: str, limits: SandboxLimits | None = None) -> tuple[int, str, str, bool]:
    done = run_sandboxed([sys.executable, "-I", "-c", code], limits=limits)
    return done.returncode, done.stdout, done.stderr, done.timed_out


# Landlock refuses the write itself (EACCES); in bubblewrap the outside path does not exist
# (ENOENT) and everything but the working directory is read-only (EROFS).
REFUSALS = {"landlock": ["EACCES"] * 3, "bubblewrap": ["ENOENT", "EROFS", "EROFS"]}


@pytest.mark.parametrize("isolation", ["bubblewrap", "landlock"])
def test_it_cannot_write_outside_its_directory(tmp_path: Path, isolation: Isolation) -> None:
    if isolation == "landlock" and landlock_abi() == 0:
        pytest.skip("this kernel has no Landlock to confine writes")
    outside = tmp_path / "escaped.txt"
    code = f"""
import errno, os
open("inside.txt", "w").write("fine")
os.mkdir("sub")
for path in [{str(outside)!r}, "../escaped.txt", os.path.expanduser("~/../escaped.txt")]:
    try:
        open(path, "w").write("x")
        print("WROTE", path)
    except OSError as e:
        print("refused", errno.errorcode[e.errno])
"""
    done = run_sandboxed(
        [sys.executable, "-I", "-c", code], limits=SandboxLimits(isolation=isolation)
    )
    assert done.stdout.split() == [w for e in REFUSALS[isolation] for w in ("refused", e)]
    assert (done.returncode, done.confined, done.files) == (0, True, {"inside.txt": 4})
    assert done.isolation == isolation
    assert not outside.exists()
    assert list(tmp_path.iterdir()) == []


def test_the_tool_api_refuses_paths_outside() -> None:
    for bad in ["/etc/passwd", "../up.txt", "a/../../up.txt", ""]:
        with pytest.raises(ToolError, match="outside the sandbox's working directory"):
            run_sandboxed(["true"], files={bad: "x"})


def test_it_is_stopped_at_its_memory_limit() -> None:
    code, out, err, _ = py(
        "b = bytearray(400 * 1024 * 1024); print('allocated')",
        SandboxLimits(memory_bytes=200 * 1024 * 1024),
    )
    assert code == 1
    assert out == ""
    assert err.rstrip().endswith("MemoryError")


def host_pids_with(marker: str) -> list[int]:
    """Live processes on this host (zombies aside) whose command line holds ``marker``.

    Sandboxed processes have their own PID namespace, so a pid they print means nothing
    here; a marker in their command line finds them from the host.
    """
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            pass  # exited meanwhile
    return found


def assert_none_left(marker: str) -> None:
    """No process holds ``marker``; SIGKILL lands when a process next runs, so poll a while."""
    until = time.monotonic() + 10
    while (left := host_pids_with(marker)) and time.monotonic() < until:
        os.sched_yield()
    assert left == [], f"processes holding {marker!r} still run: {left}"


def test_it_is_killed_at_its_timeout_with_its_children() -> None:
    marker = f"agentrt-test-{uuid.uuid4()}"
    done = run_sandboxed(
        [
            sys.executable,
            "-I",
            "-c",
            "import subprocess, sys\n"
            f"child = subprocess.Popen([sys.executable, '-c', 'while True: pass', {marker!r}])\n"
            "print(child.pid, flush=True)\n"
            "while True: pass\n",
        ],
        limits=SandboxLimits(timeout=0.5),
    )
    assert (done.timed_out, done.returncode) == (True, -signal.SIGKILL)
    assert int(done.stdout) > 0  # the child was started
    # Not only its parent: the child, and the parent too, are gone from the host.
    assert_none_left(marker)


def test_it_is_stopped_at_its_cpu_limit() -> None:
    code, _, _, timed_out = py("while True: pass", SandboxLimits(cpu_seconds=1, timeout=60))
    assert not timed_out
    assert code in (-signal.SIGXCPU, -signal.SIGKILL)


def test_it_gets_none_of_the_parents_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    _, out, _, _ = py("import os; print(sorted(os.environ))", SandboxLimits(env={"MODE": "x"}))
    assert out.strip() == "['HOME', 'LANG', 'MODE', 'PATH', 'TMPDIR']"


def test_file_size_limit_caps_what_it_writes() -> None:
    code, _, err, _ = py(
        "open('big', 'wb').write(b'x' * 10_000_000)", SandboxLimits(file_size_bytes=1_000_000)
    )
    assert code != 0
    assert "File too large" in err or code == -signal.SIGXFSZ


def test_only_the_written_files_it_keeps_are_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # The program can leave any number of files on the host's disk; what is read back is
    # agentrt's own memory, so only the files it keeps are read: the first max_written.
    from agentrt.tools.sandbox import tree

    opened: list[str] = []
    real_open = os.open

    class CountingOs:  # the module's os, whose open notes what it opens
        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        @staticmethod
        def open(path: str, flags: int, *args: int, **kwargs: int) -> int:
            opened.append(os.path.basename(path))
            return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(tree, "os", CountingOs())
    program = (
        "for i in range(30):\n"
        "    open(f'f{i:02}.bin', 'wb').write(b'x' * 100_000)\n"
        "open('same.txt', 'w').write('kept as given')\n"
        "open('longer.txt', 'w').write('changed, longer')\n"
    )
    inputs = {"main.py": program, "same.txt": "kept as given", "longer.txt": "given"}
    done = run_sandboxed(
        [sys.executable, "-I", "main.py"], files=inputs, keep_written=True, max_written=3
    )
    assert done.returncode == 0, done.stderr
    assert len(done.files) == 33  # all listed
    assert list(done.written) == ["f00.bin", "f01.bin", "f02.bin"]
    assert done.written["f00.bin"] == b"x" * 100_000
    assert opened == ["f00.bin", "f01.bin", "f02.bin"]

    # An input of the same size is read to see whether it changed; one of another size is
    # known changed without a comparison, and kept.
    opened.clear()
    done = run_sandboxed(
        [sys.executable, "-I", "main.py"], files=inputs, keep_written=True, max_written=40
    )
    assert set(done.written) == {f"f{i:02}.bin" for i in range(30)} | {"longer.txt"}
    assert done.written["longer.txt"] == b"changed, longer"
    assert "same.txt" in opened
    assert "main.py" in opened


def test_run_python_in_a_run(tmp_path: Path) -> None:
    model = ScriptedChatModel(
        [
            ai(
                "",
                tool_call(
                    "run_python",
                    {"code": "print(open('data.txt').read().upper())", "files": {"data.txt": "hi"}},
                ),
            ),
            ai("", tool_call("slow_python", {"code": "while True: pass"})),
            "done",
        ]
    )
    slow = run_python_tool(SandboxLimits(timeout=0.3), name="slow_python")
    with AgentRuntime(
        model, tools=[run_python, slow], policy=Policy.allow_all(), db=tmp_path / "a.db"
    ) as rt:
        assert rt.tools.get("run_python") is run_python
        run = rt.start("compute", principal=Principal("p"))
        obs = [e["data"] for e in rt.events(run.thread_id) if e["type"] == "observation"]
    assert run.status is RunStatus.SUCCEEDED
    assert obs[0]["kind"] == "ok"
    assert '"stdout": "HI\\n"' in obs[0]["content"]
    assert (obs[1]["kind"], obs[1]["content"]) == (
        "timeout",
        "timeout error: TimeoutError: the program was killed at its timeout of 0.3s",
    )


def test_run_python_is_only_present_when_registered(tmp_path: Path) -> None:
    with AgentRuntime(ScriptedChatModel(["hi"]), db=tmp_path / "a.db") as rt:
        assert rt.tools.names() == []


def test_a_nul_in_its_output_keeps_the_result(tmp_path: Path) -> None:
    # A NUL (any binary output) is text no store keeps: replaced, the rest of the result
    # (exit code, output, files) reaches the model.
    code = "import sys; print('answer 42'); sys.stdout.write('\\x00'); sys.stderr.write('\\x00!')"
    model = ScriptedChatModel([ai("", tool_call("run_python", {"code": code})), "done"])
    with AgentRuntime(
        model, tools=[run_python], policy=Policy.allow_all(), db=tmp_path / "a.db"
    ) as rt:
        run = rt.start("compute", principal=Principal("p"))
        (obs,) = [e["data"] for e in rt.events(run.thread_id) if e["type"] == "observation"]
    assert obs["kind"] == "ok", obs
    result = json.loads(obs["content"])
    assert (result["exit_code"], result["stdout"], result["stderr"]) == (
        0,
        "answer 42\n\ufffd",
        "\ufffd!",
    )
    assert run.status is RunStatus.SUCCEEDED
