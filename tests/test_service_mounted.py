"""agentrt's app mounted in another: its start-up and shut-down work through agentrt_lifespan.

Starlette runs only the lifespan of the app it serves, so an embedder composes agentrt's
into its own: stopped runs are carried on at start, the sweep expires approvals, and
shutdown gives runs in hand their grace.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from agentrt import AgentRuntime, Policy, RunStatus, tool
from agentrt.approvals import ApprovalStatus
from agentrt.errors import ConfigError
from agentrt.examples.refund_desk import GOAL, OPERATOR
from agentrt.service import agentrt_lifespan, create_app, issue_key
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import FakeClock

pytestmark = pytest.mark.anyio

DAY = 86400.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def embedding(agentrt: FastAPI) -> FastAPI:
    """An embedder's own app: agentrt's mounted under /agentrt, its lifespan composed."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with agentrt_lifespan(app):
            yield

    outer = FastAPI(lifespan=lifespan)
    outer.mount("/agentrt", agentrt)
    return outer


async def until(done: Callable[[], bool], seconds: float = 30.0) -> None:
    """Until ``done()`` holds, looking between turns of the loop (bounded, never a fixed
    sleep)."""

    async def poll() -> None:
        while not await asyncio.to_thread(done):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), seconds)


async def test_mounted_with_its_lifespan_composed_runs_are_carried_on_and_approvals_expire(
    desk: AgentRuntime, clock: FakeClock
) -> None:
    before = desk.create(GOAL, principal=OPERATOR)  # written before the server starts
    agentrt = create_app(desk, sweep_every=0.01, rate_limit="10000/minute")
    service = agentrt.state.agentrt
    outer = embedding(agentrt)
    key = issue_key(desk, OPERATOR)
    async with (
        outer.router.lifespan_context(outer),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=outer), base_url="http://shop.test"
        ) as client,
    ):
        await service.worker.wait(before.thread_id)
        run = desk.get(before.thread_id)
        assert run.status is RunStatus.AWAITING_APPROVAL  # carried on to its gate at start
        (request,) = run.pending_approvals

        # The API answers under the mount, with the same runtime behind it.
        shown = await client.get(
            f"/agentrt/runs/{before.thread_id}", headers={"Authorization": f"Bearer {key}"}
        )
        assert shown.status_code == 200, shown.text
        assert shown.json()["status"] == "awaiting_approval"

        clock.advance(4 * DAY)  # the rule gives a refund approver 3 days; the sweep sees it
        await until(lambda: desk.approval(request.id).status is ApprovalStatus.EXPIRED)
        await until(lambda: desk.get(before.thread_id).status is RunStatus.SUCCEEDED)
        assert (desk.get(before.thread_id).output or "").startswith("I did not refund")
    assert not service.started


class Held:
    """A tool that holds its call until the test lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def runtime(self, db: Path) -> AgentRuntime:
        @tool(effect="read")
        def hold() -> str:
            """Wait for the test."""
            self.entered.set()
            assert self.release.wait(30), "the test never let the call go"
            return "let go"

        model = ScriptedChatModel([ai("", tool_call("hold")), "held and let go"])
        return AgentRuntime(model, tools=[hold], policy=Policy.allow_all(), db=db, tracing=None)


async def test_mounted_shutdown_waits_its_grace_for_a_run_in_hand(db: Path) -> None:
    held = Held()
    with held.runtime(db) as rt:
        run = rt.create("hold on", principal=OPERATOR)
        agentrt = create_app(rt, sweep_every=None, shutdown_grace=60)
        outer = embedding(agentrt)
        lifespan = outer.router.lifespan_context(outer)
        await lifespan.__aenter__()
        await asyncio.to_thread(held.entered.wait, 30)  # carried on at start, now in the tool
        stopping = asyncio.create_task(lifespan.__aexit__(None, None, None))
        await asyncio.sleep(0.05)
        assert not stopping.done()  # shutdown waits for the run in hand...
        assert agentrt.state.agentrt.worker.in_flight == 1
        held.release.set()
        await asyncio.wait_for(stopping, 30)  # ...which then reaches its end
        assert rt.get(run.thread_id).status is RunStatus.SUCCEEDED
        assert rt.get(run.thread_id).output == "held and let go"


async def test_mounted_without_it_nothing_is_carried_on_and_the_log_says_why(
    desk: AgentRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    before = desk.create(GOAL, principal=OPERATOR)
    agentrt = create_app(desk, sweep_every=0.01, rate_limit="10000/minute")
    outer = FastAPI()
    outer.mount("/agentrt", agentrt)  # Starlette never runs the mounted app's lifespan
    key = issue_key(desk, OPERATOR)
    with caplog.at_level(logging.WARNING, logger="agentrt.service"):
        async with (
            outer.router.lifespan_context(outer),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=outer), base_url="http://shop.test"
            ) as client,
        ):
            for _ in range(2):
                answer = await client.get(
                    "/agentrt/runs", headers={"Authorization": f"Bearer {key}"}
                )
                assert answer.status_code == 200
    assert desk.get(before.thread_id).status is RunStatus.PENDING
    told = [r.getMessage() for r in caplog.records if "lifespan is not running" in r.getMessage()]
    assert len(told) == 1  # once, not per request
    assert "agentrt_lifespan" in told[0]


async def test_agentrt_lifespan_refuses_an_app_without_agentrt_and_a_second_start(
    desk: AgentRuntime,
) -> None:
    with pytest.raises(ConfigError, match="not an app create_app made and mounts none"):
        async with agentrt_lifespan(FastAPI()):
            pass
    agentrt = create_app(desk, sweep_every=None, resume_stopped=False)
    # Served directly, the app runs its own lifespan; entering agentrt's too is a mistake.
    async with agentrt.router.lifespan_context(agentrt):
        with pytest.raises(ConfigError, match="lifespan is running already"):
            async with agentrt_lifespan(agentrt):
                pass
    async with agentrt_lifespan(embedding(agentrt)):  # and once stopped, it may start again
        assert agentrt.state.agentrt.started
