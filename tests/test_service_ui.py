"""The review page (/ui) over httpx's ASGI transport: sign-in, the queue, runs, deciding,
and every refusal shown on the page it came from."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from langchain_core.messages import BaseMessage, HumanMessage

from agentrt import AgentRuntime, Budget, Decision, Policy, Principal, RunStatus, tool
from agentrt.errors import InvalidDecision
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from agentrt.service import create_app
from agentrt.service.ui import routes
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests import budget_app, gate_app, threads_app
from tests.conftest import FakeClock, Ids
from tests.test_tools_runtime import CLERK, Sink, crash_then_resume, make_rt

pytestmark = pytest.mark.anyio

BASE = "http://agentrt.test"
DAY = 86400.0
EVE = Principal("eve", roles=["operator", "refund-approver"], tenant="globex")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Page:
    """A browser of one app: a client with its cookies, posting forms from this origin."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    @property
    def rt(self) -> AgentRuntime:
        runtime: AgentRuntime = self.app.state.agentrt.runtime
        return runtime

    def key(self, principal: Principal) -> str:
        return self.rt.keys.create(principal)[1]

    async def sign_in(self, principal: Principal) -> httpx.Response:
        return await self.client.post("/ui/login", data={"key": self.key(principal)})

    async def waiting(self, goal: str = GOAL, principal: Principal = OPERATOR) -> tuple[str, str]:
        """A run driven to its gate; its thread id and the request it waits for."""
        run = await self.rt.acreate(goal, principal=principal)
        self.app.state.agentrt.worker.drive(run.thread_id)
        await self.settled(run.thread_id)
        waiting = self.rt.get(run.thread_id)
        assert waiting.status is RunStatus.AWAITING_APPROVAL, waiting
        return run.thread_id, waiting.pending_approvals[0].id

    async def settled(self, thread_id: str) -> None:
        await self.app.state.agentrt.worker.wait(thread_id)

    async def decide(self, approval_id: str, back: str = "/ui", **form: str) -> httpx.Response:
        return await self.client.post(
            f"/ui/approvals/{approval_id}/decision", data={"back": back, **form}
        )


@pytest.fixture
async def page(desk: AgentRuntime) -> AsyncIterator[Page]:
    async with _browser(desk) as browser:
        yield browser


@asynccontextmanager
async def _browser(rt: AgentRuntime, rate_limit: str = "10000/minute") -> AsyncIterator[Page]:
    app = create_app(rt, sweep_every=None, rate_limit=rate_limit)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE, headers={"Origin": BASE}
        ) as client,
    ):
        yield Page(app, client)


def text(response: httpx.Response) -> str:
    """The page's visible text, tags dropped and whitespace folded, to assert on."""
    assert response.headers["content-type"].startswith("text/html"), response.headers
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.text)).split())


def alert(response: httpx.Response) -> str:
    """The error the page shows."""
    found = re.findall(r'role="alert">(.*?)</p>', response.text, re.S)
    assert len(found) == 1, response.text
    return unescape(found[0])


# signing in ----------------------------------------------------------------------------------


async def test_without_a_key_every_page_sends_the_person_to_sign_in(page: Page) -> None:
    for path in ("/ui", "/ui/runs", "/ui/runs/nope"):
        response = await page.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/ui/login?next={path.replace('/', '%2F')}"
    for response in (
        await page.client.get("/ui/runs/nope/state"),
        await page.decide("apr_x", outcome="approve"),
    ):
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/login?next=%2Fui"
    form = await page.client.get("/ui/login?next=%2Fui%2Fruns")
    assert form.status_code == 200
    assert '<input type="hidden" name="next" value="/ui/runs">' in form.text
    assert 'name="key" type="password"' in form.text


async def test_signing_in_sets_a_strict_cookie_for_the_page_and_signing_out_drops_it(
    page: Page,
) -> None:
    signed = await page.client.post(
        "/ui/login", data={"key": page.key(APPROVER), "next": "/ui/runs"}
    )
    assert signed.status_code == 303
    assert signed.headers["location"] == "/ui/runs"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith("agentrt_key=art_") or cookie.startswith("agentrt_key=")
    assert {"HttpOnly", "Path=/ui", "SameSite=strict"} <= {p.strip() for p in cookie.split(";")}
    queue = await page.client.get("/ui")
    assert queue.status_code == 200
    assert "bob refund-approver · acme" in text(queue)

    out = await page.client.post("/ui/logout")
    assert out.status_code == 303
    assert out.headers["location"] == "/ui/login?why=signed-out"
    assert "You have signed out." in text(await page.client.get(out.headers["location"]))
    assert (await page.client.get("/ui")).status_code == 303


async def test_a_wrong_key_is_refused_on_the_form_and_a_revoked_one_signs_the_person_out(
    page: Page,
) -> None:
    wrong = await page.client.post("/ui/login", data={"key": "art_not-a-key"})
    assert wrong.status_code == 401
    assert alert(wrong).startswith("That key is unknown or has been revoked.")
    empty = await page.client.post("/ui/login", data={"key": "  "})
    assert (empty.status_code, alert(empty)) == (401, "Paste your API key.")

    record, key = page.rt.keys.create(APPROVER)
    assert (await page.client.post("/ui/login", data={"key": key})).status_code == 303
    page.rt.keys.revoke(record.key_id)
    sent = await page.client.get("/ui")
    assert sent.status_code == 303
    assert sent.headers["location"] == "/ui/login?next=%2Fui&why=unknown"
    assert 'agentrt_key=""' in sent.headers["set-cookie"]  # the dead key is forgotten
    shown = await page.client.get(sent.headers["location"])
    assert "That key is unknown or has been revoked." in text(shown)


async def test_after_signing_in_the_person_goes_only_to_a_page_of_the_review_page(
    page: Page,
) -> None:
    for target in ("https://evil.example/", "//evil.example/ui", "/ui\\\\evil", "/runs", "/uix"):
        signed = await page.client.post(
            "/ui/login", data={"key": page.key(APPROVER), "next": target}
        )
        assert signed.headers["location"] == "/ui", target


# the queue ------------------------------------------------------------------------------------


async def test_the_queue_shows_each_request_with_what_an_approver_needs_to_decide(
    page: Page, clock: FakeClock
) -> None:
    thread_id, approval_id = await page.waiting()
    clock.advance(125)
    await page.sign_in(APPROVER)
    queue = await page.client.get("/ui")
    assert queue.status_code == 200
    shown = text(queue)
    assert (
        "issue_refund expires in 2d 23h "
        f"Goal: {GOAL} "
        "Refunds over $50 need a refund approver. "
        '{ "order_id": "42", "amount": 89.0 } '
        "Rule large-refunds Needs role refund-approver · four eyes Asked by alice "
        f"Waiting 2m Run {thread_id} · step "
    ) in shown
    for form in ("approve", "reject", "edit"):
        assert f'name="outcome" value="{form}"' in queue.text
    assert f'action="/ui/approvals/{approval_id}/decision"' in queue.text
    # Everything the page loads is the server's own.
    assert not re.search(r'(src|href)="(https?:)?//', queue.text)
    css = await page.client.get("/ui/static/ui.css")
    assert (css.status_code, css.headers["content-type"]) == (200, "text/css; charset=utf-8")
    assert (await page.client.get("/ui/static/app.py")).status_code == 404


async def test_the_queue_pages_through_the_tenant_requests(
    page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting = [await page.waiting() for _ in range(3)]
    await page.sign_in(APPROVER)
    monkeypatch.setattr(routes, "PAGE_SIZE", 2)
    first = await page.client.get("/ui")
    cursor = re.search(r'href="/ui\?cursor=([^"]+)">Next page', first.text)
    assert cursor is not None
    second = await page.client.get(f"/ui?cursor={cursor.group(1)}")
    ids = re.findall(r'data-approval="([^"]+)"', first.text + second.text)
    assert len(re.findall("data-approval=", first.text)) == 2
    assert sorted(ids) == sorted(approval_id for _, approval_id in waiting)
    assert "Next page" not in second.text
    bad = await page.client.get("/ui?cursor=nonsense")
    assert bad.status_code == 400
    assert "is not a page of this queue" in alert(bad)


async def test_sensitive_arguments_are_masked_on_every_page_and_kept_by_an_edit(
    db: Path, clock: FakeClock
) -> None:
    rt = gate_app.build_runtime(db, clock=clock)
    try:
        async with _browser(rt) as page:
            thread_id, approval_id = await page.waiting(gate_app.GOAL, gate_app.OPS)
            await page.sign_in(gate_app.PAYER)
            for path in ("/ui", f"/ui/runs/{thread_id}"):
                shown = await page.client.get(path)
                assert shown.status_code == 200
                assert '"card": "[REDACTED:field]"' in unescape(shown.text), path
                # The whole values, with or without their dash: a short piece such as
                # "4111" turns up in random ids on the page.
                assert not re.search("4111-?1111|4333-?3333", shown.text), path

            # The payer lowers the amount; the card they could not see stays the card.
            edited = await page.decide(
                approval_id,
                outcome="edit",
                args='{"who": "al", "cents": 4000, "card": "[REDACTED:field]"}',
                reason="half now",
            )
            assert edited.status_code == 303, edited.text
            decided = rt.approval(approval_id)
            assert decided.edited_args == {"who": "al", "cents": 4000, "card": "4111-1111"}
    finally:
        rt.close()


# deciding -------------------------------------------------------------------------------------


async def test_approving_from_the_queue_carries_the_run_on_to_its_end(page: Page) -> None:
    thread_id, approval_id = await page.waiting()
    await page.sign_in(APPROVER)
    queue = await page.client.get("/ui")
    digest = re.search(r'name="args_digest" value="([0-9a-f]+)"', queue.text)
    assert digest is not None
    approved = await page.decide(approval_id, outcome="approve", args_digest=digest.group(1))
    assert approved.status_code == 303
    assert approved.headers["location"] == (
        f"/ui?decided={approval_id}&outcome=approve&run={thread_id}"
    )
    after = await page.client.get(approved.headers["location"])
    assert f"Approved {approval_id} ; the run goes on in the background: {thread_id}" in text(after)
    await page.settled(thread_id)
    assert page.rt.get(thread_id).status is RunStatus.SUCCEEDED
    assert "Nothing waits for a decision." in text(await page.client.get("/ui"))


async def test_the_run_page_shows_status_steps_and_trace_and_decides_too(page: Page) -> None:
    thread_id, approval_id = await page.waiting()
    await page.sign_in(APPROVER)
    waiting = await page.client.get(f"/ui/runs/{thread_id}")
    shown = text(waiting)
    assert f"Run {thread_id} awaiting_approval" in shown
    assert GOAL in shown
    assert "For alice operator · acme" in shown
    assert f'data-follow="/ui/runs/{thread_id}/state"' in waiting.text
    assert (
        'plan #2: Refunding the full amount. -> issue_refund({"order_id": "42", "amount": 89.0})'
        in shown
    )
    assert "policy 2.0: require_approval (large-refunds: Refunds over $50 need a refund" in shown
    assert "approval 2.0 (waits for a person)" in shown
    assert f'value="/ui/runs/{thread_id}"' in waiting.text  # its forms come back here
    state = (await page.client.get(f"/ui/runs/{thread_id}/state")).json()
    assert state["status"] == "awaiting_approval"
    assert state["terminal"] is False

    approved = await page.decide(approval_id, back=f"/ui/runs/{thread_id}", outcome="approve")
    assert approved.headers["location"].startswith(f"/ui/runs/{thread_id}?decided=")
    await page.settled(thread_id)
    done = await page.client.get(approved.headers["location"])
    shown = text(done)
    assert f"Run {thread_id} succeeded" in shown
    assert page.rt.get(thread_id).output in shown
    assert "approval 2.0: issue_refund approved by bob" in shown
    assert "data-follow" not in done.text  # an ended run is not followed
    assert 'class="waterfall"' in done.text  # the trace, as bars on a time axis
    waterfall = done.text[done.text.index('class="waterfall"') :]
    spans = re.findall(r'<span class="wf-name d\d"[^>]*>([^<]+?)(?: <small>|</span>)', waterfall)
    assert spans[0] == "invoke_agent refund-desk"
    assert {"approval 2.0", "execute_tool issue_refund", "await_approval issue_refund"} <= set(
        spans
    )
    assert (await page.client.get(f"/ui/runs/{thread_id}/state")).json()["terminal"] is True


async def test_rejecting_needs_a_reason_and_the_refusal_keeps_the_form(page: Page) -> None:
    thread_id, approval_id = await page.waiting()
    await page.sign_in(APPROVER)
    refused = await page.decide(approval_id, outcome="reject", reason="   ")
    assert refused.status_code == 422
    assert "reason" in alert(refused)
    assert f'id="approval-{approval_id}"' in refused.text  # the request is still there

    rejected = await page.decide(approval_id, outcome="reject", reason="broken item <b>?")
    assert rejected.status_code == 303
    await page.settled(thread_id)
    decided = page.rt.approval(approval_id)
    assert (decided.status.value, decided.comment) == ("rejected", "broken item <b>?")


async def test_an_edit_is_checked_against_the_tool_and_bad_json_is_shown_as_typed(
    page: Page,
) -> None:
    thread_id, approval_id = await page.waiting()
    await page.sign_in(APPROVER)
    typed = '{"order_id": "42", "amount": 40,'
    bad = await page.decide(approval_id, outcome="edit", args=typed, reason="partial")
    assert bad.status_code == 422
    assert alert(bad).startswith("the edited arguments are not JSON (Expecting property name")
    assert ">" + typed.replace('"', "&#34;") + "</textarea>" in bad.text
    assert 'value="partial"' in bad.text
    assert '<details class="edit" open>' in bad.text

    not_object = await page.decide(approval_id, outcome="edit", args="[40]")
    assert alert(not_object) == "the edited arguments must be a JSON object, got '[40]'"
    wrong = await page.decide(approval_id, outcome="edit", args='{"order_id": "42", "amount": "x"}')
    assert wrong.status_code == 422
    assert "amount" in alert(wrong)

    edited = await page.decide(
        approval_id, outcome="edit", args='{"order_id": "42", "amount": 40}', reason="partial"
    )
    assert edited.status_code == 303
    await page.settled(thread_id)
    assert page.rt.approval(approval_id).edited_args == {"order_id": "42", "amount": 40}
    assert page.rt.get(thread_id).status is RunStatus.SUCCEEDED


async def test_the_runtime_refusals_show_their_message_on_the_page(
    page: Page, clock: FakeClock
) -> None:
    thread_id, approval_id = await page.waiting()
    # alice asked: she holds no approver role (and four eyes would stop her anyway).
    await page.sign_in(OPERATOR)
    refused = await page.decide(approval_id, outcome="reject", reason="my own, too big")
    assert refused.status_code == 403
    assert "refund-approver" in alert(refused)
    assert 'value="my own, too big"' in refused.text  # nothing typed is lost

    # From the run page, the refusal comes back on the run page.
    on_run = await page.decide(approval_id, back=f"/ui/runs/{thread_id}", outcome="approve")
    assert on_run.status_code == 403
    assert f"Run {thread_id} awaiting_approval" in text(on_run)

    await page.sign_in(APPROVER)
    assert (await page.decide(approval_id, outcome="approve")).status_code == 303
    again = await page.decide(approval_id, outcome="approve")
    assert again.status_code == 409
    assert "already" in alert(again)

    _, late = await page.waiting()
    clock.advance(4 * DAY)
    expired = await page.decide(late, outcome="approve")
    assert expired.status_code == 409
    assert "expired" in alert(expired)


async def test_a_key_over_its_rate_gets_a_page_saying_when_to_come_back(desk: AgentRuntime) -> None:
    async with _browser(desk, rate_limit="3/minute") as page:
        client = page.client
        signed_in = await page.sign_in(APPROVER)  # the first of the key's three
        assert signed_in.status_code == 303
        assert (await client.get("/ui")).status_code == 200
        assert (await client.get("/ui/runs")).status_code == 200
        for path in ("/ui", "/ui/runs/nope"):
            slow = await client.get(path)
            assert slow.status_code == 429, path
            assert int(slow.headers["retry-after"]) >= 1
            assert "Slow down" in text(slow)
            assert alert(slow).startswith("this API key is over its rate of 3/minute; retry in")
        other = await client.post("/ui/login", data={"key": page.key(OPERATOR)})
        assert other.status_code == 303  # another key has a rate of its own


async def test_a_form_posted_from_another_site_is_refused(page: Page) -> None:
    _, approval_id = await page.waiting()
    await page.sign_in(APPROVER)
    for headers in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/x"}):
        page.client.headers.pop("Origin", None)
        refused = await page.client.post(
            f"/ui/approvals/{approval_id}/decision",
            data={"outcome": "approve"},
            headers=headers,
        )
        assert refused.status_code == 403
        assert "was not sent from this server's own page" in alert(refused)
    nothing = await page.client.post(
        f"/ui/approvals/{approval_id}/decision", data={"outcome": "approve"}
    )
    assert nothing.status_code == 403
    same = await page.client.post(
        "/ui/logout", headers={"Referer": f"{BASE}/ui"}
    )  # a Referer of this host will do
    assert same.status_code == 303
    assert page.rt.approval(approval_id).status.value == "pending"


async def test_another_tenant_sees_nothing_of_the_run(page: Page) -> None:
    thread_id, approval_id = await page.waiting()
    await page.sign_in(EVE)
    assert "Nothing waits for a decision." in text(await page.client.get("/ui"))
    assert thread_id not in (await page.client.get("/ui/runs")).text
    for response in (
        await page.client.get(f"/ui/runs/{thread_id}"),
        await page.client.get(f"/ui/runs/{thread_id}/state"),
        await page.decide(approval_id, outcome="approve"),
    ):
        assert response.status_code == 404
        assert "in your tenant" in alert(response)
    assert page.rt.approval(approval_id).status.value == "pending"


async def test_a_budget_request_is_raised_or_ends_the_run_from_the_page(
    db: Path, clock: FakeClock
) -> None:
    asks = Budget(max_tool_calls=2, on_exceed="ask", approver_role="budget-owner")
    owner = Principal("fin", roles=["budget-owner"], tenant="acme")
    with budget_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        async with _browser(rt) as page:
            run = await rt.acreate("ping forever", principal=OPERATOR, budget=asks)
            page.app.state.agentrt.worker.drive(run.thread_id)
            await page.settled(run.thread_id)
            [request] = rt.get(run.thread_id).pending_approvals
            assert request.kind == "budget"
            await page.sign_in(owner)
            queue = await page.client.get("/ui")
            shown = text(queue)
            assert "Raise max_tool_calls from 2 to" in shown
            assert "Raise the limit" in shown
            assert "End the run" in shown
            assert 'value="approve"' not in queue.text  # approving a budget request is refused

            for typed, said in (
                ("lots", "the new limit must be a number, got 'lots'"),
                ("", "the new limit must be a number, got ''"),
                ("1", "max_tool_calls"),
                ("1e20", "the new max_tool_calls 1e+20 is past the largest limit a run can store"),
            ):
                refused = await page.decide(request.id, outcome="raise_limit", to=typed)
                assert refused.status_code == 422, typed
                assert said in alert(refused)
                kept = re.search(r'<input name="to"[^>]*value="([^"]*)"', refused.text)
                assert kept is not None
                assert kept.group(1) == typed
            assert rt.approval(request.id).status.value == "pending"

            raised = await page.decide(request.id, outcome="raise_limit", to="4", reason="ok")
            assert raised.status_code == 303
            after = text(await page.client.get(raised.headers["location"]))
            assert f"Raised the limit for {request.id} ; the run goes on" in after
            await page.settled(run.thread_id)
            assert rt.approval(request.id).edited_args == {"max_tool_calls": 4.0}
            assert budget_app.executions(db) == 4
            [again] = rt.get(run.thread_id).pending_approvals  # the raised limit, reached
            assert again.args["allowed"] == 4

            ended = await page.decide(again.id, outcome="reject", reason="enough pings")
            assert ended.status_code == 303
            await page.settled(run.thread_id)
            assert rt.get(run.thread_id).status is RunStatus.BUDGET_EXCEEDED
            assert budget_app.executions(db) == 4


@asynccontextmanager
async def _in_doubt(db: Path, clock: FakeClock) -> AsyncIterator[tuple[Page, Sink, str]]:
    """A run whose email call died mid-way, waiting for a person to say what happened."""
    sink = Sink()
    script = [ai("", tool_call("send_email", {"to": "al"})), "done"]
    with make_rt(db, clock, sink, [], script) as rt:
        request_id = crash_then_resume(rt, sink)
        async with _browser(rt) as page:
            await page.sign_in(CLERK)
            yield page, sink, request_id


async def test_an_effect_in_doubt_is_settled_as_done_with_its_result(
    db: Path, clock: FakeClock
) -> None:
    async with _in_doubt(db, clock) as (page, sink, request_id):
        queue = await page.client.get("/ui")
        shown = text(queue)
        assert "send_email reconcile" in shown
        assert "has no recorded outcome" in shown
        assert "It happened" in shown
        assert "It did not happen: call again" in shown
        assert 'value="approve"' not in queue.text
        assert 'value="reject"' not in queue.text

        for typed, said in (
            ("", 'the result is empty; write it as JSON, e.g. {"sent": true}'),
            ('{"sent_to": ', "the result is not JSON (Expecting value at line 1, column 13)"),
            ('["not", "a", "dict"]', "does not match its schema"),
        ):
            refused = await page.decide(request_id, outcome="resolve", result=typed)
            assert refused.status_code == 422, typed
            assert said in alert(refused)
            assert typed.replace('"', "&#34;") + "</textarea>" in refused.text  # as typed
        assert page.rt.approval(request_id).status.value == "pending"

        settled = await page.decide(
            request_id, outcome="resolve", result='{"sent_to": "al"}', reason="in the mail log"
        )
        assert settled.status_code == 303
        after = text(await page.client.get(settled.headers["location"]))
        assert f"Recorded the outcome of {request_id} ; the run goes on" in after
        await page.settled("t1")
        assert page.rt.get("t1").status is RunStatus.SUCCEEDED
        assert len(sink.sent) == 1  # settled, not sent again
        [effect] = page.rt.store.list_effects("t1")
        assert (effect.status, effect.result) == ("done", {"sent_to": "al"})
        assert page.rt.approval(request_id).comment == "in the mail log"


async def test_an_effect_in_doubt_that_did_not_happen_is_called_again(
    db: Path, clock: FakeClock
) -> None:
    async with _in_doubt(db, clock) as (page, sink, request_id):
        retried = await page.decide(
            request_id, back="/ui/runs/t1", outcome="retry", reason="not in the mail log"
        )
        assert retried.status_code == 303
        assert retried.headers["location"].startswith("/ui/runs/t1?decided=")
        await page.settled("t1")
        assert page.rt.get("t1").status is RunStatus.SUCCEEDED
        assert [to for to, _ in sink.sent] == ["al", "al"]
        assert sink.sent[0][1] == sink.sent[1][1]  # the same idempotency key


# runs -----------------------------------------------------------------------------------------


async def test_a_run_and_request_kept_with_times_past_any_date_still_have_their_pages(
    page: Page, db: Path
) -> None:
    # As a version that took them wrote them (a deadline of 1e300, a policy's expires_in
    # of 1e20 days): the run's page was a 500 for every reviewer.
    thread_id, approval_id = await page.waiting()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE approvals SET expires_at = 8.64e24")
        conn.execute("UPDATE runs SET budget = json_set(budget, '$.deadline', 1e300)")
    conn.close()
    await page.sign_in(APPROVER)
    run_page = await page.client.get(f"/ui/runs/{thread_id}")
    assert run_page.status_code == 200, run_page.text[:300]
    assert "· deadline 9999-12-31 23:59:59 UTC" in text(run_page)
    queue = await page.client.get("/ui")
    assert queue.status_code == 200
    assert approval_id in queue.text


async def test_runs_list_the_tenant_runs_and_a_goal_is_shown_as_text(page: Page) -> None:
    goal = '<script>alert("x")</script> & refund'
    quiet = await page.rt.acreate(goal, principal=OPERATOR)  # written, never driven
    await page.rt.acreate("other tenant", principal=EVE)
    await page.sign_in(APPROVER)
    listed = await page.client.get("/ui/runs")
    assert "<script>alert" not in listed.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; refund" in listed.text
    assert "other tenant" not in listed.text
    assert f'<a href="/ui/runs/{quiet.thread_id}">' in listed.text
    pending = await page.client.get("/ui/runs?status=pending")
    assert quiet.thread_id in pending.text
    assert "No runs with status succeeded." in text(
        await page.client.get("/ui/runs?status=succeeded")
    )
    assert (await page.client.get("/ui/runs?status=lost")).status_code == 400

    run = await page.client.get(f"/ui/runs/{quiet.thread_id}")
    assert "<script>alert" not in run.text
    assert goal in text(run)
    assert "No steps yet." in text(run)
    assert "No spans are stored for this run" in text(run)


@tool(effect="read")
def look(door: str) -> str:
    """Look at a door."""
    return f"the {door} door is shut"


@tool(effect="write", idempotent=True, sensitive=["pin"])
def unlock(door: str, pin: str) -> str:
    """Unlock a door with its pin."""
    return f"the {door} door is open"


DOORS = """
version: 1
name: doors
default: allow
rules:
  - id: doors
    match: {tools: [look, unlock]}
    decision: require_approval
    reason: Doors need a person.
"""


async def test_a_list_of_runs_reads_a_runs_log_again_only_once_the_run_moved(
    db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin = "zebra-58213-quartz"

    def first_turn(messages: list[BaseMessage]) -> Any:
        goal = next(m.content for m in messages if isinstance(m, HumanMessage))
        opens = str(goal).startswith("open")  # the first run: a gate; the others end at once
        return ai("", tool_call("look", {"door": "front"})) if opens else "Nothing to do."

    unlocks = ai("", tool_call("unlock", {"door": "front", "pin": pin}))
    model = ScriptedChatModel([first_turn, unlocks])
    rt = AgentRuntime(
        model, tools=[look, unlock], policy=Policy.from_yaml(DOORS), db=db, clock=clock
    )
    first = rt.start(f"open the front door, its pin is {pin}", principal=OPERATOR)
    others = [rt.start(f"run {i}", principal=OPERATOR) for i in (2, 3)]
    assert [r.status for r in (first, *others)] == ["awaiting_approval", "succeeded", "succeeded"]
    # The pages of a server apart from the process that drives the runs (which keeps what
    # each segment ended with, agentrt.runs.kept_secrets, and reads no log: below).
    server = AgentRuntime(
        model, tools=[look, unlock], policy=Policy.from_yaml(DOORS), db=db, clock=clock
    )
    read: list[str] = []
    events, driven = server.events, rt.events
    monkeypatch.setattr(
        server, "events", lambda thread_id: read.append(thread_id) or events(thread_id)
    )
    monkeypatch.setattr(rt, "events", lambda thread_id: read.append(thread_id) or driven(thread_id))
    async with _browser(rt) as page:
        await page.sign_in(APPROVER)
        assert (await page.client.get("/ui/runs")).status_code == 200
    assert read == []
    async with _browser(server) as page:
        await page.sign_in(APPROVER)
        listed = await page.client.get("/ui/runs")
        assert sorted(read) == sorted(r.thread_id for r in (first, *others))
        # Nothing yet says the pin is secret: the log holds only the look at the door.
        assert f"its pin is {pin}" in unescape(listed.text)
        read.clear()
        for path in ("/ui/runs", "/ui", "/ui/runs?status=succeeded"):  # none has moved
            assert (await page.client.get(path)).status_code == 200
        assert read == []
        # The first moves on to its next gate (the clock, a test's, stands still), where
        # the model passed the pin to unlock: only its log is read again, and its goal
        # is masked with what the log now holds.
        await rt.adecide(Decision.approve(first.pending_approvals[0].id, by=APPROVER))
        assert rt.get(first.thread_id).pending_approvals[0].tool == "unlock"
        listed = unescape((await page.client.get("/ui/runs")).text)
        assert read == [first.thread_id]
        queued = unescape((await page.client.get("/ui")).text)
    server.close()
    for shown in (listed, queued):
        assert pin not in shown
        assert "open the front door, its pin is [REDACTED:field]" in shown


async def test_a_notifications_link_shows_nothing_before_a_sign_in_and_decides_nothing(
    page: Page,
) -> None:
    thread_id, approval_id = await page.waiting()
    link = f"/ui/approvals/{approval_id}"
    # Opened from mail or chat the SameSite=Strict cookie is left out: the page sends the
    # browser to the same address again from this site, which carries it.
    hop = await page.client.get(link)
    assert hop.status_code == 200
    assert f'content="0; url={link}?hop=1"' in hop.text
    assert approval_id not in text(hop).replace(link, "")
    again = await page.client.get(f"{link}?hop=1")
    assert again.status_code == 303
    assert again.headers["location"] == f"/ui/login?next=%2Fui%2Fapprovals%2F{approval_id}"
    await page.sign_in(APPROVER)
    opened = await page.client.get(link)
    assert opened.status_code == 303
    assert opened.headers["location"] == f"/ui/runs/{thread_id}#approval-{approval_id}"
    assert page.rt.get(thread_id).status is RunStatus.AWAITING_APPROVAL  # nothing decided
    await page.sign_in(EVE)
    assert (await page.client.get(link)).status_code == 404  # not globex's


async def test_a_superseded_request_is_on_its_run_page_where_its_link_lands(
    db: Path, clock: FakeClock
) -> None:
    with threads_app.build_runtime(db, clock=clock) as rt:
        run = rt.start("pay 500", principal=threads_app.OPS)
        (asked,) = run.pending_approvals
        approve = Decision.approve(asked.id, by=threads_app.PAYER, reason="checked with finance")
        rt.decide(approve, resume=False)
        rt.send(run.thread_id, "hello", principal=threads_app.OPS, double_texting="interrupt")
        (waiting,) = rt.start("pay 700", principal=threads_app.OPS).pending_approvals
        async with _browser(rt) as page:
            await page.sign_in(threads_app.OPS)
            opened = await page.client.get(f"/ui/approvals/{asked.id}?hop=1")
            assert opened.headers["location"] == f"/ui/runs/{run.thread_id}#approval-{asked.id}"
            shown = await page.client.get(f"/ui/runs/{run.thread_id}")
            other = await page.client.get(f"/ui/runs/{waiting.thread_id}")
    (card,) = re.findall(rf'<article [^>]*id="approval-{asked.id}".*?</article>', shown.text, re.S)
    said = " ".join(unescape(re.sub(r"<[^>]+>", " ", card)).split())
    assert "Superseded superseded by message #1" in said
    assert "Decided by bob: checked with finance" in said
    assert '"cents": 500' in said
    assert "Superseded by a later message" in text(shown)
    # A request that still waits is a card to decide, with nothing superseded on its page.
    assert f'id="approval-{waiting.id}"' in other.text
    assert "superseded" not in text(other).lower()


async def test_the_queue_filters_and_a_tenant_key_sees_its_own_tenant_only(page: Page) -> None:
    await page.waiting()
    await page.sign_in(APPROVER)

    def cards(response: httpx.Response) -> int:
        return len(re.findall("data-approval=", response.text))

    assert cards(await page.client.get("/ui?tool=issue_refund&rule=large-refunds")) == 1
    assert cards(await page.client.get("/ui?tool=lookup_order")) == 0
    assert cards(await page.client.get("/ui?rule=small-refunds")) == 0
    assert cards(await page.client.get("/ui?age=1d")) == 0
    assert cards(await page.client.get("/ui?age=nonsense")) == 1  # no such filter: none
    assert cards(await page.client.get("/ui?tenant=globex")) == 1  # acme's key stays acme's
    await page.sign_in(EVE)
    assert cards(await page.client.get("/ui?tenant=acme")) == 0


# what a refusal and an edit may show ---------------------------------------------------------


async def test_an_edit_refused_by_the_schema_shows_no_hidden_argument(
    db: Path, clock: FakeClock
) -> None:
    rt = gate_app.build_runtime(db, clock=clock)
    try:
        async with _browser(rt) as page:
            thread_id, approval_id = await page.waiting(gate_app.GOAL, gate_app.OPS)
            await page.sign_in(gate_app.PAYER)
            # cents left out by mistake, the card as shown: the form swaps the card back
            # before the schema check, whose message quotes the arguments.
            refused = await page.decide(
                approval_id,
                back=f"/ui/runs/{thread_id}",
                outcome="edit",
                args='{"who": "al", "card": "[REDACTED:field]"}',
            )
            assert refused.status_code == 422
            assert "cents: Field required (got {'who': 'al', 'card': '[REDACTED:field]'})" in (
                alert(refused)
            )
            assert not re.search("4111-?1111", refused.text)
    finally:
        rt.close()


async def test_a_refusal_quoting_a_hidden_argument_is_masked_on_the_page(
    db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = gate_app.build_runtime(db, clock=clock)
    try:
        async with _browser(rt) as page:
            _, approval_id = await page.waiting(gate_app.GOAL, gate_app.OPS)
            card = rt.approval(approval_id).args["card"]

            async def refuses(decision: object, **kw: object) -> None:
                # Any message the runtime may word one day: it repeats the card.
                raise InvalidDecision(f"card {card} ({card!r}) is not accepted today")

            monkeypatch.setattr(rt, "adecide", refuses)
            await page.sign_in(gate_app.PAYER)
            refused = await page.decide(approval_id, outcome="approve")
            assert refused.status_code == 422
            assert alert(refused) == (
                "card [REDACTED:field] ('[REDACTED:field]') is not accepted today"
            )
            assert card not in refused.text
    finally:
        rt.close()


async def test_the_second_pair_of_eyes_sees_a_change_to_a_hidden_argument(
    db: Path, clock: FakeClock
) -> None:
    rt = gate_app.build_runtime(db, clock=clock)
    second = Principal("pat", roles=["payer"], tenant="acme")
    try:
        async with _browser(rt) as page:
            thread_id, approval_id = await page.waiting(gate_app.GOAL, gate_app.OPS)
            await page.sign_in(gate_app.PAYER)
            # bob changes only the card, the one argument masked for him
            edited = await page.decide(
                approval_id,
                outcome="edit",
                args='{"who": "al", "cents": 5000, "card": "4999-0000"}',
            )
            assert edited.status_code == 303, edited.text
            (cy,) = [r for r in rt.get(thread_id).pending_approvals if r.id != approval_id]
            assert (await page.decide(cy.id, outcome="approve")).status_code == 303
            await page.settled(thread_id)
            waiting = rt.get(thread_id).pending_approvals
            (again,) = [r for r in waiting if r.edited_from == approval_id]
            assert again.args["card"] == "4999-0000"

            await page.sign_in(second)
            shown = await page.client.get(f"/ui/runs/{thread_id}")
            visible = text(shown)
            assert "The edit left the arguments as they were" not in visible
            diff = re.search(r'<table class="diff".*?</table>', shown.text, re.S)
            assert diff is not None
            rows = " ".join(unescape(re.sub(r"<[^>]+>", " ", diff.group(0))).split())
            assert rows == ('argument was now card "[REDACTED:field]" "[REDACTED:field]"')
            assert not re.search("4111-?1111|4999-?0000", shown.text)
    finally:
        rt.close()


async def test_a_decide_form_missing_a_field_is_refused_on_a_page(page: Page) -> None:
    thread_id, approval_id = await page.waiting()
    await page.sign_in(APPROVER)
    for form in ({"reason": "x", "back": "/ui"}, {}):
        refused = await page.client.post(f"/ui/approvals/{approval_id}/decision", data=form)
        assert refused.status_code == 422
        assert text(refused).startswith("422 · agentrt"), text(refused)
        assert "this decision form is incomplete (outcome: Field required)" in text(refused)
    assert page.rt.get(thread_id).status is RunStatus.AWAITING_APPROVAL


async def test_a_page_asked_for_with_a_query_it_does_not_take_is_refused_on_a_page(
    page: Page,
) -> None:
    # A link with a query the page does not take (hop=abc) gets the error page; the API's
    # own requests keep their problem+json.
    _, approval_id = await page.waiting()
    await page.sign_in(APPROVER)
    refused = await page.client.get(f"/ui/approvals/{approval_id}?hop=abc")
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("text/html")
    assert text(refused).startswith("422 · agentrt"), text(refused)
    assert "This page cannot be shown: query.hop: Input should be a valid integer" in text(refused)
    bearer = {"Authorization": f"Bearer {page.key(APPROVER)}"}
    api = await page.client.get("/runs?limit=abc", headers=bearer)
    assert api.status_code == 422
    assert api.headers["content-type"].startswith("application/problem+json")


async def test_an_unknown_address_and_a_method_a_page_does_not_take_are_refused_on_pages(
    page: Page,
) -> None:
    await page.sign_in(APPROVER)
    missing = await page.client.get("/ui/runs/a/b")
    assert missing.status_code == 404
    assert text(missing).startswith("404 · agentrt"), text(missing)
    assert "There is no page at '/ui/runs/a/b'." in text(missing)
    wrong = await page.client.get("/ui/logout")
    assert wrong.status_code == 405
    assert "'/ui/logout' is not opened with GET (it takes POST)" in text(wrong)
    # The API's own refusals keep their problem+json.
    api = await page.client.get("/nowhere")
    assert api.status_code == 404
    assert api.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_an_edit_over_the_body_limit_is_refused_on_a_page_saying_what_to_do(
    page: Page, chunked: bool
) -> None:
    # A reviewer pastes large edited arguments into the edit form: a page, never the API's
    # JSON; none of the body was read, so it says to go back and send less.
    thread_id, approval_id = await page.waiting()
    await page.sign_in(APPROVER)
    big = '{"order_id": "%s", "amount": 1}' % ("x" * (300 * 1024))
    if chunked:  # no Content-Length: refused as the body passes the limit

        async def body() -> AsyncIterator[bytes]:
            yield b"outcome=edit&back=%2Fui&args="
            yield big.encode()

        refused = await page.client.post(
            f"/ui/approvals/{approval_id}/decision",
            content=body(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    else:
        refused = await page.decide(approval_id, outcome="edit", args=big)
    assert refused.status_code == 413
    said = text(refused)
    assert said.startswith("413 · agentrt"), said
    assert f"over this service's limit of {256 * 1024} bytes" in said
    assert "nothing was decided. Go back to the page (your browser keeps what you typed)" in said
    assert page.rt.get(thread_id).status is RunStatus.AWAITING_APPROVAL
    bearer = {"Authorization": f"Bearer {page.key(APPROVER)}"}
    api = await page.client.post(
        f"/approvals/{approval_id}/decision", headers=bearer, json={"outcome": "edit", "x": big}
    )
    assert api.status_code == 413
    assert api.headers["content-type"].startswith("application/problem+json")


def _hidden(form_html: str) -> dict[str, str]:
    """A form's hidden fields, as a browser would post them."""
    return {
        name: unescape(value)
        for name, value in re.findall(
            r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form_html
        )
    }


async def test_deciding_from_a_filtered_queue_keeps_the_filter(page: Page) -> None:
    # README: each filter "stays in the address (/ui?tool=issue_refund&age=1h)". A reviewer
    # working down a filtered queue was sent back to the whole queue after every decision.
    await page.waiting()
    _, second = await page.waiting()
    await page.sign_in(APPROVER)
    queue = await page.client.get("/ui?tool=issue_refund&age=")
    form = re.search(r'class="approve">(.*?)</form>', queue.text, re.S)
    assert form is not None
    posted = await page.client.post(
        re.findall(r'action="([^"]+)" class="approve"', queue.text)[0], data=_hidden(form[1])
    )
    assert posted.status_code == 303, posted.text[:300]
    location = posted.headers["location"]
    assert location.startswith("/ui?tool=issue_refund&decided=apr_"), location
    # The notice of the decision is not carried into the next one's answer.
    after = await page.client.get(location)
    assert 'name="back" value="/ui?tool=issue_refund"' in after.text
    # A refused decision is shown on the same filtered queue.
    refused = await page.decide(second, back="/ui?tool=issue_refund&decided=x", outcome="reject")
    assert refused.status_code == 422
    assert "<option selected>issue_refund</option>" in refused.text
    assert 'name="back" value="/ui?tool=issue_refund"' in refused.text


async def test_open_run_pages_do_not_lock_the_reviewer_out_of_deciding(
    desk: AgentRuntime,
) -> None:
    # Each open run page of a run that has not ended polls /ui/runs/{id}/state once a
    # second (static/ui.js). Ten tabs open for a minute are 600 polls: they count in a
    # bucket of their own, so the reviewer's decision still goes through.
    async with _browser(desk, rate_limit="600/minute") as page:
        thread_id, approval_id = await page.waiting()
        await page.sign_in(APPROVER)
        for _ in range(600):
            polled = await page.client.get(f"/ui/runs/{thread_id}/state")
            assert polled.status_code == 200
        # The polls are bounded all the same: their own bucket runs out.
        over = await page.client.get(f"/ui/runs/{thread_id}/state")
        assert over.status_code == 429
        assert "this API key's open pages have polled over its rate (600/minute)" in text(over)
        decided = await page.decide(approval_id, outcome="reject", reason="not today")
        assert decided.status_code == 303, (decided.status_code, decided.text[:300])


ODD_IDS = ["acme/42", "ticket#42", "order?42", "50%2Foff", "a b/ü"]


@pytest.mark.parametrize("thread_id", ODD_IDS)
async def test_a_run_whose_thread_id_holds_a_slash_hash_or_query_has_its_pages(
    page: Page, thread_id: str
) -> None:
    # rt.start takes any thread id, and an app keys its threads as it likes: the page's
    # links quote the id, and its routes take it back whole ('/' as %2F too).
    run = await page.rt.acreate(GOAL, principal=OPERATOR, thread_id=thread_id)
    page.app.state.agentrt.worker.drive(run.thread_id)
    await page.settled(run.thread_id)
    approval_id = page.rt.get(thread_id).pending_approvals[0].id
    await page.sign_in(APPROVER)
    queue = await page.client.get("/ui")
    (link,) = re.findall(r'<dd><a href="([^"]+)">', queue.text)
    opened = await page.client.get(unescape(link))
    assert opened.status_code == 200, (link, opened.text[:300])
    assert f"Run {thread_id}" in text(opened)
    follow = re.search(r'data-follow="([^"]+)"', opened.text)
    assert follow is not None
    state = await page.client.get(unescape(follow[1]))
    assert state.json()["status"] == "awaiting_approval"
    landed = await page.client.get(f"/ui/approvals/{approval_id}?hop=1")
    assert landed.status_code == 303
    assert landed.headers["location"] == f"{unescape(link)}#approval-{approval_id}"
    # Deciding on the run's page comes back to it.
    decided = await page.decide(approval_id, back=unescape(link), outcome="reject", reason="no")
    assert decided.status_code == 303
    assert decided.headers["location"].startswith(f"{unescape(link)}?decided={approval_id}")
    assert (await page.client.get(decided.headers["location"])).status_code == 200


ACROSS = Principal("ops", roles=["refund-approver"], tenant=Principal.ALL_TENANTS)
GLOBEX = Principal("gina", roles=OPERATOR.roles, tenant="globex", scopes=OPERATOR.scopes)


async def test_an_all_tenants_key_reads_and_decides_every_tenant_and_filters_by_tenant(
    page: Page,
) -> None:
    # README: the queue filters "by tenant for a key of every tenant"; such a key saw an
    # empty queue and got 404 deciding.
    acme_thread, acme_request = await page.waiting()
    globex_thread, _ = await page.waiting(principal=GLOBEX)
    await page.sign_in(ACROSS)

    def cards(response: httpx.Response) -> set[str]:
        return set(re.findall(r'data-approval="([^"]+)"', response.text))

    everyone = await page.client.get("/ui")
    assert len(cards(everyone)) == 2
    assert 'name="tenant"' in everyone.text
    acme = await page.client.get("/ui?tenant=acme")
    assert cards(acme) == {acme_request}
    assert 'name="back" value="/ui?tenant=acme"' in acme.text
    runs = text(await page.client.get("/ui/runs"))
    assert acme_thread in runs
    assert globex_thread in runs
    assert (await page.client.get(f"/ui/runs/{globex_thread}")).status_code == 200
    decided = await page.decide(acme_request, back="/ui?tenant=acme", outcome="reject", reason="no")
    assert decided.status_code == 303, text(decided)
    assert page.rt.approval(acme_request).decided_by == "ops"
    # Over the API too.
    bearer = {"Authorization": f"Bearer {page.key(ACROSS)}"}
    listed = (await page.client.get("/approvals", headers=bearer)).json()["approvals"]
    assert [a["thread_id"] for a in listed] == [globex_thread]
    assert (await page.client.get(f"/runs/{acme_thread}", headers=bearer)).status_code == 200
    # A key of one tenant still sees its own only, whatever it asks.
    await page.sign_in(EVE)
    assert cards(await page.client.get("/ui?tenant=acme")) == cards(await page.client.get("/ui"))
    assert (await page.client.get(f"/ui/runs/{acme_thread}")).status_code == 404
