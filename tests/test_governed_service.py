"""Threads of an app's own graph through the service: listed, gated, decided over HTTP and
carried on by the service's worker when the graph is attached; the review page lists them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agentrt.examples.refund_desk import APPROVER, OPERATOR
from agentrt.service import create_app, issue_key
from tests.governed_app import KINDS, THREAD, app, refunds, start

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=KINDS)
async def served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], object]]:
    # The service's worker awaits the graph it carries on: the agent's checkpointer can be
    # awaited (in memory), the graph's cannot (SqliteSaver), and both go on.
    with app(request.param, tmp_path, in_memory=request.param == "agent") as (rt, graph):
        rt.attach(graph)
        start(rt, graph)
        keys = {"alice": issue_key(rt, OPERATOR), "bob": issue_key(rt, APPROVER)}
        service = create_app(rt, poll_interval=0.01, sweep_every=None)
        async with (
            service.router.lifespan_context(service),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=service),
                base_url="http://agentrt.test",
                headers={"Origin": "http://agentrt.test"},  # the review page's forms check it
            ) as client,
        ):
            yield client, keys, service


async def test_a_thread_of_the_apps_graph_is_decided_over_http_and_goes_on(
    served: tuple[httpx.AsyncClient, dict[str, str], object], tmp_path: Path
) -> None:
    client, keys, service = served
    alice = {"Authorization": f"Bearer {keys['alice']}"}
    bob = {"Authorization": f"Bearer {keys['bob']}"}
    listed = (await client.get("/runs", headers=alice)).json()
    assert [r["thread_id"] for r in listed["runs"]] == [THREAD]
    run = (await client.get(f"/runs/{THREAD}", headers=alice)).json()
    assert run["status"] == "awaiting_approval"
    (waiting,) = run["pending_approvals"]
    queue = (await client.get("/approvals", headers=bob)).json()
    assert [a["id"] for a in queue["approvals"]] == [waiting["id"]]
    trace = await client.get(f"/runs/{THREAD}/trace", headers=alice)
    assert trace.status_code == 200, trace.text

    decided = await client.post(
        f"/approvals/{waiting['id']}/decision", headers=bob, json={"outcome": "approve"}
    )
    assert decided.status_code == 200, decided.text
    await service.state.agentrt.worker.wait(THREAD)  # type: ignore[attr-defined]
    assert [(o, a) for _, o, a in refunds(tmp_path)] == [("42", 89.0)]
    after = (await client.get(f"/runs/{THREAD}", headers=alice)).json()
    assert (after["status"], after["pending_approvals"]) == ("running", [])


async def test_the_review_page_lists_the_threads_request_and_its_run(
    served: tuple[httpx.AsyncClient, dict[str, str], object],
) -> None:
    client, keys, _ = served
    signed_in = await client.post("/ui/login", data={"key": keys["bob"]})
    assert signed_in.status_code == 303, signed_in.text
    queue = await client.get("/ui")
    assert queue.status_code == 200
    assert "issue_refund" in queue.text
    assert THREAD in queue.text
    page = await client.get(f"/ui/runs/{THREAD}")
    assert page.status_code == 200, page.text
    assert "awaiting_approval" in page.text or "awaiting approval" in page.text
