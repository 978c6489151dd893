"""GET /runs/{id}/join: one request for a run's outcome, where polling takes many."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentrt import AgentRuntime, Policy, Principal, tool
from agentrt.examples.refund_desk import GOAL
from agentrt.service import create_app, issue_key
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import FakeClock
from tests.test_service import Api, keys_for, problem

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _api(rt: AgentRuntime, **options: object) -> AsyncIterator[Api]:
    app = create_app(rt, sweep_every=None, rate_limit="10000/minute", **options)  # type: ignore[arg-type]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agentrt.test"
        ) as client,
    ):
        yield Api(app, client, keys_for(rt))


@pytest.fixture
async def api(desk: AgentRuntime) -> AsyncIterator[Api]:
    # A poll interval far past the test: a join answered here was told by the worker.
    async for api in _api(desk, poll_interval=3600):
        yield api


@pytest.fixture
async def api_only(desk: AgentRuntime) -> AsyncIterator[Api]:
    """An API that drives no run (serve --no-worker): someone else carries them on."""
    async for api in _api(desk, poll_interval=0.01, drive_runs=False):
        yield api


async def test_a_join_answers_once_the_run_stops_at_its_gate(api: Api) -> None:
    started = await api.call("POST", "/runs", json={"goal": GOAL})
    assert started.status_code == 202, started.text
    thread_id = started.json()["thread_id"]
    joined = await api.call("GET", f"/runs/{thread_id}/join")
    assert joined.status_code == 200, joined.text
    body = joined.json()
    assert body["status"] == "awaiting_approval"
    assert body["pending_approvals"][0]["tool"] == "issue_refund"
    # The run as GET /runs/{id} shows it, field for field.
    assert body == (await api.call("GET", f"/runs/{thread_id}")).json()


async def test_a_join_answers_with_the_outcome_once_a_decision_carries_the_run_to_its_end(
    api: Api,
) -> None:
    thread_id, approval_id = await api.waiting_run()
    decided = await api.decide(approval_id, {"outcome": "approve"})
    assert decided.status_code == 200, decided.text
    joined = (await api.call("GET", f"/runs/{thread_id}/join", params={"timeout": 60})).json()
    assert joined["status"] == "succeeded"
    assert joined["output"]


async def test_a_join_on_a_run_another_process_drives_looks_every_poll_interval(
    api_only: Api, desk: AgentRuntime
) -> None:
    started = await api_only.call("POST", "/runs", json={"goal": GOAL})
    thread_id = started.json()["thread_id"]
    joining = asyncio.create_task(api_only.call("GET", f"/runs/{thread_id}/join"))
    await asyncio.sleep(0.05)  # the join is waiting: the run is pending, nobody drives it
    assert not joining.done()
    # The worker elsewhere, here the runtime itself, carries it to its gate.
    await desk.aresume(thread_id)
    joined = await asyncio.wait_for(joining, 30)
    assert joined.json()["status"] == "awaiting_approval"


async def test_a_run_still_going_at_the_timeout_is_answered_as_it_is(api_only: Api) -> None:
    started = await api_only.call("POST", "/runs", json={"goal": GOAL})
    thread_id = started.json()["thread_id"]
    joined = await api_only.call("GET", f"/runs/{thread_id}/join", params={"timeout": 0.05})
    assert joined.status_code == 200
    assert joined.json()["status"] == "pending"


async def test_a_join_sees_only_the_callers_tenant_and_takes_only_a_sane_timeout(
    api: Api,
) -> None:
    thread_id, _ = await api.waiting_run()
    problem(await api.call("GET", f"/runs/{thread_id}/join", "eve"), 404, "unknown-run")
    problem(await api.call("GET", "/runs/no-such-thread/join"), 404, "unknown-run")
    problem(await api.call("GET", f"/runs/{thread_id}/join", None), 401, "unauthenticated")
    for bad in ("0", "-1", "301", "soon"):
        refused = await api.call("GET", f"/runs/{thread_id}/join", params={"timeout": bad})
        body = problem(refused, 422)
        assert "timeout" in body["detail"], body


PIN = "otter-40917-copper"  # no detector knows its shape: only its field says it is secret


@tool(effect="read", sensitive=["pin"])
def check_door(door: str, pin: str) -> dict[str, Any]:
    """Check that a door opens to a pin."""
    return {"door": door, "opens": True}


async def test_a_join_masks_the_answer_with_the_log_the_segment_ended_with_reading_none(
    db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's answer repeats a sensitive argument: the join shows it masked, with the
    secrets the segment this process drove ended with (kept as it moved the row), so it
    reads no log, nor does a look at the run after."""
    said = f"The back door opens with pin {PIN}."
    model = ScriptedChatModel([ai("", tool_call("check_door", {"door": "back", "pin": PIN})), said])
    rt = AgentRuntime(model, tools=[check_door], policy=Policy.allow_all(), db=db, clock=clock)
    app = create_app(rt, poll_interval=3600, sweep_every=None, rate_limit="10000/minute")
    keys = {"alice": issue_key(rt, Principal("alice", tenant="acme"))}
    reads: list[str] = []
    events = rt.events

    def counted(thread_id: str) -> Any:
        reads.append(thread_id)
        return events(thread_id)

    monkeypatch.setattr(rt, "events", counted)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        api = Api(app, client, keys)
        started = await api.call("POST", "/runs", json={"goal": "open the back door"})
        thread_id = started.json()["thread_id"]
        joined = (await api.call("GET", f"/runs/{thread_id}/join")).json()
        assert joined["status"] == "succeeded"
        assert joined["output"] == "The back door opens with pin [REDACTED:field]."
        again = (await api.call("GET", f"/runs/{thread_id}")).json()
        assert again == joined
        assert reads == []
        # Asked with no row in hand, the runtime reads the log, and finds the same.
        assert rt.log_secrets(thread_id) == [PIN]
        assert reads == [thread_id]
    rt.close()
