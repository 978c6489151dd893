"""The reviewer's journey in a real browser (Debian's headless Chromium, Playwright) on a
real `agentrt serve` process that sends its webhooks to a receiver on 127.0.0.1: the
notification's link asks the reviewer to sign in and opens the request on its run's page,
with the context to decide (goal, what the model said and planned, the observations, the
rule and why, the budget, what an edit changed); the queue's filters narrow the queue; a
key approves; the run's trace is a waterfall with the wait for a person drawn apart.
Screenshots are kept for a person to look at."""

from __future__ import annotations

import base64
import shutil
import threading
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from agentrt.examples.refund_desk import GOAL, OPERATOR
from tests.serving import serve, wait_for
from tests.test_service_browser import CHROMIUM, KEPT, make_key
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.subprocess

APP = "tests.webhook_app:build_runtime"
PUBLIC = "http://review.invalid"
SECRET = "whsec_" + base64.b64encode(b"the review test's own secret key").decode()
WEBHOOKS = """
public_url: {public}
endpoints:
  - name: reviewers
    url: {url}
    secret_env: REVIEW_WEBHOOK_SECRET
    tenant: acme
    events: ["approval.requested"]
"""


def requested(receiver: Receiver, count: int) -> list[dict[str, str]]:
    """The links of the first ``count`` approval.requested events the receiver took."""
    arrived = threading.Event()
    for _ in range(600):  # the server's dispatcher sends from its own process
        links = [r.document["links"] for r in receiver.received if r.status == 204]
        if len(links) >= count:
            return links[:count]
        arrived.wait(0.1)
    raise AssertionError(f"{count} approval.requested events never came: {receiver.ids()}")


def shot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)


def signed_in_by_the_link(page: Page, url: str, link: str, key: str, thread_id: str) -> None:
    """The link decides nothing and shows nothing before a sign-in; then the request, on
    its run's page, selected, with the context to decide it."""
    page.goto(link)
    page.wait_for_url(f"{url}/ui/login?*")
    page.fill("input[name=key]", key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/ui/runs/{thread_id}#approval-*")
    card = page.locator("article.approval")
    expect(card).to_have_count(1)
    expect(card).to_have_class("card approval selected")
    context = card.locator("section.context")
    expect(context.locator(".ctx-goal")).to_have_text(GOAL)
    expect(context.locator(".said")).to_have_text("Refunding the full amount.")
    expect(context.locator(".plan li.this")).to_contain_text("issue_refund")
    expect(context.locator(".observations li")).to_have_count(3)
    expect(context.locator(".observations")).to_contain_text("lookup_order")
    expect(context.locator(".why")).to_contain_text("large-refunds")
    expect(context.locator(".why .when")).to_have_text("args.amount > 50.0")
    expect(context.locator("table.budget")).to_contain_text("3 used of 100")
    expect(context.locator("table.budget .left")).to_have_text("97 left")
    diff = context.locator("table.diff")
    expect(diff.locator("tr.d-changed")).to_have_count(1)
    expect(diff.locator("tr.d-changed .was")).to_have_text("89.0")
    expect(diff.locator("tr.d-changed .now")).to_have_text("60.0")
    expect(context).to_contain_text("Edited by bob")


def the_queue_filters(page: Page, url: str, screenshot: Path) -> None:
    """By tool, then by age: each applies as soon as it is chosen."""
    page.goto(f"{url}/ui")
    expect(page.locator("article.approval")).to_have_count(1)
    page.select_option("select[name=tool]", "lookup_order")
    page.wait_for_url(f"{url}/ui?tool=lookup_order")
    expect(page.locator("article.approval")).to_have_count(0)
    page.select_option("select[name=tool]", "issue_refund")
    page.wait_for_url(f"{url}/ui?tool=issue_refund")
    expect(page.locator("article.approval")).to_have_count(1)
    expect(page.locator("article.approval .card-goal")).to_contain_text(GOAL)
    shot(page, screenshot)
    page.select_option("select[name=age]", "1d")
    page.wait_for_url(f"{url}/ui?tool=issue_refund&age=1d")
    expect(page.locator("article.approval")).to_have_count(0)


def the_waterfall(page: Page, url: str, thread_id: str) -> None:
    """Bars on one axis; the two waits for people (bob's edit, carol's approval) apart."""
    page.goto(f"{url}/ui/runs/{thread_id}")
    waterfall = page.locator(".waterfall")
    expect(waterfall.locator(".wf-row.wf-wait")).to_have_count(2)
    expect(waterfall.locator(".wf-row.wf-model").first).to_be_visible()
    expect(page.locator("p.hint", has_text="waiting for people")).to_be_visible()
    expect(page.locator("ul.trace")).to_have_count(0)  # no longer a list of durations


def test_a_reviewer_follows_the_link_signs_in_sees_why_and_approves_with_a_key(
    tmp_path: Path,
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing; `make install` installs Debian's chromium")
    db = tmp_path / "agentrt.db"
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    with Receiver() as receiver:
        config = tmp_path / "webhooks.yaml"
        config.write_text(WEBHOOKS.format(public=PUBLIC, url=receiver.url))
        env = {"WEBHOOKS_FILE": str(config), "REVIEW_WEBHOOK_SECRET": SECRET}
        keys = {
            "alice": make_key(
                db, "--id", "alice", "--tenant", "acme", "--role", "operator",
                *(f"--scope={s}" for s in OPERATOR.scopes),
            ),
            "bob": make_key(db, "--id", "bob", "--tenant", "acme", "--role", "refund-approver"),
            "carol": make_key(
                db, "--id", "carol", "--tenant", "acme", "--role", "refund-approver"
            ),
        }  # fmt: skip
        with serve(APP, db, env=env) as server, server.client(keys["alice"]) as api:
            started = api.post("/runs", json={"goal": GOAL})
            assert started.status_code == 202, started.text
            thread_id = started.json()["thread_id"]
            wait_for(api, thread_id, {"awaiting_approval"})
            (first,) = requested(receiver, 1)
            first_id = first["review"].rsplit("/", 1)[1]
            assert first["review"] == f"{PUBLIC}/ui/approvals/{first_id}"

            # bob edits the refund down; it is still over $50, so it asks again, and four
            # eyes keep bob (its editor) from approving it: carol decides.
            with server.client(keys["bob"]) as bob:
                edited = bob.post(
                    f"/approvals/{first_id}/decision",
                    json={"outcome": "edit", "args": {"order_id": "42", "amount": 60.0}},
                )
                assert edited.status_code == 200, edited.text
            wait_for(api, thread_id, {"awaiting_approval"})
            _, second = requested(receiver, 2)
            link = second["review"].replace(PUBLIC, server.url)

            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
                )
                try:
                    page = browser.new_page(viewport={"width": 1100, "height": 1000})
                    refused: list[str] = []
                    page.on(
                        "console",
                        lambda m: (
                            refused.append(m.text) if "Content Security Policy" in m.text else None
                        ),
                    )
                    signed_in_by_the_link(page, server.url, link, keys["carol"], thread_id)
                    shot(page, artifacts / "context.png")
                    the_queue_filters(page, server.url, artifacts / "queue-filtered.png")
                    # Keys: j selects the request, a approves it through its own form.
                    page.goto(f"{server.url}/ui?tool=issue_refund")
                    page.keyboard.press("j")
                    expect(page.locator("article.approval.selected")).to_have_count(1)
                    page.keyboard.press("a")
                    expect(page.get_by_role("status")).to_contain_text("Approved")
                    wait_for(api, thread_id, {"succeeded"})
                    the_waterfall(page, server.url, thread_id)
                    shot(page, artifacts / "waterfall.png")
                    assert refused == []
                finally:
                    browser.close()

    KEPT.mkdir(exist_ok=True)
    for name in ("context.png", "queue-filtered.png", "waterfall.png"):
        assert (artifacts / name).stat().st_size > 10_000
        shutil.copy(artifacts / name, KEPT / f"review-{name}")
