"""What an HTTP caller cannot do: loosen its budget, tell another tenant's thread ids, send
numbers that are not numbers, guess keys or sign in without end, hold streams without end,
or start a run with a goal of any size. And the headers the review page is served with."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentrt import AgentRuntime, Budget, RunStatus
from agentrt.events import KINDS
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import GOAL, OPERATOR
from agentrt.service import create_app, issue_key
from agentrt.service.context import Service
from agentrt.service.schemas import MAX_DEPTH
from agentrt.testing import ScriptedChatModel
from tests import budget_app, threads_app
from tests.conftest import FakeClock, Ids
from tests.test_service import Api, keys_for, parse_sse, problem

pytestmark = pytest.mark.anyio

BASE = "http://agentrt.test"
TEMPLATES = Path(refund_desk.__file__).parent.parent / "service" / "ui" / "templates"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def serving(rt: AgentRuntime, **settings: Any) -> AsyncIterator[Api]:
    """The app on ``rt`` with these settings, and a client calling from 127.0.0.1."""
    app = create_app(
        rt, **{"poll_interval": 0.01, "sweep_every": None, "rate_limit": "10000/minute", **settings}
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
    ):
        yield Api(app, client, keys_for(rt))


@pytest.fixture
async def api(desk: AgentRuntime) -> AsyncIterator[Api]:
    async with serving(desk) as served:
        yield served


def service_of(api: Api) -> Service:
    service: Service = api.app.state.agentrt
    return service


def key_id(key: str) -> str:
    return key.removeprefix("agrt_").split("_")[0]


async def until(condition: Callable[[], bool], what: str) -> None:
    """Until the server has done something it does in the background (bounded)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting until {what}")


# 1. a budget over HTTP only tightens ---------------------------------------------------------


async def test_a_budget_sent_over_http_only_tightens_the_limits_set_above_it(
    db: Path, clock: FakeClock
) -> None:
    rt = refund_desk.build_runtime(
        db,
        clock=clock,
        new_id=Ids(),
        budget=Budget(max_tool_calls=10),
        tenant_budgets={"acme": Budget(max_steps=20)},
    )
    async with serving(rt) as api:

        async def budget_of(asked: dict[str, Any]) -> dict[str, Any]:
            started = await api.call("POST", "/runs", json={"goal": GOAL, "budget": asked})
            assert started.status_code == 202, started.text
            budget: dict[str, Any] = started.json()["budget"]
            return budget

        # Raising is refused silently: the limit in force stays, whatever was asked.
        huge = await budget_of({"max_steps": 10**9, "max_tool_calls": 10**9})
        assert (huge["max_steps"], huge["max_tool_calls"]) == (20, 10)
        # Lowering works, and a limit nobody above set may be set.
        low = await budget_of({"max_steps": 5, "max_tool_calls": 2, "max_active_seconds": 30})
        assert (low["max_steps"], low["max_tool_calls"], low["max_active_seconds"]) == (5, 2, 30)
        assert low["on_exceed"] is None
        assert (await budget_of({"on_exceed": "stop"}))["on_exceed"] == "stop"
        # What the run was given is what it runs under.
        thread_id = (await api.call("GET", "/runs")).json()["runs"][-1]["thread_id"]
        assert rt.get(thread_id).budget.max_steps == 20
    rt.close()


async def test_a_budget_body_cannot_make_a_run_ask_or_choose_who_raises_its_limits(
    api: Api,
) -> None:
    # What alice sent: ask, with herself as the approver, and a limit raised.
    for asked, field in [
        ({"on_exceed": "ask", "approver_role": "operator", "max_tool_calls": 10**9}, "on_exceed"),
        ({"on_exceed": "ask"}, "on_exceed"),
        ({"approver_role": "operator"}, "approver_role"),
    ]:
        refused = problem(
            await api.call("POST", "/runs", json={"goal": GOAL, "budget": asked}),
            422,
            "invalid-request",
        )
        assert f"{field}=" in refused["detail"], refused
    assert api.rt.runs() == []  # nothing was started


# 3. thread ids of other tenants -----------------------------------------------------------


async def test_a_taken_thread_id_answers_the_same_whichever_tenant_holds_it_even_in_a_race(
    api: Api,
) -> None:
    mine = await api.call("POST", "/runs", json={"goal": GOAL, "thread_id": "order-42"})
    assert mine.status_code == 202
    theirs = await api.call(
        "POST", "/runs", json={"goal": GOAL, "thread_id": "order-42"}, who="eve"
    )
    again = await api.call("POST", "/runs", json={"goal": GOAL, "thread_id": "order-42"})
    assert problem(theirs, 409, "thread-id-taken") == problem(again, 409, "thread-id-taken")

    # Two requests racing for one new id, from two tenants: the store's insert takes one and
    # refuses the other, which gets the same answer, never the store's own message (which
    # names the server's file).
    raced = await asyncio.gather(
        api.call("POST", "/runs", json={"goal": GOAL, "thread_id": "order-44"}),
        api.call("POST", "/runs", json={"goal": GOAL, "thread_id": "order-44"}, who="eve"),
    )
    assert sorted(r.status_code for r in raced) == [202, 409]
    (lost,) = [r for r in raced if r.status_code == 409]
    assert problem(lost, 409, "thread-id-taken") == {
        **problem(theirs, 409),
        "detail": problem(theirs, 409)["detail"].replace("order-42", "order-44"),
    }
    assert str(api.rt.db) not in lost.text
    # A new id is taken as before.
    fresh = await api.call("POST", "/runs", json={"goal": GOAL, "thread_id": "order-43"}, who="eve")
    assert fresh.status_code == 202


# 4. numbers that are not numbers, ids that are not ids ------------------------------------


async def test_a_limit_past_64_bits_is_a_422_naming_it_not_a_run_that_fails_later(
    api: Api,
) -> None:
    thread_id, _ = await api.waiting_run()
    more = f"/runs/{thread_id}/messages"
    cases = [
        ("/runs", {"goal": GOAL, "budget": {"max_tokens": 10**20}}, "max_tokens"),
        ("/runs", {"goal": GOAL, "budget": {"max_tool_calls": 2**63}}, "max_tool_calls"),
        ("/runs", {"goal": GOAL, "budget": {"max_steps": 2**64}}, "max_steps"),
        (more, {"message": "and 43?", "budget": {"max_tokens": 10**20}}, "max_tokens"),
    ]
    for path, body, field in cases:
        refused = problem(await api.call("POST", path, json=body), 422, "invalid-request")
        assert (
            f"body.budget.{field}: Input should be less than or equal to 9223372036854775807"
            in (refused["detail"])
        ), refused
    assert len(api.rt.runs()) == 1
    # The largest a run can store is taken (where nothing above it is lower), and the run
    # it starts is checkpointed and goes on.
    largest = {"max_tokens": 2**63 - 1, "max_tool_calls": 2**63 - 1, "max_steps": 2**63 - 1}
    started = await api.call("POST", "/runs", json={"goal": GOAL, "budget": largest})
    assert started.status_code == 202, started.text
    await api.settled(started.json()["thread_id"])
    run = api.rt.get(started.json()["thread_id"])
    assert (run.status, run.budget.max_tokens) == (RunStatus.AWAITING_APPROVAL, 2**63 - 1)


async def test_a_limit_of_the_wrong_type_is_a_422_naming_it_as_budget_would(api: Api) -> None:
    # Lax, true was stored as max_steps=1 (a one-step run) and "5" as 5, where
    # Budget(max_steps=True) and Budget.from_dict({"max_steps": "5"}) are ConfigErrors.
    thread_id, approval = await api.waiting_run()
    more = f"/runs/{thread_id}/messages"
    cases = [
        ("/runs", {"goal": GOAL, "budget": {"max_steps": True}}, "budget.max_steps", "integer"),
        ("/runs", {"goal": GOAL, "budget": {"max_steps": "5"}}, "budget.max_steps", "integer"),
        ("/runs", {"goal": GOAL, "budget": {"max_tokens": 5.0}}, "budget.max_tokens", "integer"),
        (
            "/runs",
            {"goal": GOAL, "budget": {"max_cost_usd": "1.5"}},
            "budget.max_cost_usd",
            "number",
        ),
        ("/runs", {"goal": GOAL, "budget": {"deadline": False}}, "budget.deadline", "number"),
        (
            more,
            {"message": "and 43?", "budget": {"max_tool_calls": True}},
            "budget.max_tool_calls",
            "integer",
        ),
        (f"/approvals/{approval}/decision", {"outcome": "raise_limit", "to": "30"}, "to", "number"),
    ]
    for path, body, field, kind in cases:
        who = "bob" if "approvals" in path else "alice"
        refused = problem(await api.call("POST", path, who, json=body), 422, "invalid-request")
        assert f"body.{field}: Input should be a valid {kind}" in refused["detail"], refused
    assert len(api.rt.runs()) == 1
    assert api.rt.approval(approval).status.value == "pending"
    # A whole number is a number where a number is asked for.
    started = await api.call(
        "POST", "/runs", json={"goal": GOAL, "budget": {"max_active_seconds": 600, "max_steps": 30}}
    )
    assert started.status_code == 202, started.text


async def test_a_deadline_past_the_last_date_is_a_422_naming_it(api: Api) -> None:
    # Taken, 1e300 made the run's review page a 500 and `agentrt show` a traceback.
    for deadline in (1e300, 253_402_300_800):
        refused = problem(
            await api.call("POST", "/runs", json={"goal": GOAL, "budget": {"deadline": deadline}}),
            422,
            "invalid-request",
        )
        assert (
            "body.budget.deadline: Input should be less than or equal to 253402300799"
            in refused["detail"]
        ), refused
    assert api.rt.runs() == []


def nested_json(depth: int) -> str:
    """A JSON array ``depth`` arrays deep."""
    return "[" * depth + "]" * depth


async def test_a_body_nested_past_max_depth_is_a_422_naming_the_limit(api: Api) -> None:
    # 2.4 KB nested 600 deep, well under the size limit: the 422 handler and the Redactor
    # recursed into it past Python's limit, a 500 for any key holder.
    thread_id, approval = await api.waiting_run()
    deep = nested_json(600)
    cases = [
        ("/runs", '{"goal": "x", "bogus": ' + deep + "}", "bogus.0.0.0"),
        ("/runs", '{"goal": "x", "budget": {"max_steps": ' + deep + "}}", "budget.max_steps.0"),
        (f"/runs/{thread_id}/messages", '{"message": "x", "extra": ' + deep + "}", "extra.0.0"),
        (
            f"/approvals/{approval}/decision",
            '{"outcome": "edit", "args": {"order_id": "42", "amount": 89.0, "x": ' + deep + "}}",
            "args.x.0.0",
        ),
    ]
    for path, body, where in cases:
        who = "bob" if "approvals" in path else "alice"
        refused = problem(
            await api.call(
                "POST", path, who, content=body, headers={"Content-Type": "application/json"}
            ),
            422,
            "invalid-request",
        )
        assert refused["detail"].startswith(
            "the request does not match the schema: body: Value error, " + where
        ), refused
        assert (
            f"nests arrays and objects more than {MAX_DEPTH} levels deep, past what a request "
            f"may carry; send it at most {MAX_DEPTH} levels deep" in refused["detail"]
        )
        assert "got" not in refused["errors"][0]  # the body is not echoed back
    assert len(api.rt.runs()) == 1
    assert api.rt.approval(approval).status.value == "pending"
    # At the limit the body is read: here the tool's schema refuses the extra field.
    within = '{"order_id": "42", "amount": 89.0, "x": ' + nested_json(MAX_DEPTH - 2) + "}"
    refused = problem(
        await api.call(
            "POST",
            f"/approvals/{approval}/decision",
            "bob",
            content='{"outcome": "edit", "args": ' + within + "}",
            headers={"Content-Type": "application/json"},
        ),
        422,
        "invalid-decision",
    )
    assert "x: Extra inputs are not permitted" in refused["detail"]


async def test_a_raise_past_64_bits_is_a_422_and_the_run_still_waits(
    db: Path, clock: FakeClock
) -> None:
    asks = Budget(max_tool_calls=2, on_exceed="ask")
    with budget_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        async with serving(rt) as api:
            run = await rt.acreate("ping forever", principal=OPERATOR, budget=asks)
            service_of(api).worker.drive(run.thread_id)
            await api.settled(run.thread_id)
            [request] = rt.get(run.thread_id).pending_approvals
            for to, said in [
                (1e20, "the new max_tool_calls 1e+20 is past the largest limit a run can store"),
                (2**64, "the new max_tool_calls 1.8446744073709552e+19 is past the largest"),
            ]:
                refused = problem(
                    await api.decide(request.id, {"outcome": "raise_limit", "to": to}),
                    422,
                    "invalid-decision",
                )
                assert said in refused["detail"], refused
            assert rt.approval(request.id).status.value == "pending"
            assert rt.get(run.thread_id).status is RunStatus.AWAITING_APPROVAL


async def test_nan_infinity_and_lone_surrogates_in_a_body_are_a_422_not_a_500(api: Api) -> None:
    _, approval = await api.waiting_run()
    json_headers = {"Content-Type": "application/json"}
    cases = [
        ("/runs", '{"goal": "x", "budget": {"max_cost_usd": NaN}}', "budget.max_cost_usd"),
        ("/runs", '{"goal": "x", "budget": {"deadline": Infinity}}', "budget.deadline"),
        ("/runs", '{"goal": NaN}', "goal"),
        (f"/approvals/{approval}/decision", '{"outcome": "raise_limit", "to": -Infinity}', "to"),
        (
            f"/approvals/{approval}/decision",
            '{"outcome": "edit", "args": {"order_id": "42", "amount": -Infinity}}',
            "args.amount",
        ),
    ]
    for path, body, where in cases:
        who = "alice" if path == "/runs" else "bob"
        refused = problem(
            await api.call("POST", path, who, content=body, headers=json_headers),
            422,
            "invalid-request",
        )
        assert f"{where} is NaN or infinite" in refused["detail"], refused
    surrogate = await api.call(
        "POST", "/runs", content='{"goal": "refund \\udc80 now"}', headers=json_headers
    )
    assert "body.goal" in problem(surrogate, 422, "invalid-request")["detail"]
    assert len(api.rt.runs()) == 1
    assert api.rt.approval(approval).status.value == "pending"


async def test_a_last_event_id_this_stream_never_sent_is_a_400(api: Api) -> None:
    thread_id, approval = await api.waiting_run()
    for sent in ("9" * 5000, "abc", "-1", "1e3"):
        refused = problem(
            await api.call("GET", f"/runs/{thread_id}/events", headers={"Last-Event-ID": sent}),
            400,
            "bad-last-event-id",
        )
        assert "reconnect without it" in refused["detail"]
        assert len(refused["detail"]) < 300
    await api.decide(approval, {"outcome": "approve"})
    await api.settled(thread_id)
    blank = await api.call("GET", f"/runs/{thread_id}/events", headers={"Last-Event-ID": " "})
    assert parse_sse(blank.text)[0]["id"] == "0"  # a blank one is no id: from the start


async def test_a_last_event_id_past_the_runs_log_is_a_400_and_one_within_it_resumes(
    api: Api,
) -> None:
    async def events(thread_id: str, last: str) -> httpx.Response:
        return await api.call("GET", f"/runs/{thread_id}/events", headers={"Last-Event-ID": last})

    thread_id, approval = await api.waiting_run()
    at_gate = len(api.rt.events(thread_id))
    await api.decide(approval, {"outcome": "approve"})
    await api.settled(thread_id)
    ended = len(api.rt.events(thread_id))
    assert ended > at_gate
    for past in (str(ended), "999999"):
        refused = problem(await events(thread_id, past), 400, "bad-last-event-id")
        assert refused["detail"].startswith(
            f"Last-Event-ID {past!r} is past the end of run {thread_id!r}'s event log "
            f"(ids 0 to {ended - 1}), so this stream never sent it; reconnect with"
        ), refused
    # The last id the gate's stream sent, before the decision: the rest follows.
    resumed = parse_sse((await events(thread_id, str(at_gate - 1))).text)
    assert [e["id"] for e in resumed if e["event"] != "status"] == [
        str(i) for i in range(at_gate, ended)
    ]
    last = parse_sse((await events(thread_id, str(ended - 1))).text)
    assert [e["event"] for e in last] == ["status"]
    # A run waiting at its gate runs nothing: its log is all the stream could have sent.
    waiting, _ = await api.waiting_run()
    problem(await events(waiting, str(at_gate)), 400, "bad-last-event-id")


async def test_a_last_event_id_past_the_log_is_a_400_while_the_run_runs_elsewhere(
    db: Path, clock: FakeClock
) -> None:
    with threads_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        # A run left running: its caller stopped watching it after its first step.
        events = rt.stream("note 3", principal=threads_app.OPS)
        thread_id = next(e for e in events if e.type == "tool_result").thread_id
        events.close()
        assert rt.get(thread_id).status is RunStatus.RUNNING
        logged = len(rt.events(thread_id))
        async with serving(rt, drive_runs=False) as api:  # an `agentrt worker` drives it
            path = f"/runs/{thread_id}/events"
            for past in (str(logged), "999999"):
                asked = api.call("GET", path, headers={"Last-Event-ID": past})
                refused = problem(await asyncio.wait_for(asked, 5), 400, "bad-last-event-id")
                assert f"(ids 0 to {logged - 1}), so this stream never sent it" in refused["detail"]
            # The last id it did send: the rest follows, as a worker carries the run on.
            asked = api.call("GET", path, headers={"Last-Event-ID": str(logged - 1)})
            resumed, _ = await asyncio.gather(asked, asyncio.to_thread(rt.resume, thread_id))
        ids = [e["id"] for e in parse_sse(resumed.text) if e["event"] in KINDS]
        assert ids == [str(i) for i in range(logged, len(rt.events(thread_id)))]
        assert ids


async def test_the_last_id_a_stream_sent_resumes_it_while_this_server_drives_it(
    db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    first, answer = asyncio.Event(), asyncio.Event()
    asked, streamed = ScriptedChatModel._agenerate, ScriptedChatModel._astream

    async def called() -> None:
        calls.append(len(calls))
        # the run's first model call waits for a watcher, its second for the test
        await (first if len(calls) == 1 else answer).wait()

    async def answered(self: ScriptedChatModel, *args: Any, **kwargs: Any) -> Any:
        await called()
        return await asked(self, *args, **kwargs)

    async def answered_streamed(self: ScriptedChatModel, *args: Any, **kwargs: Any) -> Any:
        await called()  # watched: the model's answer is streamed
        async for chunk in streamed(self, *args, **kwargs):
            yield chunk

    monkeypatch.setattr(ScriptedChatModel, "_agenerate", answered)
    monkeypatch.setattr(ScriptedChatModel, "_astream", answered_streamed)
    with threads_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        async with serving(rt) as api:
            worker = service_of(api).worker
            started = await api.call("POST", "/runs", json={"goal": "note 1"})
            thread_id = started.json()["thread_id"]
            path = f"/runs/{thread_id}/events"
            while not calls:
                await asyncio.sleep(0)
            # Begun with no one watching; a watcher has it go on streamed, pushed to it.
            watching = asyncio.create_task(api.call("GET", path))
            while not worker.watched(thread_id):
                await asyncio.sleep(0)
            first.set()
            while len(calls) < 2:
                await asyncio.sleep(0)
            told = worker.logged(thread_id)  # what a stream watching it was pushed
            assert told == len(rt.events(thread_id)) > 1
            past = await api.call("GET", path, headers={"Last-Event-ID": str(told)})
            problem(past, 400, "bad-last-event-id")
            # A node's entries are pushed as it ends, a moment before the saver has them: a
            # look at the checkpoints then finds one fewer, and the id is still one sent.
            events, looks = rt.events, iter([True])

            def read(thread_id: str) -> list[Any]:
                return events(thread_id)[: -1 if next(looks, False) else None]

            monkeypatch.setattr(rt, "events", read)
            headers = {"Last-Event-ID": str(told - 1)}
            stream = asyncio.create_task(api.call("GET", path, headers=headers))
            while not worker.watched(thread_id):
                await asyncio.sleep(0)
            answer.set()
            resumed = await asyncio.wait_for(stream, 30)
            assert (await asyncio.wait_for(watching, 30)).status_code == 200
        assert resumed.status_code == 200, resumed.text
        ids = [e["id"] for e in parse_sse(resumed.text) if e["event"] in KINDS]
        assert ids == [str(i) for i in range(told, len(rt.events(thread_id)))]
        assert ids
        assert rt.get(thread_id).status is RunStatus.SUCCEEDED


# 5. rates per client address, streams per key, the event stream's work, page headers ---------


async def test_failed_authentication_is_limited_per_client_address(desk: AgentRuntime) -> None:
    app = create_app(desk, sweep_every=None, auth_failure_limit="3/minute")
    alice = issue_key(desk, OPERATOR)

    def client(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 5000))
        return httpx.AsyncClient(transport=transport, base_url=BASE)

    async with client("10.0.0.1") as guesser, client("10.0.0.2") as other:
        failed = [
            (await guesser.get("/runs", headers=headers)).status_code
            for headers in (
                {"Authorization": "Bearer agrt_guess_1"},
                {},
                {"X-API-Key": "agrt_guess_2"},
            )
        ]
        blocked = await guesser.get("/runs", headers={"Authorization": "Bearer agrt_guess_3"})
        # Past the limit even a right key is not looked at: a right guess looks like the rest.
        right = await guesser.get("/runs", headers={"Authorization": f"Bearer {alice}"})
        elsewhere = await other.get("/runs", headers={"Authorization": f"Bearer {alice}"})
    assert failed == [401, 401, 401]
    for response in (blocked, right):
        body = problem(response, 429, "rate-limited")
        assert "failed to authenticate too often (3/minute)" in body["detail"]
        assert 1 <= int(response.headers["retry-after"]) <= 60
    assert elsewhere.status_code == 200


async def test_sign_in_posts_are_limited_per_client_address(desk: AgentRuntime) -> None:
    app = create_app(desk, sweep_every=None, login_limit="2/minute")
    bob = issue_key(desk, refund_desk.APPROVER)

    def browser(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 5000))
        return httpx.AsyncClient(transport=transport, base_url=BASE, headers={"Origin": BASE})

    async with browser("10.0.0.1") as one, browser("10.0.0.2") as two:
        answers = [
            (await one.post("/ui/login", data={"key": key})).status_code
            for key in ("agrt_wrong_key", bob, bob)
        ]
        last = await one.post("/ui/login", data={"key": bob})
        other = await two.post("/ui/login", data={"key": bob})
    assert answers == [401, 303, 429]
    assert last.status_code == 429
    assert int(last.headers["retry-after"]) >= 1
    assert "sent the sign-in form too often (2/minute)" in last.text
    assert other.status_code == 303


async def test_a_key_holds_at_most_its_number_of_event_streams_at_once(desk: AgentRuntime) -> None:
    async with serving(desk, max_streams_per_key=2) as api:
        service = service_of(api)
        alice, bob = key_id(api.keys["alice"]), key_id(api.keys["bob"])
        thread_id, approval = await api.waiting_run()
        path = f"/runs/{thread_id}/events"
        streams = [asyncio.create_task(api.call("GET", path)) for _ in range(2)]
        await until(lambda: service.streams.open(alice) == 2, "alice holds two streams")
        third = await api.call("GET", path)
        refused = problem(third, 429, "too-many-streams")
        assert "already has 2 event streams open" in refused["detail"]
        assert refused["retry_after"] == int(third.headers["retry-after"]) >= 1
        # Another key has streams of its own.
        bobs = asyncio.create_task(api.call("GET", path, who="bob"))
        await until(lambda: service.streams.open(bob) == 1, "bob holds a stream")
        await api.decide(approval, {"outcome": "approve"})
        ended = await asyncio.gather(*streams, bobs)
        assert {r.status_code for r in ended} == {200}
        # A stream that ended gives its slot back.
        assert (service.streams.open(alice), service.streams.open(bob)) == (0, 0)
        assert (await api.call("GET", path)).status_code == 200


async def test_an_event_stream_reads_the_run_log_only_when_the_run_has_moved(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread_id, approval = await api.waiting_run()
    rt = api.rt
    reads = {"events": 0, "get": 0}

    def counted(name: str) -> Callable[[str], Any]:
        real = getattr(rt, name)

        def call(thread: str) -> Any:
            reads[name] += 1
            return real(thread)

        return call

    monkeypatch.setattr(rt, "events", counted("events"))
    monkeypatch.setattr(rt, "get", counted("get"))
    stream = asyncio.create_task(api.call("GET", f"/runs/{thread_id}/events"))
    # While the run waits at its gate the stream looks at it again and again...
    await until(lambda: reads["get"] >= 10, "the stream has looked ten times")
    # ...but reads (and sends) its log, which costs as much as the run is big, once.
    assert reads["events"] == 1
    await api.decide(approval, {"outcome": "approve"})
    events = parse_sse((await stream).text)
    assert events[-1]["event"] == "status"
    logged = [e for e in events if e["event"] in KINDS]  # the live kinds come without an id
    assert logged[-1]["event"] == "finish"
    assert [e["id"] for e in logged] == [str(i) for i in range(len(rt.events(thread_id)))]


async def test_the_review_page_is_sent_with_a_strict_content_security_policy(api: Api) -> None:
    for path in ("/ui/login", "/ui/static/ui.js", "/ui"):
        answer = await api.client.get(path)
        csp = answer.headers["content-security-policy"]
        assert csp.startswith("default-src 'self'; script-src 'self'; style-src 'self'"), path
        assert "frame-ancestors 'none'" in csp
        assert "unsafe" not in csp  # no 'unsafe-inline', no 'unsafe-eval'
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
    api_answer = await api.call("GET", "/runs")
    assert api_answer.headers["x-content-type-options"] == "nosniff"
    # The policy runs no inline script: the pages have none, nor inline handlers or styles.
    for template in TEMPLATES.glob("*.html"):
        html = template.read_text(encoding="utf-8")
        assert not re.search(r"\son[a-z]+\s*=", html), template.name
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), template.name
        assert not re.search(r"\sstyle\s*=|<style", html), template.name


# 6. the goal's size ---------------------------------------------------------------------------


async def test_a_goal_over_the_limit_is_a_422_that_says_so(desk: AgentRuntime) -> None:
    async with serving(desk, max_goal_bytes=100) as api:
        refused = problem(
            await api.call("POST", "/runs", json={"goal": "é" * 51}), 422, "goal-too-long"
        )
        assert refused["detail"].startswith(
            "the goal is 102 bytes (UTF-8), over this service's limit of 100;"
        )
        assert refused["max_goal_bytes"] == 100
        fits = await api.call("POST", "/runs", json={"goal": "é" * 50})
        assert fits.status_code == 202
        assert [r.goal for r in desk.runs()] == ["é" * 50]
    async with serving(desk) as api:  # 64 KiB unless told otherwise
        long = await api.call("POST", "/runs", json={"goal": "Refund order 42. " + "x" * 40_000})
        assert long.status_code == 202, long.text
        await api.settled(long.json()["thread_id"])
        too_long = await api.call("POST", "/runs", json={"goal": "x" * (64 * 1024 + 1)})
        assert "over this service's limit of 65536" in problem(too_long, 422)["detail"]
    assert desk.get(long.json()["thread_id"]).status in (
        RunStatus.AWAITING_APPROVAL,
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
    )


def test_create_app_refuses_limits_it_cannot_honour(desk: AgentRuntime) -> None:
    from agentrt.errors import ConfigError

    for settings, name in [
        ({"auth_failure_limit": "often"}, "auth_failure_limit 'often'"),
        ({"login_limit": "10 a minute"}, "login_limit '10 a minute'"),
        ({"max_streams_per_key": 0}, "max_streams_per_key"),
        ({"max_goal_bytes": -1}, "max_goal_bytes"),
    ]:
        with pytest.raises(ConfigError, match=name):
            create_app(desk, **settings)
