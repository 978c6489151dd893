"""The event stream of /runs/{id}/events pushes what a run this process drives does, as
it happens, with no poll: the poll interval here is an hour."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from agentrt import AgentRuntime, Decision, RunStatus
from agentrt.events import KINDS, describe
from agentrt.examples.refund_desk import APPROVER
from agentrt.service import create_app
from agentrt.tracing.shown import shown_events
from tests.test_service import Api, keys_for, parse_sse
from tests.test_service_ui import _browser

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def api(desk: AgentRuntime) -> AsyncIterator[Api]:
    app = create_app(desk, poll_interval=3600, sweep_every=None, rate_limit="10000/minute")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agentrt.test"
        ) as client,
    ):
        yield Api(app, client, keys_for(desk))


async def test_a_run_this_process_drives_is_pushed_as_it_happens(api: Api) -> None:
    thread_id, approval = await api.waiting_run()
    worker = api.app.state.agentrt.worker
    stream = asyncio.create_task(api.call("GET", f"/runs/{thread_id}/events"))
    while not worker.watched(thread_id):  # the stream is open and has looked once
        await asyncio.sleep(0)
    decided = await api.decide(approval, {"outcome": "approve"}, who="bob")
    assert decided.status_code == 200, decided.text
    # An hour's poll interval: only a pushed event can end the stream this soon.
    events = parse_sse((await asyncio.wait_for(stream, 30)).text)
    assert api.rt.get(thread_id).status is RunStatus.SUCCEEDED

    log = api.rt.events(thread_id)
    logged = [e for e in events if e["event"] in KINDS]
    assert [e["event"] for e in logged] == [e["type"] for e in log]
    assert [e["id"] for e in logged] == [str(i) for i in range(len(log))]
    assert [json.loads(e["data"])["data"] for e in logged] == json.loads(
        json.dumps([e["data"] for e in log])
    )
    statuses = [json.loads(e["data"])["status"] for e in events if e["event"] == "status"]
    assert statuses == ["awaiting_approval", "running", "succeeded"]
    # What no look at the checkpoints could tell: the steps, the tokens, the calls.
    live = [e for e in events if e["event"] not in KINDS and e["event"] != "status"]
    assert {e["id"] for e in live} == {""}
    assert {"step_started", "token", "tool_call", "tool_result", "step_ended"} <= {
        e["event"] for e in live
    }
    call = next(json.loads(e["data"]) for e in live if e["event"] == "tool_call")
    assert call["thread_id"] == thread_id
    assert call["data"]["tool"] == "issue_refund"
    words = "".join(json.loads(e["data"])["data"]["text"] for e in live if e["event"] == "token")
    assert "Refunded $89.00" in words


async def test_the_run_page_follows_a_live_run_from_its_event_stream(desk: AgentRuntime) -> None:
    async with _browser(desk) as page:
        thread_id, approval = await page.waiting()
        await page.sign_in(APPROVER)
        drawn = await page.client.get(f"/ui/runs/{thread_id}")
        assert f'data-events="/ui/runs/{thread_id}/events"' in drawn.text
        assert f'data-logged="{len(desk.events(thread_id))}"' in drawn.text
        assert 'id="live-feed"' in drawn.text
        worker = page.app.state.agentrt.worker
        feed = asyncio.create_task(page.client.get(f"/ui/runs/{thread_id}/events"))
        while not worker.watched(thread_id):
            await asyncio.sleep(0)
        await desk.adecide(Decision.approve(approval, by=APPROVER), resume=False)
        worker.drive(thread_id)  # as the page's own decision does
        events = parse_sse((await asyncio.wait_for(feed, 30)).text)
    log = desk.events(thread_id)
    lines = [json.loads(e["data"])["line"] for e in events if e["event"] in KINDS]
    assert lines == [describe(e) for e in shown_events(log, desk.redactor, lambda _: ())]
    live = [json.loads(e["data"]) for e in events if e["event"] == "tool_call"]
    assert [c["line"] for c in live] == [
        'call 2.0: issue_refund({"order_id": "42", "amount": 89.0})',  # the tool prepares
        'call 2.0: issue_refund({"order_id": "42", "amount": 89.0})',  # commit pays
    ]
    assert json.loads(events[-1]["data"])["status"] == "succeeded"


async def test_the_run_page_is_drawn_without_a_feed_once_the_run_is_over(
    desk: AgentRuntime,
) -> None:
    async with _browser(desk) as page:
        thread_id, approval = await page.waiting()
        await desk.adecide(Decision.approve(approval, by=APPROVER))
        await page.sign_in(APPROVER)
        drawn = await page.client.get(f"/ui/runs/{thread_id}")
    assert drawn.status_code == 200
    assert "data-events" not in drawn.text
