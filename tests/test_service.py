"""The HTTP API over httpx's ASGI transport: every endpoint, and every refusal it makes."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from click.testing import Result
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from typer.testing import CliRunner

from agentrt import AgentRuntime, Decision, Policy, Principal, RunStatus, tool
from agentrt.cli import app
from agentrt.cli.common import DEMO_APP
from agentrt.errors import ConfigError
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from agentrt.runs.apps import may_drive
from agentrt.service import create_app, issue_key, routes
from agentrt.service.app import sweep_once
from agentrt.service.auth import Authenticating
from agentrt.store.sqlite.schema import SCHEMA_VERSION
from agentrt.testing import ScriptedChatModel
from tests import gate_app
from tests.conftest import FakeClock

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0
PROBLEM = "application/problem+json"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Api:
    """A client of one app, calling as one of the named keys."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, keys: dict[str, str]) -> None:
        self.app = app
        self.client = client
        self.keys = keys

    @property
    def rt(self) -> AgentRuntime:
        runtime: AgentRuntime = self.app.state.agentrt.runtime
        return runtime

    async def call(
        self, method: str, path: str, who: str | None = "alice", **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.keys[who]}"
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def decide(
        self, approval_id: str, decision: dict[str, Any], who: str = "bob"
    ) -> httpx.Response:
        """POST a decision on ``approval_id`` as ``who``."""
        return await self.call("POST", f"/approvals/{approval_id}/decision", who, json=decision)

    async def settled(self, thread_id: str) -> None:
        """Until the background worker has let go of the run."""
        await self.app.state.agentrt.worker.wait(thread_id)

    async def waiting_run(self) -> tuple[str, str]:
        """Start the demo refund over HTTP; its thread id and the approval it waits for."""
        started = await self.call("POST", "/runs", json={"goal": GOAL})
        assert started.status_code == 202, started.text
        thread_id = started.json()["thread_id"]
        await self.settled(thread_id)
        run = (await self.call("GET", f"/runs/{thread_id}")).json()
        assert run["status"] == "awaiting_approval", run
        return thread_id, run["pending_approvals"][0]["id"]


def keys_for(rt: AgentRuntime) -> dict[str, str]:
    return {
        "alice": issue_key(rt, OPERATOR),
        "bob": issue_key(rt, APPROVER),
        # alice again, now also a refund approver: four eyes still stop her own runs.
        "alice-approver": issue_key(
            rt, Principal("alice", roles=["operator", "refund-approver"], tenant="acme")
        ),
        # Another tenant's approver, with every role and scope alice's runs need.
        "eve": issue_key(
            rt,
            Principal(
                "eve",
                roles=["operator", "refund-approver"],
                tenant="globex",
                scopes=OPERATOR.scopes,
            ),
        ),
    }


@pytest.fixture
async def api(desk: AgentRuntime) -> AsyncIterator[Api]:
    app = create_app(desk, poll_interval=0.01, sweep_every=None, rate_limit="10000/minute")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agentrt.test"
        ) as client,
    ):
        yield Api(app, client, keys_for(desk))


def problem(response: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    """The response's problem details, checked to be one with this status (and type)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    if kind is not None:
        assert body["type"] == f"urn:agentrt:problem:{kind}", body
    return body


# the happy path ---------------------------------------------------------------------------


async def test_a_run_started_over_http_waits_is_approved_over_http_and_finishes(
    api: Api,
) -> None:
    started = await api.call("POST", "/runs", json={"goal": GOAL})
    assert started.status_code == 202
    body = started.json()
    thread_id = body["thread_id"]
    assert body["status"] == "pending"  # answered before any model was asked
    assert body["principal"]["id"] == "alice"
    assert started.headers["location"] == f"/runs/{thread_id}"

    await api.settled(thread_id)
    run = (await api.call("GET", f"/runs/{thread_id}")).json()
    assert run["status"] == "awaiting_approval"
    assert not run["driving"]
    (request,) = run["pending_approvals"]
    assert request["tool"] == "issue_refund"
    assert request["args"] == {"order_id": "42", "amount": 89.0}
    assert request["rule_id"] == "large-refunds"
    assert request["required_role"] == "refund-approver"

    queue = (await api.call("GET", "/approvals", who="bob")).json()
    assert [a["id"] for a in queue["approvals"]] == [request["id"]]
    one = (await api.call("GET", f"/approvals/{request['id']}", who="bob")).json()
    assert one["reason"] == "Refunds over $50 need a refund approver."

    decided = await api.decide(request["id"], {"outcome": "approve"}, who="bob")
    assert decided.status_code == 200, decided.text
    assert decided.json()["approval"]["status"] == "approved"
    assert decided.json()["approval"]["decided_by"] == "bob"

    await api.settled(thread_id)
    final = (await api.call("GET", f"/runs/{thread_id}")).json()
    assert final["status"] == "succeeded"
    assert "Refunded $89.00" in final["output"]
    assert final["usage"]["tool_calls"] == 4
    listed = (await api.call("GET", "/runs", params={"status": "succeeded"})).json()
    assert [r["thread_id"] for r in listed["runs"]] == [thread_id]
    assert (await api.call("GET", "/approvals", who="bob")).json()["approvals"] == []


async def test_a_reject_and_an_edit_over_http_reach_the_run(api: Api, db: Path) -> None:
    thread_id, approval = await api.waiting_run()
    edited = await api.decide(
        approval, {"outcome": "edit", "args": {"order_id": "42", "amount": 40.0}}, who="bob"
    )
    assert edited.status_code == 200, edited.text
    await api.settled(thread_id)
    run = api.rt.get(thread_id)
    assert run.status is RunStatus.SUCCEEDED
    assert refunds(db) == [("42", 40.0)]

    second, approval = await api.waiting_run()
    rejected = await api.decide(
        approval, {"outcome": "reject", "reason": "the customer kept the blender"}, who="bob"
    )
    assert rejected.status_code == 200
    await api.settled(second)
    assert api.rt.get(second).status is RunStatus.SUCCEEDED
    assert refunds(db) == [("42", 40.0)]  # nothing more was paid


async def test_events_stream_the_log_and_the_status_and_resume_after_last_event_id(
    api: Api,
) -> None:
    thread_id, approval = await api.waiting_run()
    await api.decide(approval, {"outcome": "approve"}, who="bob")
    await api.settled(thread_id)

    streamed = await api.call("GET", f"/runs/{thread_id}/events")
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(streamed.text)
    log = api.rt.events(thread_id)
    logged = [e for e in events if e["event"] != "status"]
    assert [e["event"] for e in logged] == [e["type"] for e in log]
    assert [e["id"] for e in logged] == [str(i) for i in range(len(log))]
    assert {"plan", "policy", "approval", "observation", "finish"} <= {e["event"] for e in logged}
    assert events[-1]["event"] == "status"
    assert json.loads(events[-1]["data"])["status"] == "succeeded"

    again = await api.call(
        "GET", f"/runs/{thread_id}/events", headers={"Last-Event-ID": str(len(log) - 2)}
    )
    resumed = [e for e in parse_sse(again.text) if e["event"] != "status"]
    assert [e["id"] for e in resumed] == [str(len(log) - 1)]


async def test_the_event_stream_follows_a_run_that_another_process_decides(
    api: Api, db: Path
) -> None:
    thread_id, approval = await api.waiting_run()
    stream = asyncio.create_task(api.call("GET", f"/runs/{thread_id}/events"))
    # The approver uses the command line, in a process of its own, on the same file.
    decided = await asyncio.to_thread(
        cli, db, "approve", approval, "--as", "bob", "--role", "refund-approver", "--tenant", "acme"
    )
    assert decided.returncode == 0, decided.stderr
    events = parse_sse((await asyncio.wait_for(stream, 60)).text)
    statuses = [json.loads(e["data"])["status"] for e in events if e["event"] == "status"]
    assert statuses[0] == "awaiting_approval"
    assert statuses[-1] == "succeeded"
    assert "finish" in [e["event"] for e in events]
    over_http = (await api.call("GET", f"/runs/{thread_id}")).json()
    assert over_http["status"] == "succeeded"


async def test_a_decision_over_http_is_seen_from_the_command_line(api: Api, db: Path) -> None:
    thread_id, approval = await api.waiting_run()
    await api.decide(approval, {"outcome": "approve"}, who="bob")
    await api.settled(thread_id)
    shown = await asyncio.to_thread(cli, db, "show", thread_id)
    assert shown.returncode == 0, shown.stderr
    assert "succeeded" in shown.stdout
    queue = await asyncio.to_thread(cli, db, "approvals", "--status", "approved")
    assert approval in queue.stdout


async def test_trace_gives_the_spans_of_the_run(api: Api) -> None:
    thread_id, _ = await api.waiting_run()
    trace = (await api.call("GET", f"/runs/{thread_id}/trace")).json()
    assert trace["thread_id"] == thread_id
    kinds = {s["kind"] for s in walk(trace["spans"])}
    assert {"agent.run", "agent.step", "llm.call", "tool.call"} <= kinds


async def test_resume_carries_on_a_run_a_dead_process_left(api: Api) -> None:
    stopped = api.rt.create("Look up order 43.", principal=OPERATOR)  # never driven
    resumed = await api.call("POST", f"/runs/{stopped.thread_id}/resume")
    assert resumed.status_code == 202
    await api.settled(stopped.thread_id)
    assert api.rt.get(stopped.thread_id).status is not RunStatus.PENDING


async def test_on_startup_the_service_carries_on_runs_a_process_left(desk: AgentRuntime) -> None:
    never_started = desk.create(GOAL, principal=OPERATOR)
    decided = desk.start(GOAL, principal=OPERATOR)
    assert decided.pending_approval is not None
    # Decided, but the process that recorded it died before carrying the run on.
    desk.decide(Decision.approve(decided.pending_approval.id, by=APPROVER), resume=False)
    waiting = desk.start(GOAL, principal=OPERATOR)

    app = create_app(desk, sweep_every=None)
    async with app.router.lifespan_context(app):
        await app.state.agentrt.worker.wait()
    assert desk.get(never_started.thread_id).status is RunStatus.AWAITING_APPROVAL
    assert desk.get(decided.thread_id).status is RunStatus.SUCCEEDED
    assert desk.get(waiting.thread_id).status is RunStatus.AWAITING_APPROVAL
    assert desk.store.unfinished_runs() == []


async def test_the_service_drives_no_run_another_app_made(desk: AgentRuntime, db: Path) -> None:
    # Two apps on one database (agentrt.runs.apps): the service carries on its own app's
    # runs, and leaves to another app's workers a run that needs a tool this app has not,
    # at start and when asked to resume it: driven here, it would go on with this app's
    # model, tools and policy.
    @tool(effect="write")
    def shred(doc: str) -> str:
        """Shred a document."""
        return doc

    other = AgentRuntime(
        ScriptedChatModel(["done"]), tools=[shred], policy=Policy.allow_all(), db=db
    )
    with other:
        theirs = other.create("Look up order 43.", principal=OPERATOR).thread_id
    mine = desk.create(GOAL, principal=OPERATOR).thread_id
    made = desk.store.get_run(theirs)
    assert made is not None
    assert (made.app, made.tools) == (None, ("shred",))
    assert not may_drive(desk.app, made)
    app = create_app(desk, sweep_every=None)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agentrt.test"
        ) as client,
    ):
        api = Api(app, client, keys_for(desk))
        await app.state.agentrt.worker.wait()
        assert (await api.call("POST", f"/runs/{theirs}/resume")).status_code == 202
        await api.settled(theirs)
    assert desk.get(mine).status is RunStatus.AWAITING_APPROVAL
    run = desk.get(theirs)
    assert (run.status, desk.store.lease_of(theirs)) == (RunStatus.PENDING, None)


async def test_the_sweep_expires_overdue_approvals_and_carries_their_runs_on(
    api: Api, clock: FakeClock
) -> None:
    thread_id, approval = await api.waiting_run()
    assert await sweep_once(api.app.state.agentrt) == 0
    clock.advance(4 * DAY)  # the rule gives a refund approver 3 days
    assert await sweep_once(api.app.state.agentrt) == 1
    await api.settled(thread_id)
    assert (await api.call("GET", f"/approvals/{approval}")).json()["status"] == "expired"
    run = (await api.call("GET", f"/runs/{thread_id}")).json()
    assert run["status"] == "succeeded"
    assert run["output"].startswith("I did not refund")


async def test_healthz_and_the_openapi_schema_need_no_key(api: Api) -> None:
    health = await api.call("GET", "/healthz", who=None)
    assert health.json() == {
        "status": "ok",
        "schema_version": SCHEMA_VERSION,
        "runs_in_hand": 0,
    }
    schema = (await api.call("GET", "/openapi.json", who=None)).json()
    assert {
        "/runs",
        "/runs/{thread_id}",
        "/runs/{thread_id}/resume",
        "/runs/{thread_id}/trace",
        "/runs/{thread_id}/events",
        "/approvals",
        "/approvals/{approval_id}/decision",
        "/healthz",
    } <= set(schema["paths"])
    assert set(schema["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    # Swagger UI would load its scripts from a CDN; the service runs on closed networks.
    problem(await api.call("GET", "/docs", who=None), 404, "not-found")


async def test_healthz_says_the_database_does_not_answer_without_its_error_text(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # /healthz needs no key: a store's error may name the database's URL, password in.
    def down(rt: AgentRuntime) -> int:
        raise ConnectionError("cannot reach postgresql://agentrt:hunter2@db.internal/agentrt")

    monkeypatch.setattr(AgentRuntime, "schema_version", property(down))
    with caplog.at_level(logging.WARNING, logger="agentrt.service"):
        body = problem(await api.call("GET", "/healthz", who=None), 503, "unavailable")
    assert "hunter2" not in json.dumps(body)
    assert "db.internal" not in json.dumps(body)
    assert "ConnectionError" in body["detail"], body
    # The operator still finds why in the server's log.
    (logged,) = [r for r in caplog.records if "/healthz" in r.getMessage()]
    assert "ConnectionError" in f"{logged.getMessage()} {logged.exc_text}"


@pytest.mark.parametrize("thread_id", ["acme/42", "50%2Foff", "ticket#42"])
async def test_a_run_whose_thread_id_holds_a_slash_is_read_with_the_slash_encoded(
    api: Api, thread_id: str
) -> None:
    # POST /runs takes a plain id only, but rt.start takes any (an app's own "acme/42"):
    # a server decodes %2F before routing, and /runs/{id} is one segment.
    await api.rt.acreate(GOAL, principal=OPERATOR, thread_id=thread_id)
    api.app.state.agentrt.worker.drive(thread_id)
    await api.settled(thread_id)
    at = f"/runs/{quote(thread_id, safe='')}"
    found = await api.call("GET", at)
    assert found.status_code == 200, found.text
    assert found.json()["thread_id"] == thread_id
    for more in ("/trace", "/messages", "/artifacts", "/join?timeout=1"):
        assert (await api.call("GET", at + more)).status_code == 200, more
    # Another tenant's key: the same 404 as for an id that does not exist.
    refused = problem(await api.call("GET", at, who="eve"), 404, "unknown-run")
    assert repr(thread_id) in refused["detail"]
    # The slash unencoded is another address (no run "acme" has a "42").
    assert (await api.call("GET", f"/runs/{thread_id}")).status_code == 404


# refusals ---------------------------------------------------------------------------------


async def test_401_without_a_key_with_an_unknown_key_and_with_a_revoked_key(api: Api) -> None:
    missing = problem(await api.call("GET", "/runs", who=None), 401, "unauthenticated")
    assert "agentrt keys create" in missing["detail"]
    wrong = await api.client.get("/runs", headers={"Authorization": "Bearer agrt_nope_nope"})
    assert "unknown or revoked" in problem(wrong, 401)["detail"]
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    assert (await api.call("GET", "/runs", who="bob")).status_code == 200
    (bob,) = [k for k in api.rt.keys.list() if k.principal.id == "bob"]
    api.rt.keys.revoke(bob.key_id)
    problem(await api.call("GET", "/runs", who="bob"), 401, "unauthenticated")
    # X-API-Key works as well as the Authorization header.
    other = await api.client.get("/runs", headers={"X-API-Key": api.keys["alice"]})
    assert other.status_code == 200


async def test_403_for_an_approver_without_the_role_and_for_self_approval(api: Api) -> None:
    thread_id, approval = await api.waiting_run()
    role = problem(
        await api.decide(approval, {"outcome": "approve"}, who="alice"),
        403,
        "not-authorized",
    )
    assert "refund-approver" in role["detail"]
    self_approval = problem(
        await api.decide(approval, {"outcome": "approve"}, who="alice-approver"),
        403,
        "not-authorized",
    )
    assert "four" in self_approval["detail"] or "own" in self_approval["detail"]
    # Refused decisions changed nothing.
    assert api.rt.approval(approval).status.value == "pending"
    assert api.rt.get(thread_id).status is RunStatus.AWAITING_APPROVAL


async def test_404_for_another_tenants_run_and_approval_as_for_ids_that_do_not_exist(
    api: Api,
) -> None:
    thread_id, approval = await api.waiting_run()
    for method, path, body in [
        ("GET", f"/runs/{thread_id}", None),
        ("POST", f"/runs/{thread_id}/resume", None),
        ("GET", f"/runs/{thread_id}/trace", None),
        ("GET", f"/runs/{thread_id}/events", None),
        ("GET", f"/approvals/{approval}", None),
        ("POST", f"/approvals/{approval}/decision", {"outcome": "approve"}),
    ]:
        theirs = problem(await api.call(method, path, who="eve", json=body), 404)
        unknown_path = path.replace(thread_id, "no-such-run").replace(approval, "apr_nope")
        nothing = problem(await api.call(method, unknown_path, who="eve", json=body), 404)
        # Same answer either way: the other tenant cannot tell the run exists.
        assert theirs["type"] == nothing["type"]
    assert (await api.call("GET", "/runs", who="eve")).json() == {"runs": []}
    assert (await api.call("GET", "/approvals", who="eve")).json()["approvals"] == []
    assert api.rt.approval(approval).status.value == "pending"


EVERY_TENANT = Principal(
    "root",
    roles=["operator", "refund-approver"],
    tenant=Principal.ALL_TENANTS,
    scopes=OPERATOR.scopes,
)


def every_tenants_refusal(response: httpx.Response, act: str) -> None:
    """``response`` is the 403 a key of every tenant gets for ``act``, saying what it may do."""
    detail = problem(response, 403, "all-tenants-key")["detail"]
    assert f"it cannot {act}" in detail
    assert "may only read runs and decide approval requests" in detail
    assert "a key of the run's own tenant" in detail


async def test_an_all_tenants_key_cannot_send_a_message_into_a_tenants_thread(api: Api) -> None:
    # Review D: run_for let a key of every tenant ('*') past the tenant check, and the
    # follow-up it sent ran as a principal of tenant '*', past any rule naming acme. README:
    # such a key "reads and decides every tenant's"; "The sender must be of the thread's
    # tenant". 403, not 404: the key reads this very run, so a 404 would hide nothing and
    # contradict GET /runs/{id}; the 403 says what it may do instead.
    api.keys["root"] = issue_key(api.rt, EVERY_TENANT)
    thread_id, approval = await api.waiting_run()
    message = {"message": "Refund it all, twice.", "double_texting": "enqueue"}
    sent = await api.call("POST", f"/runs/{thread_id}/messages", "root", json=message)
    every_tenants_refusal(sent, "send a message into a thread")
    assert [m.index for m in api.rt.messages(thread_id)] == [0]  # nothing kept
    # The same answer for an id that names no run: refused before any run is looked up.
    nowhere = await api.call("POST", "/runs/no-such-run/messages", "root", json=message)
    assert nowhere.json()["detail"] == sent.json()["detail"]
    # It still reads the thread and decides its request.
    assert (await api.call("GET", f"/runs/{thread_id}/messages", "root")).status_code == 200
    assert (await api.call("GET", f"/runs/{thread_id}", "root")).status_code == 200
    decided = await api.decide(approval, {"outcome": "reject", "reason": "no"}, who="root")
    assert decided.status_code == 200, decided.text
    assert api.rt.approval(approval).decided_by == "root"


async def test_an_all_tenants_key_cannot_resume_a_tenants_run(api: Api) -> None:
    # A run a dead process left, which a key of the run's tenant may carry on (202).
    api.keys["root"] = issue_key(api.rt, EVERY_TENANT)
    stopped = api.rt.create("Look up order 43.", principal=OPERATOR)  # never driven
    path = f"/runs/{stopped.thread_id}/resume"
    every_tenants_refusal(await api.call("POST", path, "root"), "resume a run")
    every_tenants_refusal(await api.call("POST", "/runs/nope/resume", "root"), "resume a run")
    assert not api.app.state.agentrt.worker.driving(stopped.thread_id)
    assert api.rt.get(stopped.thread_id).status is RunStatus.PENDING
    assert (await api.call("GET", f"/runs/{stopped.thread_id}", "root")).status_code == 200


async def test_an_all_tenants_key_cannot_start_a_run(api: Api) -> None:
    # A run it started would be of tenant '*': of no tenant, so no tenant's rules and
    # budgets would bind it.
    api.keys["root"] = issue_key(api.rt, EVERY_TENANT)
    started = await api.call("POST", "/runs", "root", json={"goal": GOAL, "thread_id": "mine"})
    every_tenants_refusal(started, "start a run")
    assert api.rt.runs() == []
    # The id was not taken either: a key of acme may have it.
    made = await api.call("POST", "/runs", json={"goal": GOAL, "thread_id": "mine"})
    assert made.status_code == 202, made.text
    await api.settled("mine")


async def test_409_for_a_second_decision_a_finished_run_and_a_taken_thread_id(
    api: Api,
) -> None:
    thread_id, approval = await api.waiting_run()
    waiting = problem(await api.call("POST", f"/runs/{thread_id}/resume"), 409, "awaiting-approval")
    assert approval in waiting["detail"]
    await api.decide(approval, {"outcome": "approve"}, who="bob")
    again = problem(
        await api.decide(approval, {"outcome": "reject", "reason": "changed my mind"}, who="bob"),
        409,
        "already-decided",
    )
    assert "bob" in again["detail"]
    await api.settled(thread_id)
    problem(await api.call("POST", f"/runs/{thread_id}/resume"), 409, "run-ended")
    taken = await api.call("POST", "/runs", json={"goal": GOAL, "thread_id": thread_id})
    assert thread_id in problem(taken, 409, "thread-id-taken")["detail"]


async def test_413_for_a_body_over_the_limit_declared_or_streamed(desk: AgentRuntime) -> None:
    app = create_app(desk, max_body_bytes=1000, sweep_every=None)
    key = issue_key(desk, OPERATOR)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 200

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://agentrt.test"
    ) as client:
        declared = await client.post("/runs", content=b" " * 1001, headers=headers)
        streamed = await client.post("/runs", content=chunks(), headers=headers)
        fits = await client.post("/runs", json={"goal": "Look up order 43."}, headers=headers)
    for response in (declared, streamed):
        assert "1000 bytes" in problem(response, 413, "body-too-large")["detail"]
    assert fits.status_code == 202
    assert [r.goal for r in desk.runs()] == ["Look up order 43."]


async def test_422_names_what_is_wrong_and_changes_nothing(api: Api) -> None:
    thread_id, approval = await api.waiting_run()
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", "/runs", {"goal": ""}, "body.goal"),
        ("POST", "/runs", {"goal": "x", "budgett": {}}, "body.budgett"),
        ("POST", "/runs", {"goal": "x", "budget": {"max_steps": "many"}}, "body.budget.max_steps"),
        ("POST", "/runs", {"goal": "x", "thread_id": "has spaces"}, "body.thread_id"),
        ("GET", "/runs?status=sleeping", None, "query.status"),
        ("GET", "/approvals?limit=0", None, "query.limit"),
        ("POST", f"/approvals/{approval}/decision", {"outcome": "maybe"}, "body.outcome"),
    ]
    for method, path, body, where in cases:
        refused = problem(
            await api.call(method, path, who="bob", json=body), 422, "invalid-request"
        )
        assert where in [e["where"] for e in refused["errors"]], refused
    no_reason = problem(
        await api.decide(approval, {"outcome": "reject"}, who="bob"),
        422,
        "invalid-decision",
    )
    assert "reason" in no_reason["detail"]
    bad_edit = problem(
        await api.decide(
            approval, {"outcome": "edit", "args": {"order_id": "42", "amount": "lots"}}, who="bob"
        ),
        422,
        "invalid-decision",
    )
    assert "amount" in bad_edit["detail"]
    raise_on_action = problem(
        await api.decide(approval, {"outcome": "raise_limit", "to": 9}, who="bob"),
        422,
        "invalid-decision",
    )
    assert "budget request" in raise_on_action["detail"]
    for cursor in ("not-a-cursor", "WzEsICJcdWQ4MDAiXQ", "W05hTiwgImFwcl94Il0"):
        # [1, "\ud800"] was a 500, [NaN, "apr_x"] an empty page: each one named, a 422.
        refused = problem(
            await api.call("GET", "/approvals", params={"cursor": cursor}),
            422,
            "invalid-request",
        )
        assert f"queue cursor {cursor!r} is not one this queue handed out" in refused["detail"]
    assert api.rt.approval(approval).status.value == "pending"
    assert len(api.rt.runs()) == 1
    assert api.rt.get(thread_id).status is RunStatus.AWAITING_APPROVAL


async def test_429_past_a_keys_rate_with_retry_after_and_other_keys_unaffected(
    desk: AgentRuntime,
) -> None:
    app = create_app(desk, rate_limit="3/minute", sweep_every=None)
    alice, bob = issue_key(desk, OPERATOR), issue_key(desk, APPROVER)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://agentrt.test"
    ) as client:
        answers = [
            (await client.get("/runs", headers={"Authorization": f"Bearer {alice}"})).status_code
            for _ in range(4)
        ]
        limited = await client.get("/runs", headers={"Authorization": f"Bearer {alice}"})
        other = await client.get("/runs", headers={"Authorization": f"Bearer {bob}"})
    assert answers == [200, 200, 200, 429]
    body = problem(limited, 429, "rate-limited")
    assert "3/minute" in body["detail"]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert body["retry_after"] == int(limited.headers["retry-after"])
    assert other.status_code == 200


def test_every_route_authenticates_its_key_once() -> None:
    """A route's dependencies look its key up, and count it against its rate, in one
    dependency (FastAPI solves each one once a request): never two that each do."""

    def authenticating(dependant: Dependant) -> set[Any]:
        found = {dependant.call} if isinstance(dependant.call, Authenticating) else set()
        for inner in dependant.dependencies:
            found |= authenticating(inner)
        return found

    modules = (
        routes.runs,
        routes.run_events,
        routes.messages,
        routes.artifacts,
        routes.approvals,
        routes.webhooks,
    )
    counts = {
        f"{sorted(route.methods)[0]} {route.path_format}": len(authenticating(route.dependant))
        for module in modules
        for route in module.router.routes
        if isinstance(route, APIRoute)
    }
    assert counts["GET /runs/{thread_id}"] == 1
    assert counts["GET /runs/{thread_id}/events"] == 1
    assert set(counts.values()) == {1}, counts


def test_create_app_refuses_settings_it_cannot_honour(desk: AgentRuntime) -> None:
    with pytest.raises(ConfigError, match="'fast'"):
        create_app(desk, rate_limit="fast")
    with pytest.raises(ConfigError, match="max_body_bytes"):
        create_app(desk, max_body_bytes=0)
    with pytest.raises(ConfigError, match="sweep_every"):
        create_app(desk, sweep_every=-1)
    with pytest.raises(ConfigError, match="AgentRuntime"):
        create_app("agentrt.db")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no tenant"):
        issue_key(desk, Principal("root", roles=["admin"]))


# the keys command -------------------------------------------------------------------------


def test_keys_are_made_listed_and_revoked_from_the_command_line(db: Path) -> None:
    refund_desk.build_runtime(db).close()

    def keys(*args: str) -> Result:
        return CliRunner().invoke(app, ["keys", *args, "--app", DEMO_APP, "--db", str(db)])

    made = keys("create", "--id", "bob", "--tenant", "acme", "--role", "refund-approver")
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    assert key.startswith("agrt_")
    assert "shown only now" in made.stderr
    listed = keys("list")
    assert "bob" in listed.stdout
    assert "refund-approver" in listed.stdout
    assert key not in listed.stdout
    assert key not in db.read_bytes().decode("latin-1")
    key_id = key.removeprefix("agrt_").split("_")[0]
    assert keys("revoke", key_id).exit_code == 0
    assert "bob" not in keys("list").stdout
    assert "bob" in keys("list", "--all").stdout
    unknown = keys("revoke", "nope")
    assert unknown.exit_code == 1
    assert "'nope'" in unknown.stderr
    no_tenant = keys("create", "--id", "bob")
    assert no_tenant.exit_code == 2
    assert "--tenant" in no_tenant.output


@pytest.mark.parametrize("blank", ["", "   "])
def test_keys_create_refuses_a_blank_role_and_stores_nothing(db: Path, blank: str) -> None:
    refund_desk.build_runtime(db).close()

    def create(*roles: str, where: Path = db) -> Result:
        args = ["keys", "create", "--id", "bob", "--tenant", "acme"]
        for role in roles:
            args += ["--role", role]
        return CliRunner().invoke(app, [*args, "--app", DEMO_APP, "--db", str(where)])

    for roles in ([blank], ["refund-approver", blank]):
        refused = create(*roles)
        assert refused.exit_code == 2, refused.output
        assert refused.stdout == ""  # no key printed
        assert refused.stderr == (
            f"error: --role {blank!r} is blank; give the role's name, e.g. --role "
            "refund-approver, or leave --role out for a key with no role\n"
        )
    with refund_desk.build_runtime(db) as rt:
        assert rt.keys.list(include_revoked=True) == []
    fresh = db.with_name("fresh.db")
    assert create(blank, where=fresh).exit_code == 2
    assert not fresh.exists()  # refused before the database was made


@pytest.mark.parametrize("blank", ["", "   "])
def test_issuing_a_key_refuses_a_blank_role_and_stores_nothing(
    desk: AgentRuntime, blank: str
) -> None:
    for roles in ([blank], ["refund-approver", blank]):
        who = Principal("bob", roles=roles, tenant="acme")
        message = (
            f"principal 'bob' has the blank role {blank!r}; give each role a name, e.g. "
            "roles=['refund-approver'] (agentrt keys create --role refund-approver), or no "
            "roles for a key with none"
        )
        for issue in (issue_key, lambda rt, who: rt.keys.create(who)):
            with pytest.raises(ConfigError) as refused:
                issue(desk, who)
            assert str(refused.value) == message
    assert desk.keys.list(include_revoked=True) == []
    assert issue_key(desk, Principal("bob", roles=["refund-approver"], tenant="acme"))


@pytest.mark.parametrize("blank", ["", "   "])
def test_keys_create_refuses_a_blank_scope_and_stores_nothing(db: Path, blank: str) -> None:
    refund_desk.build_runtime(db).close()

    def create(*scopes: str, where: Path = db) -> Result:
        args = ["keys", "create", "--id", "bob", "--tenant", "acme"]
        for scope in scopes:
            args += ["--scope", scope]
        return CliRunner().invoke(app, [*args, "--app", DEMO_APP, "--db", str(where)])

    for scopes in ([blank], ["orders:read", blank]):
        refused = create(*scopes)
        assert refused.exit_code == 2, refused.output
        assert refused.stdout == ""  # no key printed
        assert refused.stderr == (
            f"error: --scope {blank!r} is blank; give the scope's name, e.g. --scope "
            "orders:read, or leave --scope out for a key with no scope\n"
        )
    with refund_desk.build_runtime(db) as rt:
        assert rt.keys.list(include_revoked=True) == []
    fresh = db.with_name("fresh.db")
    assert create(blank, where=fresh).exit_code == 2
    assert not fresh.exists()  # refused before the database was made
    made = create("orders:read")
    assert made.exit_code == 0, made.output
    with refund_desk.build_runtime(db) as rt:
        assert [k.principal.scopes for k in rt.keys.list()] == [("orders:read",)]


@pytest.mark.parametrize("blank", ["", "   "])
@pytest.mark.parametrize(
    ("option", "what"),
    [
        ("--id", "the principal's id the key acts as, e.g. --id bob"),
        ("--tenant", "its tenant's name, e.g. --tenant acme ('*': every tenant's)"),
    ],
    ids=["id", "tenant"],
)
def test_keys_create_refuses_a_blank_id_or_tenant_as_a_usage_error(
    db: Path, option: str, what: str, blank: str
) -> None:
    refund_desk.build_runtime(db).close()

    def create(where: Path) -> Result:
        given = {"--id": "bob", "--tenant": "acme", option: blank}
        args = [arg for pair in given.items() for arg in pair]
        return CliRunner().invoke(app, ["keys", "create", *args, "--db", str(where)])

    refused = create(db)
    assert refused.exit_code == 2, refused.output  # a usage error, as a blank --role is
    assert refused.stdout == ""  # no key printed
    assert refused.stderr == f"error: {option} {blank!r} is blank; give {what}\n"
    with refund_desk.build_runtime(db) as rt:
        assert rt.keys.list(include_revoked=True) == []
    fresh = db.with_name("fresh.db")
    assert create(fresh).exit_code == 2
    assert not fresh.exists()  # refused before the database was made
    assert not list(db.parent.glob("fresh.db*"))  # nor anything beside it


@pytest.mark.parametrize("blank", ["", "   "])
def test_issuing_a_key_refuses_a_blank_scope_and_stores_nothing(
    desk: AgentRuntime, blank: str
) -> None:
    for scopes in ([blank], ["orders:read", blank]):
        who = Principal("bob", tenant="acme", scopes=scopes)
        message = (
            f"principal 'bob' has the blank scope {blank!r}; give each scope a name, e.g. "
            "scopes=['orders:read'] (agentrt keys create --scope orders:read), or no "
            "scopes for a key with none"
        )
        for issue in (issue_key, lambda rt, who: rt.keys.create(who)):
            with pytest.raises(ConfigError) as refused:
                issue(desk, who)
            assert str(refused.value) == message
    assert desk.keys.list(include_revoked=True) == []
    assert issue_key(desk, Principal("bob", tenant="acme", scopes=["orders:read"]))


def test_issuing_a_key_refuses_a_blank_tenant_and_stores_nothing(desk: AgentRuntime) -> None:
    who = Principal("bob", tenant="   ")
    for issue in (issue_key, lambda rt, who: rt.keys.create(who)):
        with pytest.raises(ConfigError) as refused:
            issue(desk, who)
        assert str(refused.value) == (
            "principal 'bob' has the blank tenant '   '; give its tenant's name, e.g. "
            "tenant='acme' ('*': every tenant's)"
        )
    assert desk.keys.list(include_revoked=True) == []


# helpers ----------------------------------------------------------------------------------


def cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The agentrt command in a process of its own, on the demo app and ``db``."""
    return subprocess.run(
        [sys.executable, "-m", "agentrt", *args, "--app", DEMO_APP, "--db", str(db)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def refunds(db: Path) -> list[tuple[str, float]]:
    """What the demo's payment system paid out."""
    with sqlite3.connect(refund_desk.payments_path(db)) as conn:
        return conn.execute("SELECT order_id, amount FROM refunds").fetchall()


def parse_sse(text: str) -> list[dict[str, str]]:
    """The events of a text/event-stream body: event, id and data of each."""
    events = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name and not name.startswith(":"):
                fields[name] = value
        if "data" in fields:
            events.append(
                {"event": fields.get("event", "message"), "id": fields.get("id", ""), **fields}
            )
    return events


def walk(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for span in spans for s in (span, *walk(span.get("children", [])))]


@pytest.mark.timeout(30)
async def test_an_edit_that_changes_nothing_over_http_approves_and_the_run_goes_on(
    api: Api,
) -> None:
    # "Approve with these arguments" on the review page posts the very same body.
    thread_id, approval = await api.waiting_run()
    current = (await api.call("GET", f"/approvals/{approval}", "bob")).json()["args"]
    decided = await api.decide(approval, {"outcome": "edit", "args": current}, who="bob")
    assert decided.status_code == 200, decided.text
    await api.settled(thread_id)
    run = (await api.call("GET", f"/runs/{thread_id}")).json()
    assert run["status"] == "succeeded"
    assert api.rt.approval(approval).status.value == "approved"


async def test_an_edit_over_http_from_the_masked_arguments_keeps_the_hidden_ones(
    db: Path, clock: FakeClock
) -> None:
    rt = gate_app.build_runtime(db, clock=clock)
    app = create_app(rt, poll_interval=0.01, sweep_every=None, rate_limit="10000/minute")
    second = Principal("pat", roles=["payer"], tenant="acme")
    keys = {"olga": issue_key(rt, gate_app.OPS), "bob": issue_key(rt, gate_app.PAYER)}
    keys["pat"] = issue_key(rt, second)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://agentrt.test"
            ) as client,
        ):
            api = Api(app, client, keys)
            started = await api.call("POST", "/runs", "olga", json={"goal": gate_app.GOAL})
            thread_id = started.json()["thread_id"]
            await api.settled(thread_id)
            al, cy = rt.get(thread_id).pending_approvals
            shown = (await api.call("GET", f"/approvals/{al.id}", "bob")).json()
            assert shown["args"] == {"who": "al", "cents": 5000, "card": "[REDACTED:field]"}
            # The card as GET showed it, masked: the run's own card stays.
            lowered = {**shown["args"], "cents": 900}
            assert (await api.decide(al.id, {"outcome": "edit", "args": lowered})).is_success
            assert rt.approval(al.id).edited_args == {**al.args, "cents": 900}
            # cy's card changed, and only it: both views mask it, changed_args names it.
            moved = {**cy.args, "card": "4999-0000"}
            assert (await api.decide(cy.id, {"outcome": "edit", "args": moved})).is_success
            decided = (await api.call("GET", f"/approvals/{cy.id}", "pat")).json()
            assert decided["args"]["card"] == decided["edited_args"]["card"] == "[REDACTED:field]"
            assert decided["changed_args"] == ["card"]
            await api.settled(thread_id)
            (made,) = [r for r in rt.get(thread_id).pending_approvals if r.edited_from == cy.id]
            again = (await api.call("GET", f"/approvals/{made.id}", "pat")).json()
            assert (again["edited_from"], again["edited_by"]) == (cy.id, "bob")
            assert again["changed_args"] is None  # not decided yet
    finally:
        rt.close()
