"""Escape probes: real code in real sandboxes tries each way out an adversarial review found.

Every probe is a set of attempts, each judged escaped or not, by what the code inside says it
managed and, where the effect is visible from here, by what changed on the host. The last
test prints ``sandbox probes: attempts=N escapes=0``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentrt.tools.sandbox import SandboxLimits, SandboxResult, run_sandboxed
from tests.test_sandbox import host_pids_with

pytestmark = pytest.mark.subprocess

SECRET_NAME = "AGENTRT_PROBE_SECRET"

# Defines attempt(name, fn): the outcome of each attempt, printed as JSON by report().
PRELUDE = """
import json, os, signal, socket, sys
results = {}
def attempt(name, fn):
    try:
        fn()
        results[name] = "ok"
    except Exception as e:
        results[name] = f"{type(e).__name__}: {e}"
def report():
    print(json.dumps(results))
"""


def inside(body: str, **limits: Any) -> tuple[dict[str, str], SandboxResult]:
    """Run PRELUDE + ``body`` + report() in a sandbox: what each attempt did, and the result."""
    done = run_sandboxed(
        [sys.executable, "-I", "-c", PRELUDE + body + "\nreport()\n"],
        limits=SandboxLimits(**limits),
    )
    lines = done.stdout.strip().splitlines()
    return (json.loads(lines[-1]) if lines else {}), done


def succeeded(results: dict[str, str]) -> dict[str, bool]:
    return {name: outcome == "ok" for name, outcome in results.items()}


@dataclass
class Probe:
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    agent: dict[str, Any]


PROBES: dict[str, Callable[[Probe], dict[str, bool]]] = {}


def probe(fn: Callable[[Probe], dict[str, bool]]) -> Callable[[Probe], dict[str, bool]]:
    PROBES[fn.__name__] = fn
    return fn


# The agent: a real agentrt process, started with a secret in its environment, that runs
# code which reads environments and kills its parent. If that code gets out, the agent dies.
AGENT = """
import json, os, sys
from agentrt.tools.sandbox import run_sandboxed
ENVIRON = '''
import json, os
name, agent = b"AGENTRT_PROBE_SECRET", int(os.environ["AGENT"])
def has(pid):
    try:
        return name in open(f"/proc/{pid}/environ", "rb").read()
    except OSError:
        return False
pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
print(json.dumps({"environ of its parent": has(os.getppid()),
                  "environ of agentrt by pid": has(agent),
                  "environ of any process": any(has(p) for p in pids)}))
'''
KILL = '''
import os, signal
for pid in (int(os.environ["AGENT"]), os.getppid()):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
'''
from agentrt.tools.sandbox import SandboxLimits
limits = SandboxLimits(env={"AGENT": str(os.getpid())})
print(run_sandboxed([sys.executable, "-I", "-c", ENVIRON], limits=limits).stdout, flush=True)
run_sandboxed([sys.executable, "-I", "-c", KILL], limits=limits)
print("survived", flush=True)
"""


@pytest.fixture(scope="module")
def agent() -> dict[str, Any]:
    env = {**os.environ, SECRET_NAME: f"sk-{uuid.uuid4()}"}
    done = subprocess.run(
        [sys.executable, "-c", AGENT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,  # its death is what the probe looks for
    )
    lines = done.stdout.splitlines()
    return {
        "environ": json.loads(lines[0]) if lines and lines[0].startswith("{") else {},
        "survived": done.returncode == 0 and "survived" in lines,
        "detail": (done.returncode, done.stdout, done.stderr[-2000:]),
    }


@probe
def kill_the_agent(p: Probe) -> dict[str, bool]:
    assert p.agent["environ"], p.agent["detail"]  # the first call ran
    return {"SIGKILL its parent and agentrt by pid": not p.agent["survived"]}


@probe
def read_the_agents_environment(p: Probe) -> dict[str, bool]:
    assert len(p.agent["environ"]) == 3, p.agent["detail"]
    return dict(p.agent["environ"])


@probe
def signal_outside_processes(p: Probe) -> dict[str, bool]:
    helper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    try:
        results, _ = inside(
            f"attempt('SIGKILL a process outside', lambda: os.kill({helper.pid}, 9))\n"
            f"attempt('signal 0 to the test process', lambda: os.kill({os.getpid()}, 0))\n"
        )
        escaped = succeeded(results)
        if escaped["SIGKILL a process outside"]:
            helper.wait(timeout=10)
        escaped["SIGKILL a process outside"] |= helper.poll() is not None
        return escaped
    finally:
        helper.kill()
        helper.communicate()


def _survivors(p: Probe, loop: bool) -> dict[str, bool]:
    marker = f"agentrt-probe-{uuid.uuid4()}"
    body = (
        "import subprocess, sys\n"
        "d = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', "
        f"{marker!r}], start_new_session=True, stdout=-3, stderr=-3)\n"
        "print(d.pid, flush=True)\n" + ("while True: pass\n" if loop else "")
    )
    done = run_sandboxed([sys.executable, "-I", "-c", body], limits=SandboxLimits(timeout=0.5))
    assert done.stdout.strip().isdigit(), done  # the daemon was started
    assert done.timed_out is loop
    left = host_pids_with(marker)
    for pid in left:  # on a sandbox that leaks it, do not leave it running
        os.kill(pid, signal.SIGKILL)
    return {f"setsid() child outlives {'the timeout' if loop else 'a normal exit'}": bool(left)}


@probe
def daemon_after_normal_exit(p: Probe) -> dict[str, bool]:
    return _survivors(p, loop=False)


@probe
def daemon_after_timeout(p: Probe) -> dict[str, bool]:
    return _survivors(p, loop=True)


@probe
def fork_bomb(p: Probe) -> dict[str, bool]:
    results, done = inside(
        """
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
results["children"] = children
""",
        max_processes=32,
    )
    assert done.returncode == 0, done.stderr
    return {"more processes than max_processes": results["children"] >= 32}


@probe
def memory_across_processes(p: Probe) -> dict[str, bool]:
    # Four processes of 120 MB under a 200 MB limit: all four holding theirs at once is 480 MB.
    results, _ = inside(
        """
import select
r, w = os.pipe()
release_r, release_w = os.pipe()
kids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.close(release_w)
        block = bytearray(120 << 20)
        os.write(w, b"1")
        os.read(release_r, 1)
        os._exit(0)
    kids.append(pid)
os.close(w)
held, dead = 0, False
while held < 4 and not dead:
    if select.select([r], [], [], 0.05)[0]:
        got = os.read(r, 4)
        held += len(got)
        dead = not got
    else:
        dead = os.waitpid(-1, os.WNOHANG)[0] != 0
dead = dead or any(os.waitpid(k, os.WNOHANG)[0] for k in kids)
results["held"], results["all held"] = held, held == 4 and not dead
os.close(release_w)
""",
        memory_bytes=200 << 20,
    )
    # The OOM killer may pick the parent: then it reports nothing, and nothing was held.
    return {"4 x 120 MB under a 200 MB limit": results.get("all held") is True}


@probe
def network_to_the_host(p: Probe) -> dict[str, bool]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with udp, tcp:
        udp.bind(("127.0.0.1", 0))
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        udp.setblocking(False)
        tcp.setblocking(False)
        udp_port, tcp_port = udp.getsockname()[1], tcp.getsockname()[1]
        results, _ = inside(f"""
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
attempt("UDP sendto a host port", lambda: u.sendto(b"escaped", ("127.0.0.1", {udp_port})))
t = socket.socket()
attempt("TCP connect to a host port", lambda: t.connect(("127.0.0.1", {tcp_port})))
""")
        # Loopback delivers before sendto returns: anything sent is waiting here now.
        try:
            received = bool(udp.recv(100))
        except BlockingIOError:
            received = False
        try:
            tcp.accept()[0].close()
            accepted = True
        except BlockingIOError:
            accepted = False
    return {
        "UDP sendto a host port": received,
        "TCP connect to a host port": accepted or results["TCP connect to a host port"] == "ok",
    }


@probe
def unix_sockets(p: Probe) -> dict[str, bool]:
    path = p.tmp / "agent.sock"
    abstract = f"\0agentrt-probe-{uuid.uuid4()}"
    by_path = socket.socket(socket.AF_UNIX)
    by_name = socket.socket(socket.AF_UNIX)
    with by_path, by_name:
        by_path.bind(str(path))
        by_name.bind(abstract)
        for s in (by_path, by_name):
            s.listen()
        results, _ = inside(f"""
attempt("Unix socket by path", lambda: socket.socket(socket.AF_UNIX).connect({str(path)!r}))
attempt("abstract Unix socket", lambda: socket.socket(socket.AF_UNIX).connect({abstract!r}))
""")
    return succeeded(results)


@probe
def metadata_of_outside_files(p: Probe) -> dict[str, bool]:
    victim = p.tmp / "victim.txt"
    victim.write_text("mine")
    os.chmod(victim, 0o644)
    before = victim.stat()
    # Visible files (the interpreter) get no-op changes: the right to make them is the escape.
    exe = os.path.realpath(sys.executable)
    st = os.stat(exe)
    results, _ = inside(f"""
v, exe = {str(victim)!r}, {exe!r}
attempt("chmod outside", lambda: os.chmod(v, 0o777))
attempt("utime outside", lambda: os.utime(v, (0, 0)))
attempt("setxattr outside", lambda: os.setxattr(v, "user.agentrt-probe", b"x"))
attempt("chown outside", lambda: os.chown(v, 65534, 65534))
attempt("chmod the interpreter", lambda: os.chmod(exe, {st.st_mode & 0o7777}))
attempt("utime the interpreter", lambda: os.utime(exe, ns=({st.st_atime_ns}, {st.st_mtime_ns})))
attempt("chown the interpreter", lambda: os.chown(exe, {st.st_uid}, {st.st_gid}))
""")
    after = victim.stat()
    escaped = succeeded(results)
    escaped["chmod outside"] |= after.st_mode != before.st_mode
    escaped["utime outside"] |= after.st_mtime_ns != before.st_mtime_ns
    escaped["setxattr outside"] |= "user.agentrt-probe" in os.listxattr(victim)
    escaped["chown outside"] |= (after.st_uid, after.st_gid) != (before.st_uid, before.st_gid)
    return escaped


@probe
def raw_sockets(p: Probe) -> dict[str, bool]:
    results, _ = inside("""
attempt("raw ICMP socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1))
attempt("packet socket", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
""")
    return succeeded(results)


@probe
def files_outside(p: Probe) -> dict[str, bool]:
    secret = p.tmp / "secret.txt"
    secret.write_text("the-secret")
    name = f"agentrt-probe-{uuid.uuid4()}.txt"
    targets = {
        "write a file of the test": p.tmp / name,
        "write beside its directory": Path(tempfile.gettempdir(), name),
        "write the host's /tmp": Path("/tmp", name),
        "write the Python prefix": Path(sys.prefix, name),
    }
    writes = {label: "../" + name if "beside" in label else str(t) for label, t in targets.items()}
    results, _ = inside(
        f"for label, path in {writes!r}.items():\n"
        "    attempt(label, lambda: open(path, 'w').write('x'))\n"
        f"attempt('read a file of the test', lambda: print(open({str(secret)!r}).read()))\n"
        "attempt('read /etc/shadow', lambda: print(open('/etc/shadow').read()))\n"
    )
    escaped = {label: path.exists() for label, path in targets.items()}
    for path in targets.values():
        path.unlink(missing_ok=True)
    escaped["read a file of the test"] = results["read a file of the test"] == "ok"
    escaped["read /etc/shadow"] = results["read /etc/shadow"] == "ok"
    return escaped


@probe
def undeletable_leftovers(p: Probe) -> dict[str, bool]:
    tmp = p.tmp / "tmp"
    tmp.mkdir()
    p.monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    inside("""
os.makedirs("trap/inner")
open("trap/inner/file", "w").write("x")
os.chmod("trap/inner", 0)
os.chmod("trap", 0)
""")
    return {"a mode-000 directory outlives the call": any(tmp.iterdir())}


RESULTS: dict[str, dict[str, bool]] = {}


@pytest.mark.parametrize("name", list(PROBES))
def test_probe(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, agent: dict[str, Any]
) -> None:
    RESULTS[name] = PROBES[name](Probe(tmp_path, monkeypatch, agent))
    assert not any(RESULTS[name].values()), RESULTS[name]


def test_probe_summary(
    tmp_path_factory: pytest.TempPathFactory,
    agent: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in PROBES.keys() - RESULTS.keys():  # when run on its own, or with -k
        with pytest.MonkeyPatch.context() as monkeypatch:
            RESULTS[name] = PROBES[name](Probe(tmp_path_factory.mktemp(name), monkeypatch, agent))
    attempts = [(f"{n}: {a}", e) for n, r in sorted(RESULTS.items()) for a, e in r.items()]
    escapes = [label for label, escaped in attempts if escaped]
    with capsys.disabled():
        print(f"\nsandbox probes: attempts={len(attempts)} escapes={len(escapes)}")
    assert escapes == []


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    yield
    assert host_pids_with("agentrt-probe-") == []
