"""POST /runs/{id}/messages and GET /runs/{id}/messages: follow-ups over HTTP, with the
tenant check, double-texting and each message's usage."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from agentrt import AgentRuntime, Decision, Policy, tool
from agentrt.events import KINDS
from agentrt.service import create_app, issue_key
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests import threads_app
from tests.conftest import FakeClock, Ids
from tests.test_service import Api, parse_sse, problem
from tests.threads_app import OPS, PAYER, STRANGER, effects

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def threads(db: Path, clock: FakeClock) -> Iterator[AgentRuntime]:
    with threads_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        yield rt


@pytest.fixture
async def api(threads: AgentRuntime) -> AsyncIterator[Api]:
    app = create_app(threads, poll_interval=0.01, sweep_every=None, rate_limit="10000/minute")
    keys = {
        "alice": issue_key(threads, OPS),
        "bob": issue_key(threads, PAYER),
        "eve": issue_key(threads, STRANGER),
    }
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agentrt.test"
        ) as client,
    ):
        yield Api(app, client, keys)


async def started(api: Api, goal: str) -> str:
    made = await api.call("POST", "/runs", json={"goal": goal})
    assert made.status_code == 202, made.text
    thread_id: str = made.json()["thread_id"]
    await api.settled(thread_id)
    return thread_id


async def test_a_follow_up_over_http_is_answered_with_the_threads_history(api: Api) -> None:
    thread_id = await started(api, "note 1")
    sent = await api.call("POST", f"/runs/{thread_id}/messages", "bob", json={"message": "note 2"})
    assert sent.status_code == 202, sent.text
    assert sent.headers["location"] == f"/runs/{thread_id}/messages"
    body = sent.json()
    assert (body["index"], body["status"], body["text"], body["principal"]["id"]) == (
        1,
        "queued",
        "note 2",
        "bob",
    )
    await api.settled(thread_id)
    run = (await api.call("GET", f"/runs/{thread_id}")).json()
    assert (run["status"], run["output"], run["message"]) == ("succeeded", "noted 2", 1)
    listed = (await api.call("GET", f"/runs/{thread_id}/messages")).json()["messages"]
    assert [(m["index"], m["status"], m["output"]) for m in listed] == [
        (0, "succeeded", "noted 1"),
        (1, "succeeded", "noted 2"),
    ]
    assert [(m["usage"]["steps"], m["usage"]["tool_calls"]) for m in listed] == [(2, 1), (3, 2)]
    assert sum(m["usage"]["input_tokens"] for m in listed) == run["usage"]["input_tokens"]


async def test_another_tenants_thread_is_a_404_as_an_unknown_one(api: Api) -> None:
    thread_id = await started(api, "hello")
    theirs = await api.call("POST", f"/runs/{thread_id}/messages", "eve", json={"message": "hi"})
    unknown = await api.call("POST", "/runs/nope/messages", "eve", json={"message": "hi"})
    said = problem(theirs, 404, "unknown-run")["detail"].replace(thread_id, "ID")
    assert said == problem(unknown, 404, "unknown-run")["detail"].replace("nope", "ID")
    problem(await api.call("GET", f"/runs/{thread_id}/messages", "eve"), 404, "unknown-run")
    listed = (await api.call("GET", f"/runs/{thread_id}/messages")).json()["messages"]
    assert len(listed) == 1  # nothing kept


async def test_a_message_to_a_busy_thread_is_rejected_enqueued_or_interrupts(
    api: Api, threads: AgentRuntime
) -> None:
    thread_id = await started(api, "pay 500")
    path = f"/runs/{thread_id}/messages"
    refused = await api.call("POST", path, json={"message": "note 1"})
    body = problem(refused, 409, "thread-busy")
    assert "double_texting='enqueue'" in body["detail"]
    queued = await api.call("POST", path, json={"message": "note 1", "double_texting": "enqueue"})
    assert (queued.status_code, queued.json()["status"]) == (202, "queued")
    await api.settled(thread_id)
    assert (await api.call("GET", f"/runs/{thread_id}")).json()["status"] == "awaiting_approval"
    # Interrupting: the gate's request is superseded, then the queue is answered in turn.
    cut = await api.call("POST", path, json={"message": "hello", "double_texting": "interrupt"})
    assert (cut.status_code, cut.json()["index"], cut.json()["interrupt"]) == (202, 2, True)
    await api.settled(thread_id)
    listed = (await api.call("GET", path)).json()["messages"]
    assert [(m["index"], m["status"]) for m in listed] == [
        (0, "interrupted"),
        (1, "succeeded"),
        (2, "succeeded"),
    ]
    assert [m["output"] for m in listed[1:]] == ["noted 1", "you said: hello"]
    assert effects(threads.db) == ["note 1/1"]  # the payment never ran
    queue = (await api.call("GET", "/approvals?status=cancelled", "bob")).json()["approvals"]
    assert [a["comment"] for a in queue] == ["superseded by message #2"]
    assert [a["superseded"] for a in queue] == ["superseded by message #2"]


async def test_a_superseded_request_says_why_it_never_ran_beside_its_decision(
    api: Api, threads: AgentRuntime
) -> None:
    thread_id = await started(api, "pay 500")
    (asked,) = (await api.call("GET", f"/runs/{thread_id}")).json()["pending_approvals"]
    assert asked["superseded"] is None  # pending: nothing superseded it (yet)
    # bob approves, and before anyone carries the run on a message interrupts its gate.
    approve = Decision.approve(asked["id"], by=PAYER, reason="checked with finance")
    await threads.adecide(approve, resume=False)
    path = f"/runs/{thread_id}/messages"
    cut = await api.call("POST", path, json={"message": "hello", "double_texting": "interrupt"})
    assert cut.status_code == 202, cut.text
    await api.settled(thread_id)
    assert effects(threads.db) == []  # the payment never ran
    one = (await api.call("GET", f"/approvals/{asked['id']}", "bob")).json()
    listed = (await api.call("GET", "/approvals?status=cancelled", "bob")).json()["approvals"]
    assert [one] == listed
    said = ("status", "decided_by", "comment", "superseded")
    assert {k: one[k] for k in said} == {
        "status": "cancelled",
        "decided_by": "bob",
        "comment": "checked with finance",  # bob's, kept as he gave it
        "superseded": "superseded by message #1",
    }


async def test_bad_messages_are_refused_by_name(api: Api) -> None:
    thread_id = await started(api, "hello")
    path = f"/runs/{thread_id}/messages"
    problem(await api.call("POST", path, json={"message": ""}), 422)
    problem(await api.call("POST", path, json={"message": "x", "double_texting": "later"}), 422)
    problem(await api.call("POST", path, json={"message": "x", "colour": "red"}), 422)
    loosened = await api.call("POST", path, json={"message": "x", "budget": {"on_exceed": "ask"}})
    assert "on_exceed='ask'" in problem(loosened, 422)["detail"]
    listed = (await api.call("GET", path)).json()["messages"]
    assert len(listed) == 1


async def test_the_review_page_shows_a_threads_messages(threads: AgentRuntime) -> None:
    from tests.test_service_ui import _browser, text

    async with _browser(threads) as page:
        run = threads.start("note 1", principal=OPS)
        threads.send(run.thread_id, "card 4111 1111 1111 1111 hello", principal=PAYER)
        alone = threads.start("hello", principal=OPS)
        await page.sign_in(OPS)
        shown = text(await page.client.get(f"/ui/runs/{run.thread_id}"))
        said = shown.split("Messages", 1)[1].split("Steps", 1)[0]
        assert said.startswith(" olga succeeded note 1 noted 1 steps 2 · tool_calls 1 · ")
        assert " bob succeeded card " in said
        assert "4111 1111 1111 1111" not in shown  # masked as every surface masks content
        # A thread of one message has no list of them.
        assert "Messages" not in text(await page.client.get(f"/ui/runs/{alone.thread_id}"))


async def test_two_follow_ups_sent_at_once_each_answer_with_their_own_message(
    api: Api, threads: AgentRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread_id = await started(api, "hello")
    # Both are kept before either request reads anything back.
    both = threading.Barrier(2, timeout=10)
    add_message = threads.store.add_message

    def kept_together(message: Any, **options: Any) -> Any:
        kept = add_message(message, **options)
        both.wait()
        return kept

    monkeypatch.setattr(threads.store, "add_message", kept_together)
    path = f"/runs/{thread_id}/messages"
    sent = await asyncio.gather(
        api.call("POST", path, json={"message": "first", "double_texting": "enqueue"}),
        api.call("POST", path, "bob", json={"message": "second", "double_texting": "enqueue"}),
    )
    answered = sorted(
        (s.json()["text"], s.json()["principal"]["id"], s.json()["index"]) for s in sent
    )
    assert answered in (
        [("first", "olga", 1), ("second", "bob", 2)],
        [("first", "olga", 2), ("second", "bob", 1)],
    )


def _telling(seen: threading.Event, read: Any) -> Any:
    def looked(thread_id: str) -> Any:
        seen.set()
        return read(thread_id)

    return looked


async def test_join_waits_for_a_message_that_another_process_answers(
    threads: AgentRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API drives no runs (agentrt serve --no-worker): a runtime beside it (a worker's,
    # here the test's) answers the follow-ups, once a join has looked at the thread.
    app = create_app(threads, drive_runs=False, sweep_every=None, poll_interval=0.01)
    seen = threading.Event()
    for name in ("queued_message", "stop_requests"):  # what tells of a message waiting
        monkeypatch.setattr(threads.store, name, _telling(seen, getattr(threads.store, name)))

    def answer(thread_id: str) -> None:
        seen.wait(5)
        threads.resume(thread_id)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agentrt.test"
        ) as client,
    ):
        api = Api(app, client, {"alice": issue_key(threads, OPS)})
        done = threads.start("note 1", principal=OPS)
        gate = threads.start("pay 500", principal=OPS)
        for run, follow_up, how in (
            (done, "hello", "enqueue"),  # a finished thread with a message queued
            (gate, "note 1", "interrupt"),  # a gate a message interrupts
        ):
            path = f"/runs/{run.thread_id}"
            sent = await api.call(
                "POST", f"{path}/messages", json={"message": follow_up, "double_texting": how}
            )
            assert sent.status_code == 202, sent.text
            seen.clear()
            joining = asyncio.create_task(api.call("GET", f"{path}/join?timeout=30"))
            await asyncio.to_thread(answer, run.thread_id)
            joined = (await joining).json()
            assert (joined["status"], joined["message"]) == ("succeeded", 1), joined


async def _first_done(*waits: Any) -> set[asyncio.Future[Any]]:
    """The waits that ended first (each a coroutine or a task)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    done, _ = await asyncio.wait(tasks, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    return done


async def test_the_event_stream_follows_a_follow_up_another_process_answers(
    threads: AgentRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # serve --no-worker: a runtime beside it (an `agentrt worker`, here the test's) answers.
    app = create_app(threads, drive_runs=False, sweep_every=None, poll_interval=0.01)
    seen = threading.Event()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agentrt.test"
        ) as client,
    ):
        api = Api(app, client, {"alice": issue_key(threads, OPS)})
        path = f"/runs/{threads.start('note 1', principal=OPS).thread_id}"
        sent = await api.call("POST", f"{path}/messages", json={"message": "you there?"})
        assert sent.status_code == 202, sent.text
        # What tells the stream a message waits for the thread, which has ended.
        read = threads.store.queued_message
        monkeypatch.setattr(threads.store, "queued_message", _telling(seen, read))
        stream = asyncio.create_task(api.call("GET", f"{path}/events"))
        looked = await _first_done(stream, asyncio.to_thread(seen.wait, 30))
        seen.set()
        assert stream not in looked, "the stream ended with a message waiting for the thread"
        await asyncio.to_thread(threads.resume, path.removeprefix("/runs/"))
        events = parse_sse((await asyncio.wait_for(stream, 30)).text)
    logged = [json.loads(e["data"]) for e in events if e["event"] in KINDS]
    assert [e["type"] for e in logged].count("message") == 1
    assert logged[-1]["data"]["output"] == "you said: you there?"
    statuses = [json.loads(e["data"]) for e in events if e["event"] == "status"]
    assert [(s["status"], s["message"]) for s in statuses][-1] == ("succeeded", 1)
    assert statuses[-1]["output"] == "you said: you there?"


async def test_the_event_stream_follows_a_follow_up_this_server_has_in_hand(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server drives one run at a time, and another run holds the slot for now: the
    # follow-up waits in the worker's hands, and then is answered.
    let_go = threading.Event()

    @tool(effect="read")
    def block(job: str) -> dict[str, Any]:
        """Wait for the test."""
        assert let_go.wait(30)
        return {"done": job}

    def turn(messages: list[BaseMessage]) -> AIMessage | str:
        last = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
        said = str(messages[last].content)
        if said == "block" and not any(isinstance(m, AIMessage) for m in messages[last:]):
            return ai("", tool_call("block", {"job": "x"}))
        return f"you said: {said}"

    rt = AgentRuntime(
        ScriptedChatModel([turn] * 9), tools=[block], policy=Policy.allow_all(), db=db
    )
    first = rt.start("hello", principal=OPS).thread_id
    app = create_app(rt, poll_interval=3600, max_concurrent_runs=1, sweep_every=None)
    worker = app.state.agentrt.worker
    waited = asyncio.Event()
    wait = worker.wait

    async def waiting(thread_id: str | None = None) -> None:
        if thread_id == first:  # the stream waits for the worker to let the thread go
            waited.set()
        await wait(thread_id)

    monkeypatch.setattr(worker, "wait", waiting)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agentrt.test"
        ) as client,
    ):
        api = Api(app, client, {"alice": issue_key(rt, OPS)})
        assert (await api.call("POST", "/runs", json={"goal": "block"})).status_code == 202
        sent = await api.call("POST", f"/runs/{first}/messages", json={"message": "you there?"})
        assert sent.status_code == 202, sent.text
        assert worker.driving(first)  # in this server's hands, waiting for the slot
        stream = asyncio.create_task(api.call("GET", f"/runs/{first}/events"))
        looked = await _first_done(stream, waited.wait())
        assert stream not in looked, "the stream ended with the follow-up in the worker's hands"
        let_go.set()
        events = parse_sse((await asyncio.wait_for(stream, 30)).text)
        await wait()
    rt.close()
    kinds = [e["event"] for e in events]
    assert "message" in kinds, kinds
    assert "token" in kinds  # pushed as it happened, to the stream that watched
    statuses = [json.loads(e["data"]) for e in events if e["event"] == "status"]
    assert (statuses[-1]["status"], statuses[-1]["message"]) == ("succeeded", 1)
    assert statuses[-1]["output"] == "you said: you there?"
