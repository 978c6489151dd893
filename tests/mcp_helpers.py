"""What the MCP tests share: the real servers' commands, a git repository to commit to, the
notes server on 127.0.0.1, and finding (and killing) a server this process started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.serving import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TIME_SERVER = str(BIN / "mcp-server-time")
GIT_SERVER = str(BIN / "mcp-server-git")


def wait_for(what: str, ready: object, timeout: float = 30.0) -> None:
    """Poll ``ready()`` until it is true (an event happening, not a sleep of a set length)."""
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g}s")
        time.sleep(0.02)


# git ----------------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


def git_repo(path: Path) -> Path:
    """A repository with one file to commit and no commits yet."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Agent")
    git(path, "config", "user.email", "agent@example.com")
    (path / "notes.md").write_text("first note\n")
    return path


def commits(repo: Path) -> list[str]:
    """Commit subjects, newest first ([] before the first)."""
    done = subprocess.run(
        ["git", "-C", str(repo), "log", "--format=%s"], capture_output=True, text=True, check=False
    )
    return done.stdout.splitlines() if done.returncode == 0 else []


# processes ----------------------------------------------------------------------------------


def children(word: str, parent: int | None = None) -> list[int]:
    """Pids of ``parent``'s (this process's) children whose command line has ``word``."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and word in cmdline:
            found.append(int(entry.name))
    return found


def kill(pid: int) -> None:
    """SIGKILL ``pid`` and wait until it is gone."""
    os.kill(pid, signal.SIGKILL)
    wait_for(f"process {pid} to die", lambda: not _alive(pid))


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# the notes server (tests/mcp_notes_server.py) ----------------------------------------------


class NotesServer:
    """The notes MCP server on Streamable HTTP at 127.0.0.1, which a test may kill and
    start again on the same port (its notes are in a file, so they outlive it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.mcp_notes_server", str(self.port), str(self.directory)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("the notes server to listen", self._listening)

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the notes server exited with {self.process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def notes(self) -> list[tuple[str, str]]:
        """(text, idempotency key) of each note that reached the server."""
        path = self.directory / "notes.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        return [tuple(line.split("\t")) for line in lines]  # type: ignore[misc]


@contextmanager
def notes_server(directory: Path) -> Iterator[NotesServer]:
    server = NotesServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()
