"""A segment no one watches as it begins is driven without a stream (``aresume``): no
stream's cost with no one to read it. A watcher that comes meanwhile has the run stop before
its next step and go on at once, streamed, in the slot it holds."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentrt import AgentRuntime, RunStatus
from agentrt.events import KINDS
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import GOAL
from agentrt.testing import ScriptedChatModel
from tests.conftest import FakeClock, Ids
from tests.test_service import Api, parse_sse
from tests.test_service_join import _api

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def api(desk: AgentRuntime) -> AsyncIterator[Api]:
    # A poll interval far past the test: a watcher is told only what the worker pushes.
    async for api in _api(desk, poll_interval=3600):
        yield api


async def _until(cond: Any, limit: int = 200_000) -> None:
    for _ in range(limit):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def _model_gate(
    monkeypatch: pytest.MonkeyPatch, gate: dict[int, asyncio.Event], clock: FakeClock | None
) -> list[int]:
    """Each model call (whole or streamed) counted; call n waits for gate[n] if any, and
    moves the clock a second (its time, in the run's active time)."""
    calls: list[int] = []
    asked, streamed = ScriptedChatModel._agenerate, ScriptedChatModel._astream

    async def called() -> None:
        calls.append(len(calls))
        event = gate.get(len(calls))
        if event is not None:
            await event.wait()
        if clock is not None:
            clock.advance(1.0)

    async def answered(self: ScriptedChatModel, *args: Any, **kwargs: Any) -> Any:
        await called()
        return await asked(self, *args, **kwargs)

    async def answered_streamed(self: ScriptedChatModel, *args: Any, **kwargs: Any) -> Any:
        await called()
        async for chunk in streamed(self, *args, **kwargs):
            yield chunk

    monkeypatch.setattr(ScriptedChatModel, "_agenerate", answered)
    monkeypatch.setattr(ScriptedChatModel, "_astream", answered_streamed)
    return calls


async def test_a_segment_no_one_watches_goes_unstreamed_until_a_watcher_comes(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No one watches the run as it begins: it is driven without a stream (no stream's
    cost, with no one to read it). A watcher that comes while its model answers has it stop
    before the next step and go on streamed: each log entry reaches the watcher once, the
    steps after as they happen, and the run acts as it would have unwatched."""
    rt, worker = api.rt, api.app.state.agentrt.worker
    segments: list[str] = []

    def counted(name: str) -> Any:
        method = getattr(rt, name)

        def call(thread_id: str) -> Any:
            segments.append(name)
            return method(thread_id)

        return call

    for name in ("aresume", "astream_resume"):
        monkeypatch.setattr(rt, name, counted(name))
    first, asked, asking = asyncio.Event(), ScriptedChatModel._agenerate, asyncio.Event()

    async def answered(self: ScriptedChatModel, *args: Any, **kwargs: Any) -> Any:
        asking.set()
        await first.wait()  # the first answer waits for the watcher; none after it
        return await asked(self, *args, **kwargs)

    monkeypatch.setattr(ScriptedChatModel, "_agenerate", answered)
    started = await api.call("POST", "/runs", json={"goal": GOAL})
    thread_id = started.json()["thread_id"]
    await asyncio.wait_for(asking.wait(), 30)  # its first model call, asked for whole
    assert segments == ["aresume"]
    stream = asyncio.create_task(api.call("GET", f"/runs/{thread_id}/events"))
    while not worker.watched(thread_id):
        await asyncio.sleep(0)
    first.set()
    await api.settled(thread_id)
    run = rt.get(thread_id)
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert segments == ["aresume", "astream_resume"]  # stopped for the watcher, on streamed
    decided = await api.decide(run.pending_approvals[0].id, {"outcome": "approve"}, who="bob")
    assert decided.status_code == 200, decided.text
    events = parse_sse((await asyncio.wait_for(stream, 30)).text)
    assert segments == ["aresume", "astream_resume", "astream_resume"]  # watched as it began
    assert rt.get(thread_id).status is RunStatus.SUCCEEDED
    log = rt.events(thread_id)
    logged = [e for e in events if e["event"] in KINDS]
    assert [e["id"] for e in logged] == [str(i) for i in range(len(log))]
    assert [e["event"] for e in logged] == [e["type"] for e in log]
    refunds = [e for e in log if e["type"] == "observation" and e["data"]["tool"] == "issue_refund"]
    assert len(refunds) == 1
    live = [e["event"] for e in events if e["event"] not in KINDS and e["event"] != "status"]
    # Pushed as they happened from the step after the watcher came, before any tool: every
    # call, the three reads' and the refund's (prepared, then committed).
    assert [e["type"] for e in log].count("observation") == 4
    assert live.count("tool_call") == 5
    # Each plan asked the model once: no step ran twice across the stop.
    assert len(rt.deps.model.calls) == [e["type"] for e in log].count("plan")


@pytest.fixture
async def api_one(desk: AgentRuntime) -> AsyncIterator[Api]:
    """The service driving at most one run at a time (max_concurrent_runs=1)."""
    async for api in _api(desk, poll_interval=3600, max_concurrent_runs=1):
        yield api


async def test_a_watched_run_goes_on_at_once_not_behind_the_runs_queued_for_a_slot(
    api_one: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every slot taken and another run queued for one: the run stopped for its watcher
    goes on in the slot it holds, not behind the queued run (a watcher, and a join, would
    wait for a run they never asked about)."""
    api = api_one
    worker = api.app.state.agentrt.worker
    first, second = asyncio.Event(), asyncio.Event()
    calls = _model_gate(monkeypatch, {1: first, 2: second}, None)
    a = (await api.call("POST", "/runs", json={"goal": GOAL})).json()["thread_id"]
    await _until(lambda: len(calls) == 1)  # A holds the only slot, asking its model
    b = (await api.call("POST", "/runs", json={"goal": GOAL})).json()["thread_id"]
    await _until(lambda: worker.driving(b))  # B is queued for the slot
    stream = asyncio.create_task(api.call("GET", f"/runs/{a}/events"))
    await _until(lambda: worker.watched(a))
    first.set()  # A's model answers; A stops before its next step for its watcher
    try:
        await _until(lambda: len(calls) == 2)  # the next model call: A's, B still waits
        assert api.rt.get(b).status is RunStatus.PENDING
        assert api.rt.get(a).status is RunStatus.RUNNING
    finally:
        second.set()
        await api.settled(a)
        await api.settled(b)
    assert api.rt.get(a).status is RunStatus.AWAITING_APPROVAL
    assert api.rt.get(b).status is RunStatus.AWAITING_APPROVAL
    await _left(stream)


async def _left(stream: asyncio.Task[Any]) -> None:
    """The event stream's caller leaves: its task cancelled and its end taken, whatever it
    was (cancelled, or the response's keepalive meeting the closed stream first)."""
    stream.cancel()
    await asyncio.gather(stream, return_exceptions=True)


@pytest.fixture
async def api_conv(db: Path, clock: FakeClock) -> AsyncIterator[Api]:
    """The refund desk whose model also answers one follow-up."""
    model = ScriptedChatModel(
        [*refund_desk.demo_model().steps, "Order 43 is on its way."],
        model_name="refund-desk-script",
    )
    with refund_desk.build_runtime(db, clock=clock, new_id=Ids(), model=model) as rt:
        async for api in _api(rt, poll_interval=3600):
            yield api


async def test_a_watcher_that_comes_as_a_run_ends_leaves_no_follow_up_unanswered(
    api_conv: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follow-up enqueued while the run waits at its gate is answered once the run ends
    (follow_on, in the same segment). A watcher that comes as the decided run's unstreamed
    segment writes its end marks the run stopping; follow_on then leaves the message, and
    the worker, seeing a run that is no longer running, drives nothing more: the message
    waits for ever (and a join or event stream waits on it)."""
    api = api_conv
    rt = api.rt
    worker = api.app.state.agentrt.worker
    thread_id, approval = await api.waiting_run()
    sent = await api.call(
        "POST",
        f"/runs/{thread_id}/messages",
        json={"message": "Look up order 43 too.", "double_texting": "enqueue"},
    )
    assert sent.status_code == 202, sent.text
    await api.settled(thread_id)  # nothing to do yet: the run waits at its gate
    assert rt.get(thread_id).status is RunStatus.AWAITING_APPROVAL
    driver = rt._driver
    real_settle = driver.settle
    inside, release = threading.Event(), threading.Event()

    def settle(*args: Any, **kwargs: Any) -> Any:
        inside.set()
        release.wait(30)
        return real_settle(*args, **kwargs)

    monkeypatch.setattr(driver, "settle", settle)
    decided = await api.decide(approval, {"outcome": "approve"}, who="bob")
    assert decided.status_code == 200, decided.text
    await asyncio.to_thread(inside.wait, 30)  # the run's end being written, unstreamed
    monkeypatch.setattr(driver, "settle", real_settle)
    stream = asyncio.create_task(api.call("GET", f"/runs/{thread_id}/events"))
    await _until(lambda: worker.watched(thread_id))
    release.set()
    await api.settled(thread_id)
    await _left(stream)
    messages = (await api.call("GET", f"/runs/{thread_id}/messages")).json()["messages"]
    last = messages[-1]
    assert (last["status"], last["output"]) == ("succeeded", "Order 43 is on its way."), (
        last["status"],
        rt.get(thread_id).status,
        worker.driving(thread_id),
    )
