"""The review app's stats page (/ui/stats): the figures of `agentrt stats`, for admins."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape

import pytest

from agentrt import AgentRuntime, Decision, Principal, RunStatus
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from tests.conftest import FakeClock
from tests.test_service_ui import Page, _browser

pytestmark = pytest.mark.anyio

ADMIN = Principal("ann", roles=["admin"], tenant="acme")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def page(desk: AgentRuntime) -> AsyncIterator[Page]:
    async with _browser(desk) as browser:
        yield browser


def text(html: str) -> str:
    """What a person reads: the tags dropped, the spaces collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


async def test_an_admin_sees_the_figures_of_their_tenant(page: Page, clock: FakeClock) -> None:
    rt = page.rt
    run = rt.start(GOAL, principal=OPERATOR)
    assert run.pending_approval is not None
    clock.advance(90)
    assert rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER)).status is (
        RunStatus.SUCCEEDED
    )
    rt.start(GOAL, principal=OPERATOR)  # waits at its gate
    rt.start(GOAL, principal=Principal("gus", roles=["operator"], tenant="globex"))  # not acme's
    await page.sign_in(ADMIN)

    shown = await page.client.get("/ui/stats?since=all")
    assert shown.status_code == 200, shown.text
    body = text(shown.text)
    assert "Stats acme" in body
    assert "2 run(s)" in body  # acme's two: globex's run is not counted
    assert '<ul class="bars" aria-label="runs by status">' in shown.text  # a chart
    bars = text(_between(shown.text, "runs by status", "</ul>"))
    assert "succeeded 100% 1" in bars  # each bar as long as its share of the longest
    assert "awaiting_approval 100% 1" in bars
    waits = text(_between(shown.text, "Approval waits", "</table>"))
    assert "large-refunds refund-approver 1 1.5m 1.5m 1.5m" in waits
    assert "lookup_order" in text(_between(shown.text, "Slowest tools", "</table>"))
    # The nav offers the page to an admin.
    assert '<a href="/ui/stats"' in shown.text


async def test_the_page_is_for_admins_only(page: Page) -> None:
    await page.sign_in(OPERATOR)
    refused = await page.client.get("/ui/stats")
    assert refused.status_code == 403
    assert (
        "The stats page is for admins: 'alice' does not hold the role 'admin'. Sign in with a "
        "key made with --role admin."
    ) in unescape(refused.text)
    queue = await page.client.get("/ui")
    assert '<a href="/ui/stats"' not in queue.text  # not offered either


async def test_an_unknown_window_is_refused_by_name(page: Page) -> None:
    await page.sign_in(ADMIN)
    refused = await page.client.get("/ui/stats?since=forever")
    assert refused.status_code == 400
    assert "'forever' is not a window of this page; use one of ['1d', '7d', '30d', 'all']" in (
        unescape(refused.text)
    )


async def test_signed_out_goes_to_sign_in(page: Page) -> None:
    shown = await page.client.get("/ui/stats", follow_redirects=False)
    assert shown.status_code == 303
    assert shown.headers["location"].startswith("/ui/login?next=%2Fui%2Fstats")


def _between(html: str, start: str, end: str) -> str:
    at = html.index(start)
    return html[at : html.index(end, at)]


async def test_the_window_is_on_the_stores_clock(page: Page, clock: FakeClock) -> None:
    # The store wrote created_at by its clock (on PostgreSQL the server's); this host's
    # own clock runs two days fast, and the last day still holds the run made just now.
    rt = page.rt
    rt.start(GOAL, principal=OPERATOR)
    rt.clock = lambda: clock.now + 2 * 86400
    await page.sign_in(ADMIN)
    shown = await page.client.get("/ui/stats?since=1d")
    assert shown.status_code == 200, shown.text
    assert "1 run(s)" in text(shown.text)
