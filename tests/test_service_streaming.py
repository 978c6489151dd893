"""The event stream of /runs/{id}/events pushes what a run this process drives does, as
it happens, with no poll: the poll interval here is an hour."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agentrt import AgentRuntime, Decision, Policy, RunStatus
from agentrt.events import KINDS, describe
from agentrt.examples.refund_desk import APPROVER, GOAL
from agentrt.service import create_app, issue_key
from agentrt.testing import ScriptedChatModel
from agentrt.tracing.shown import shown_events
from tests.conftest import FakeClock
from tests.openai_server import Reply, openai_server
from tests.provider_app import OPERATOR, TREASURER
from tests.test_providers import (
    PAY,
    offline_tokenizer,  # noqa: F401 (a fixture: tiktoken offline)
)
from tests.test_providers import runtime as provider_runtime
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


def _after_revoking(events: list[dict[str, str]], logged: int) -> dict[str, Any]:
    """What a stream sent beyond what it had when its key was revoked (``logged`` log
    entries, the run waiting at its gate)."""
    return {
        "log entries": [e["id"] for e in events if e["event"] in KINDS and int(e["id"]) >= logged],
        "statuses": [
            json.loads(e["data"])["status"]
            for e in events
            if e["event"] == "status" and json.loads(e["data"])["status"] != "awaiting_approval"
        ],
        "live events": [e["event"] for e in events if e["event"] not in {*KINDS, "status"}],
    }


async def test_a_revoked_key_stops_receiving_the_event_stream_it_opened(api: Api) -> None:
    thread_id, approval = await api.waiting_run()
    worker = api.app.state.agentrt.worker
    stream = asyncio.create_task(api.call("GET", f"/runs/{thread_id}/events"))
    while not worker.watched(thread_id):
        await asyncio.sleep(0)
    logged = len(api.rt.events(thread_id))
    (alice,) = [k for k in api.rt.keys.list() if k.principal.roles == ("operator",)]
    api.rt.keys.revoke(alice.key_id)
    decided = await api.decide(approval, {"outcome": "approve"}, who="bob")
    assert decided.status_code == 200, decided.text
    # An hour's poll interval: the stream ends at the first push it wakes for.
    events = parse_sse((await asyncio.wait_for(stream, 30)).text)
    await api.settled(thread_id)
    assert api.rt.get(thread_id).status is RunStatus.SUCCEEDED  # the run went on regardless
    assert [e["id"] for e in events if e["event"] in KINDS] == [str(i) for i in range(logged)]
    assert _after_revoking(events, logged) == {"log entries": [], "statuses": [], "live events": []}
    again = await api.call("GET", f"/runs/{thread_id}/events")
    assert again.status_code == 401


async def test_a_revoked_key_stops_the_run_pages_open_feed(desk: AgentRuntime) -> None:
    async with _browser(desk) as page:
        thread_id, approval = await page.waiting()
        await page.sign_in(APPROVER)
        worker = page.app.state.agentrt.worker
        feed = asyncio.create_task(page.client.get(f"/ui/runs/{thread_id}/events"))
        while not worker.watched(thread_id):
            await asyncio.sleep(0)
        logged = len(desk.events(thread_id))
        (signed_in,) = [k for k in desk.keys.list() if k.principal.id == APPROVER.id]
        desk.keys.revoke(signed_in.key_id)  # the key the page's cookie holds
        await desk.adecide(Decision.approve(approval, by=APPROVER), resume=False)
        worker.drive(thread_id)
        events = parse_sse((await asyncio.wait_for(feed, 30)).text)
        await page.settled(thread_id)
        again = await page.client.get(f"/ui/runs/{thread_id}/events")
    assert desk.get(thread_id).status is RunStatus.SUCCEEDED
    assert _after_revoking(events, logged) == {"log entries": [], "statuses": [], "live events": []}
    assert again.status_code == 303  # to the sign-in page: the key is no longer good
    assert again.headers["location"].startswith("/ui/login")


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


def _count_model_calls(
    monkeypatch: pytest.MonkeyPatch, first: asyncio.Event | None = None
) -> list[str]:
    """How each model call is answered from now on, in order: "whole" or "streamed".
    ``first``: the first whole call waits for it (a call in flight)."""
    asked: list[str] = []
    whole, streamed = ScriptedChatModel._agenerate, ScriptedChatModel._astream

    async def counted_whole(self: ScriptedChatModel, *args: Any, **kwargs: Any) -> Any:
        asked.append("whole")
        if first is not None and asked.count("whole") == 1:
            await first.wait()
        return await whole(self, *args, **kwargs)

    def counted_stream(self: ScriptedChatModel, *args: Any, **kwargs: Any) -> Any:
        asked.append("streamed")
        return streamed(self, *args, **kwargs)

    monkeypatch.setattr(ScriptedChatModel, "_agenerate", counted_whole)
    monkeypatch.setattr(ScriptedChatModel, "_astream", counted_stream)
    return asked


async def test_tokens_are_streamed_only_while_someone_watches(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run no one watches asks its model for whole answers; one watched, in tokens."""
    asked = _count_model_calls(monkeypatch)
    thread_id, approval = await api.waiting_run()  # driven by the server, unwatched
    assert asked
    assert set(asked) == {"whole"}
    assert thread_id not in api.rt.deps.quiet_threads  # forgotten once the drive ended

    asked.clear()
    worker = api.app.state.agentrt.worker
    stream = asyncio.create_task(api.call("GET", f"/runs/{thread_id}/events"))
    while not worker.watched(thread_id):
        await asyncio.sleep(0)
    decided = await api.decide(approval, {"outcome": "approve"}, who="bob")
    assert decided.status_code == 200, decided.text
    events = parse_sse((await asyncio.wait_for(stream, 30)).text)
    assert asked
    assert set(asked) == {"streamed"}
    assert "token" in {e["event"] for e in events}
    assert api.rt.get(thread_id).status is RunStatus.SUCCEEDED


async def test_a_page_that_watches_mid_run_gets_the_next_calls_tokens(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()
    asked = _count_model_calls(monkeypatch, first=release)
    started = await api.call("POST", "/runs", json={"goal": GOAL})
    thread_id = started.json()["thread_id"]
    while not asked:  # the run's first model call is in flight
        await asyncio.sleep(0)
    worker, quiet = api.app.state.agentrt.worker, api.rt.deps.quiet_threads
    assert thread_id in quiet
    with worker.watch(thread_id):
        assert thread_id not in quiet
    assert thread_id in quiet  # the page left: quiet again
    with worker.watch(thread_id) as events:
        release.set()
        await api.settled(thread_id)
    kinds = []
    while not events.empty():
        event = events.get_nowait()
        kinds.append(event.type if event is not None else None)
    # The call in flight whole, the later ones in tokens.
    assert asked[0] == "whole"
    assert len(asked) > 1
    assert set(asked[1:]) == {"streamed"}
    assert "token" in kinds
    assert thread_id not in quiet
    assert api.rt.get(thread_id).status is RunStatus.AWAITING_APPROVAL


@pytest.mark.usefixtures("offline_tokenizer")
async def test_the_provider_streams_only_to_a_watched_run(db: Path, clock: FakeClock) -> None:
    """The real OpenAI client over HTTP: a served run no one watches asks for whole
    answers (``"stream": false``); once an event stream watches it, for a stream."""
    with openai_server([PAY, Reply("paid")]) as server:
        rt = provider_runtime(db, server, clock)
        app = create_app(rt, poll_interval=3600, sweep_every=None, rate_limit="10000/minute")
        keys = {"olga": issue_key(rt, OPERATOR), "tess": issue_key(rt, TREASURER)}
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://agentrt.test"
                ) as client,
            ):
                api = Api(app, client, keys)
                started = await api.call("POST", "/runs", "olga", json={"goal": "pay acme-7"})
                thread_id = started.json()["thread_id"]
                await api.settled(thread_id)
                assert [r.get("stream") for r in server.requests] == [False]
                run = (await api.call("GET", f"/runs/{thread_id}", "olga")).json()
                approval = run["pending_approvals"][0]["id"]

                worker = app.state.agentrt.worker
                stream = asyncio.create_task(api.call("GET", f"/runs/{thread_id}/events", "olga"))
                while not worker.watched(thread_id):
                    await asyncio.sleep(0)
                decided = await api.decide(approval, {"outcome": "approve"}, who="tess")
                assert decided.status_code == 200, decided.text
                events = parse_sse((await asyncio.wait_for(stream, 30)).text)
            assert rt.get(thread_id).status is RunStatus.SUCCEEDED
        finally:
            rt.close()
    assert [r.get("stream") for r in server.requests] == [False, True]
    assert "token" in {e["event"] for e in events}


class _NoOptions(BaseChatModel):
    """A model whose answering hook takes no call options (no ``**kwargs``)."""

    @property
    def _llm_type(self) -> str:
        return "no-options"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self  # offered none here

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage("hello"))])


async def test_a_model_that_takes_no_call_options_answers_a_quiet_run_as_before(
    tmp_path: Path,
) -> None:
    rt = AgentRuntime(_NoOptions(), tools=[], policy=Policy.allow_all(), db=tmp_path / "a.db")
    with rt:
        rt.deps.quiet_threads.add("t")  # as the server marks a run no one watches
        async for _ in rt.astream("Say hello", principal=OPERATOR, thread_id="t"):
            pass
        run = rt.get("t")
    # Asked as it always was: ``stream=False`` would reach its hook and fail the run.
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.output == "hello"
