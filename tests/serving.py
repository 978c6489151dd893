"""A real `agentrt serve` process on 127.0.0.1, for tests that need the server itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease released, runs left mid-step."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


@contextmanager
def serve(
    app: str, db: Path | str, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[Server]:
    """Start `agentrt serve` on a free port and yield it once /healthz answers; stop it after."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentrt",
            "serve",
            "--app",
            app,
            "--db",
            str(db),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *args,
        ],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Server(process, f"http://127.0.0.1:{port}")
    try:
        _wait_healthy(server)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _wait_healthy(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            stderr = server.process.stderr.read() if server.process.stderr else ""
            raise RuntimeError(f"agentrt serve exited with {server.process.returncode}: {stderr}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # the server is starting in another process; nothing to wait on
    raise TimeoutError(f"agentrt serve did not answer on {server.url} within {timeout} s")


def wait_for(
    client: httpx.Client, thread_id: str, statuses: set[str], timeout: float = 60.0
) -> dict[str, object]:
    """Poll the run until its status is one of ``statuses``; the run as the API gives it."""
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, object] = client.get(f"/runs/{thread_id}").json()
        if run["status"] in statuses:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {thread_id!r} still {run['status']!r} after {timeout} s")
        time.sleep(0.05)  # the run moves in the server's process


@dataclass
class WorkerProcess:
    """An `agentrt worker` process; its log (stderr) goes to a file."""

    process: subprocess.Popen[str]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait_started(self, timeout: float = 60.0) -> None:
        """Until the worker says it drives runs (it has opened the database)."""
        deadline = time.monotonic() + timeout
        while "worker: driving runs from" not in self.text():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"agentrt worker exited with {self.process.returncode}: {self.text()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"agentrt worker did not start within {timeout} s: {self.text()}"
                )
            time.sleep(0.05)  # it starts in another process; nothing to wait on

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, and its exit status once it has stopped."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown, leases left to expire."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


@contextmanager
def worker(
    app: str,
    db: Path | str,
    log: Path,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    started: bool = True,
) -> Iterator[WorkerProcess]:
    """Start `agentrt worker` and yield it (once it drives runs, if ``started``); stop it
    after if it still runs."""
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "agentrt", "worker", "--app", app, "--db", str(db), *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
    running = WorkerProcess(process, log)
    try:
        if started:
            running.wait_started()
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
