"""GET /runs/{id}/join: one request for a run's outcome, where polling takes many; and
what a look at a run (the join's, GET /runs/{id}'s) costs the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest

from agentrt import AgentRuntime, Policy, Principal, tool
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import GOAL, OPERATOR
from agentrt.service import create_app, issue_key
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import FakeClock
from tests.test_service import Api, keys_for, problem

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _api(rt: AgentRuntime, **options: object) -> AsyncIterator[Api]:
    settings = {"sweep_every": None, "rate_limit": "10000/minute", **options}
    app = create_app(rt, **settings)  # type: ignore[arg-type]
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


async def test_a_look_at_a_run_takes_one_trip_to_a_worker_thread(
    api: Api, db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is looked up and the run read in one trip to a worker thread, with what
    the answer needs: for a join, whether a message waits for the thread; what the run's
    log holds to mask it with, where this process has not kept it. A trip costs the
    server more than a read."""
    here, _ = await api.waiting_run()
    # One another process drove: its log is read to mask it, at the first look here.
    other = refund_desk.build_runtime(db, clock=clock)
    elsewhere = other.start(GOAL, principal=OPERATOR).thread_id
    other.close()
    logs: list[str] = []
    events = api.rt.events

    def read_log(thread_id: str) -> Any:
        logs.append(thread_id)
        return events(thread_id)

    monkeypatch.setattr(api.rt, "events", read_log)
    trips: list[object] = []
    loop = asyncio.get_running_loop()
    sent = loop.run_in_executor  # asyncio.to_thread's way
    pooled = anyio.to_thread.run_sync  # FastAPI's and Starlette's

    def counted(executor: Any, func: Any, *args: Any) -> Any:
        trips.append(func)
        return sent(executor, func, *args)

    async def counted_pooled(func: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(func)
        return await pooled(func, *args, **kwargs)

    monkeypatch.setattr(loop, "run_in_executor", counted)
    monkeypatch.setattr(anyio.to_thread, "run_sync", counted_pooled)
    looks = [f"/runs/{here}", f"/runs/{here}/join", f"/runs/{elsewhere}/join"]
    for path in [*looks, f"/runs/{elsewhere}"]:
        trips.clear()
        answer = await api.call("GET", path)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "awaiting_approval"
        assert len(trips) == 1, (path, trips)
    assert logs == [elsewhere]  # read once, at the join, and kept for the GET after


async def test_a_look_at_a_run_counts_its_key_once_and_past_its_rate_reads_no_run(
    desk: AgentRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread_id = desk.start(GOAL, principal=OPERATOR).thread_id  # waits at its gate
    reads: list[str] = []
    get_run = desk.store.get_run

    def counted(thread_id: str) -> Any:
        reads.append(thread_id)
        return get_run(thread_id)

    monkeypatch.setattr(desk.store, "get_run", counted)
    async for api in _api(desk, poll_interval=3600, rate_limit="4/minute"):
        looks = [f"/runs/{thread_id}", f"/runs/{thread_id}/join"] * 2
        assert [(await api.call("GET", path)).status_code for path in looks] == [200] * 4
        assert reads == [thread_id] * 4
        problem(await api.call("GET", f"/runs/{thread_id}"), 429, "rate-limited")
        problem(await api.call("GET", f"/runs/{thread_id}/join"), 429, "rate-limited")
        assert reads == [thread_id] * 4


async def test_a_join_waiting_when_its_key_is_revoked_is_answered_401(
    desk: AgentRuntime,
) -> None:
    """A user revokes a leaked key: a join that key opened before (up to 300 s long) is
    answered 401 once it looks again, as the key's next request is, never with the run (it
    answered 200 with the run's output and status). Found by a review."""
    app = create_app(
        desk, sweep_every=None, poll_interval=0.01, drive_runs=False, rate_limit="10000/minute"
    )
    keys = keys_for(desk)
    auth = {"Authorization": f"Bearer {keys['alice']}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        started = await c.post("/runs", json={"goal": GOAL}, headers=auth)
        assert started.status_code == 202, started.text
        thread_id = started.json()["thread_id"]
        join = asyncio.create_task(
            c.get(f"/runs/{thread_id}/join", params={"timeout": 10}, headers=auth)
        )
        await asyncio.sleep(0.2)
        assert not join.done()
        for held in [k for k in desk.keys.list() if k.principal.id == "alice"]:
            desk.keys.revoke(held.key_id)
        assert (await c.get(f"/runs/{thread_id}", headers=auth)).status_code == 401
        await asyncio.to_thread(desk.cancel, thread_id, reason="review")
        answer = await asyncio.wait_for(join, 10)
    assert answer.status_code == 401, (answer.status_code, answer.text[:200])
