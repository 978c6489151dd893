"""Shared fixtures. Tests are offline: any connection off this machine fails loudly."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentrt import AgentRuntime, Policy, Principal, Run, tool
from agentrt.examples import refund_desk
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.phoenix import phoenix  # noqa: F401
from tests.postgres import empty_postgres_url, postgres_server, postgres_url  # noqa: F401

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise RuntimeError(f"tests are offline: refused a connection to {address!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "agentrt.db"


class Ids:
    """Deterministic ids: run-1, run-2, ..."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"id-{self.n}"


@pytest.fixture
def desk(db: Path, clock: FakeClock) -> Iterator[AgentRuntime]:
    """The refund desk demo runtime on a fresh file, with an injected clock and ids."""
    rt = refund_desk.build_runtime(db, clock=clock, new_id=Ids())
    yield rt
    rt.close()


def started_at_once(rt: AgentRuntime, goal: str, runs: int) -> list[Run]:
    """``runs`` runs of ``goal`` started together on one event loop (``rt.astart``),
    threads t0, t1, ...; each as it ended, in that order."""

    async def drive() -> list[Run]:
        return await asyncio.gather(
            *(rt.astart(goal, principal=Principal("p"), thread_id=f"t{i}") for i in range(runs))
        )

    return asyncio.run(drive())


def run_interleaved(*threads: threading.Thread, timeout: float | None = None) -> None:
    """Start ``threads`` and wait for them (each at most ``timeout`` seconds), with the
    interpreter handing its lock from one to another as often as it can: a race between
    any two bytecodes has its chance."""
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout)
    finally:
        sys.setswitchinterval(switching)


class SlowJobs:
    """A run of two jobs whose first is held in flight until ``release``: something is
    asked of the run meanwhile (a cancel) while its first effect is under way."""

    def __init__(self, db: Path, *, patience: float = 30.0) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.done: list[str] = []
        self.patience = patience

        @tool(effect="write", idempotent=True)
        def slow(job: str) -> dict[str, str]:
            """A long job.

            Args:
                job: Which.
            """
            self.entered.set()
            self.release.wait(patience)
            self.done.append(job)
            return {"job": job}

        model = ScriptedChatModel(
            [ai("", tool_call("slow", {"job": "a"})), ai("", tool_call("slow", {"job": "b"})), "ok"]
        )
        self.driver = AgentRuntime(model, tools=[slow], policy=Policy.allow_all(), db=db)

    def run_while(self, meanwhile: Callable[[], None]) -> Run:
        """Start the run in a thread; once its first job is in flight, do ``meanwhile``, then
        let the job end. The run as it ended."""
        result: list[Run] = []
        worker = threading.Thread(
            target=lambda: result.append(
                self.driver.start("two jobs", principal=Principal("ops"), thread_id="t")
            )
        )
        worker.start()
        try:
            assert self.entered.wait(self.patience)
            meanwhile()
        finally:
            self.release.set()
            worker.join(self.patience)
            self.driver.close()
        [run] = result
        return run
